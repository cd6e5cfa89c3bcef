"""Generate the checkpoint-layout fixtures under ``test/fixtures/layouts/``.

Every model is small (32x32 or 16x16 images, dim 32) and filled with closed-form weights
(``fill``: sin(0.7*i + 0.013*h(key)); LayerNorm weights 1 + 0.1*base, biases 0.02*base, other
tensors 0.05*base).  Reference logits are computed with PyTorch in float32 on
``det_input([2, C, H, W])`` (sin(0.05*i)) and checked against float64.

Parity fixtures (``goldens.json`` holds each case's logits and expected config):

* ``timm/model.safetensors`` + ``timm/config.json``: timm layout (scripts/timm_vit.py), token
  pooling, written like a timm hub repo (``architecture``, ``model_args``, ``pretrained_cfg``);
* ``timm_avg_noembed.safetensors``: timm's ``global_pool='avg'`` (fc_norm) with
  ``no_embed_class=True``, 1 channel, bare file (heads must be given);
* ``hf/``: Hugging Face ``ViTForImageClassification`` layout (config.json with
  ``layer_norm_eps=1e-12`` and id2label, preprocessor_config.json, model.safetensors).  transformers
  is not installed, so ``HFViT`` below implements its semantics in plain PyTorch (separate
  query/key/value, layernorm_before/after, eps from the config);
* ``hf_model/``: a headless ``ViTModel`` (with its pooler) saved as ``pytorch_model.bin`` by
  ``torch.save`` in float16; the reference is the final-norm class token, from the f16 weights;
* ``torchvision_vit.pth``: torchvision's own ``VisionTransformer`` (image 32, patch 8, 2 layers,
  2 heads, dim 32, mlp 64, 10 classes), ``torch.save(model.state_dict())``.

Pickle fixtures: ``tensors.pth`` (zip) and ``tensors_legacy.pth`` (pre-1.6 format) hold float32,
a transposed view, a row view with a storage offset, float16, bfloat16, float64 and int64
tensors; their expected values are in goldens.json.

Malicious / malformed fixtures: ``os_system.pth`` (a torch zip whose data.pkl calls
``os.system``), ``posix_system.pth`` (``torch.save`` of an object whose ``__reduce__`` is
os.system, as a real exploit would be made), ``eval.bin`` (a bare pickle calling
``builtins.eval``), ``subprocess.pth`` (protocol 4 STACK_GLOBAL ``subprocess.Popen``),
``truncated.pth`` (the first half of torchvision_vit.pth), and safetensors files with
overlapping offsets, a 10 GB header length, a wrong dtype size, a truncated data section and a
non-JSON header.  Nothing here is ever unpickled by Python.

Run from the repository root:  /usr/bin/python3 scripts/make_layout_goldens.py
"""

import collections
import io
import json
import math
import os
import pickle
import struct
import sys
import zipfile

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.vision_transformer import VisionTransformer as TorchvisionViT

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)
from timm_vit import VisionTransformer as TimmViT, det_input, key_hash  # noqa: E402

ROOT = os.path.dirname(SCRIPTS)
OUT = os.path.join(ROOT, "test", "fixtures", "layouts")
torch.set_default_dtype(torch.float32)


def path(*p):
    full = os.path.join(OUT, *p)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    return full


def values(k, n):
    i = torch.arange(n, dtype=torch.float64)
    base = torch.sin(0.7 * i + 0.013 * key_hash(k))
    leaf = k.rsplit(".", 2)
    is_ln_weight = k.endswith(".weight") and any(s in leaf[-2] for s in ("norm", "ln", "layernorm"))
    if is_ln_weight:
        return 1.0 + 0.1 * base
    if k.endswith("bias"):
        return 0.02 * base
    return 0.05 * base


@torch.no_grad()
def fill(model):
    for k, p in model.state_dict(keep_vars=True).items():
        if isinstance(p, nn.Parameter):
            p.copy_(values(k, p.numel()).reshape(p.shape).to(p.dtype))
    return model.eval()


def logits_of(make, x_shape):
    """float32 logits of a freshly built model, checked against the same model in float64."""
    x = det_input(x_shape)
    with torch.no_grad():
        out = make()(x)
        ref = make().double()(x.double())
    err = (out.double() - ref).abs().max().item()
    assert err < 1e-4, err
    return out


def write_safetensors(file, tensors, metadata=None, dtype_of=None):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        dt = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    raw_header(file, json.dumps(header, separators=(",", ":")).encode(), b"".join(blobs))


def raw_header(file, header_bytes, data, declared_len=None):
    header_bytes += b" " * ((8 - len(header_bytes) % 8) % 8)
    with open(file, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes) if declared_len is None else declared_len))
        f.write(header_bytes)
        f.write(data)


def flat(t):
    return [round(float(v), 7) for v in t.reshape(-1).tolist()]


# ----------------------------------------------------------------------------
# Hugging Face ViT semantics in plain PyTorch (parameter names as transformers')
# ----------------------------------------------------------------------------

class HFSelfAttention(nn.Module):
    def __init__(self, d, heads, bias):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(d, d, bias=bias) for _ in range(3))

    def forward(self, x):
        B, N, D = x.shape
        split = lambda t: t.view(B, N, self.heads, D // self.heads).permute(0, 2, 1, 3)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(D // self.heads)
        ctx = scores.softmax(-1) @ v
        return ctx.permute(0, 2, 1, 3).reshape(B, N, D)


class HFLayer(nn.Module):
    def __init__(self, d, heads, inter, eps, bias):
        super().__init__()
        self.attention = nn.Module()
        self.attention.attention = HFSelfAttention(d, heads, bias)
        self.attention.output = nn.Module()
        self.attention.output.dense = nn.Linear(d, d)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(d, inter)
        self.output = nn.Module()
        self.output.dense = nn.Linear(inter, d)
        self.layernorm_before = nn.LayerNorm(d, eps=eps)
        self.layernorm_after = nn.LayerNorm(d, eps=eps)

    def forward(self, x):
        x = x + self.attention.output.dense(self.attention.attention(self.layernorm_before(x)))
        return x + self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))


class HFViTModel(nn.Module):
    def __init__(self, c, pooler):
        super().__init__()
        d, p = c["hidden_size"], c["patch_size"]
        self.embeddings = nn.Module()
        self.embeddings.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.embeddings.position_embeddings = nn.Parameter(torch.zeros(1, (c["image_size"] // p) ** 2 + 1, d))
        self.embeddings.patch_embeddings = nn.Module()
        self.embeddings.patch_embeddings.projection = nn.Conv2d(c["num_channels"], d, p, p)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(
            HFLayer(d, c["num_attention_heads"], c["intermediate_size"], c["layer_norm_eps"], c["qkv_bias"])
            for _ in range(c["num_hidden_layers"]))
        self.layernorm = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        if pooler:
            self.pooler = nn.Module()
            self.pooler.dense = nn.Linear(d, d)

    def forward(self, x):
        e = self.embeddings
        x = e.patch_embeddings.projection(x).flatten(2).transpose(1, 2)
        x = torch.cat([e.cls_token.expand(x.shape[0], -1, -1), x], 1) + e.position_embeddings
        for layer in self.encoder.layer:
            x = layer(x)
        return self.layernorm(x)


class HFViTForImageClassification(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.vit = HFViTModel(c, pooler=False)
        self.classifier = nn.Linear(c["hidden_size"], len(c["id2label"]))

    def forward(self, x):
        return self.classifier(self.vit(x)[:, 0])


class NoEmbedClassViT(TimmViT):
    """timm's no_embed_class=True: pos_embed covers the patches and is added before the class token."""

    def __init__(self, **kw):
        super().__init__(**kw)
        n = (kw["img_size"] // kw["patch_size"]) ** 2
        self.pos_embed = nn.Parameter(torch.zeros(1, n, kw["embed_dim"]))

    def _pos_embed(self, x):
        x = x + self.pos_embed
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)


# ----------------------------------------------------------------------------
# cases
# ----------------------------------------------------------------------------

def case_timm(goldens):
    cfg = dict(img_size=32, patch_size=8, in_chans=3, num_classes=10, embed_dim=32, depth=2, num_heads=2,
               mlp_ratio=2.0, qkv_bias=True, global_pool="token", class_token=True, distilled=False)
    make = lambda: fill(TimmViT(**cfg))  # noqa: E731
    logits = logits_of(make, [2, 3, 32, 32])
    write_safetensors(path("timm", "model.safetensors"), make().state_dict(), {"format": "pt"})
    labels = [f"class_{i}" for i in range(10)]
    hub = {"architecture": "vit_tiny_patch8_32", "num_classes": 10, "num_features": 32, "global_pool": "token",
           "model_args": {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0},
           "pretrained_cfg": {"input_size": [3, 32, 32], "interpolation": "bilinear", "crop_pct": 0.95, "mean": [0.4, 0.5, 0.6],
                              "std": [0.2, 0.25, 0.3], "num_classes": 10, "label_names": labels}}
    with open(path("timm", "config.json"), "w") as f:
        json.dump(hub, f, indent=1)
    goldens["timm"] = {"path": "timm", "input_shape": [2, 3, 32, 32], "logits": flat(logits),
                       "config": {"imgSize": 32, "patchSize": 8, "inChans": 3, "numClasses": 10, "embedDim": 32, "depth": 2,
                                  "numHeads": 2, "mlpRatio": 2, "globalPool": "token", "noEmbedClass": False, "eps": 1e-6}}


def case_timm_avg(goldens):
    cfg = dict(img_size=16, patch_size=4, in_chans=1, num_classes=4, embed_dim=32, depth=1, num_heads=4,
               mlp_ratio=2.0, qkv_bias=True, global_pool="avg", class_token=True, distilled=False)
    make = lambda: fill(NoEmbedClassViT(**cfg))  # noqa: E731
    logits = logits_of(make, [2, 1, 16, 16])
    sd = make().state_dict()
    assert "fc_norm.weight" in sd and "norm.weight" not in sd and sd["pos_embed"].shape[1] == 16
    write_safetensors(path("timm_avg_noembed.safetensors"), sd)
    goldens["timm_avg_noembed"] = {"path": "timm_avg_noembed.safetensors", "num_heads": 4, "input_shape": [2, 1, 16, 16],
                                   "logits": flat(logits),
                                   "config": {"globalPool": "avg", "noEmbedClass": True, "classToken": True, "inChans": 1,
                                              "imgSize": 16, "patchSize": 4, "numClasses": 4, "depth": 1}}


HF_CONFIG = {
    "architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "image_size": 32,
    "patch_size": 8, "num_channels": 3, "qkv_bias": True, "encoder_stride": 8,
    "id2label": {str(i): n for i, n in enumerate(["cat", "dog", "bird", "fish", "frog"])},
    "label2id": {n: i for i, n in enumerate(["cat", "dog", "bird", "fish", "frog"])},
}


def case_hf(goldens):
    make = lambda: fill(HFViTForImageClassification(HF_CONFIG))  # noqa: E731
    logits = logits_of(make, [2, 3, 32, 32])
    write_safetensors(path("hf", "model.safetensors"), make().state_dict(), {"format": "pt"})
    with open(path("hf", "config.json"), "w") as f:
        json.dump(HF_CONFIG, f, indent=1)
    pre = {"image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": 32, "width": 32},
           "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
           "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    with open(path("hf", "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=1)
    goldens["hf"] = {"path": "hf", "input_shape": [2, 3, 32, 32], "logits": flat(logits),
                     "class_names": list(HF_CONFIG["id2label"].values()),
                     "config": {"embedDim": 32, "depth": 2, "numHeads": 4, "mlpRatio": 2, "numClasses": 5, "eps": 1e-12}}


def case_hf_model(goldens):
    c = dict(HF_CONFIG, architectures=["ViTModel"])
    del c["id2label"], c["label2id"]

    def make():
        m = fill(HFViTModel(c, pooler=True))
        with torch.no_grad():  # the reference runs on the weights as stored: rounded to float16
            for p in m.parameters():
                p.copy_(p.half().float())
        return m

    x_shape = [2, 3, 32, 32]
    features = logits_of(lambda: _ClsToken(make()), x_shape)
    sd = collections.OrderedDict((k, v.half()) for k, v in make().state_dict().items())
    torch.save(sd, path("hf_model", "pytorch_model.bin"))
    with open(path("hf_model", "config.json"), "w") as f:
        json.dump(c, f, indent=1)
    goldens["hf_model"] = {"path": "hf_model", "input_shape": x_shape, "logits": flat(features),
                           "dropped": ["pooler.dense.weight", "pooler.dense.bias"],
                           "config": {"numClasses": 0, "eps": 1e-12, "numHeads": 4}}


class _ClsToken(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)[:, 0]


def case_torchvision(goldens):
    make = lambda: fill(TorchvisionViT(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,  # noqa: E731
                                       mlp_dim=64, num_classes=10))
    logits = logits_of(make, [2, 3, 32, 32])
    torch.save(make().state_dict(), path("torchvision_vit.pth"))
    goldens["torchvision"] = {"path": "torchvision_vit.pth", "num_heads": 2, "input_shape": [2, 3, 32, 32],
                              "logits": flat(logits),
                              "config": {"embedDim": 32, "depth": 2, "numHeads": 2, "mlpRatio": 2, "numClasses": 10, "eps": 1e-6}}
    with open(path("torchvision_vit.pth"), "rb") as f:
        data = f.read()
    with open(path("truncated.pth"), "wb") as f:
        f.write(data[: len(data) // 2])


def case_tensors(goldens):
    a = torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4
    sd = collections.OrderedDict([
        ("f32", a), ("transposed", a.t()), ("row_view", a[1]),
        ("f16", torch.tensor([0.5, -1.25, 65504.0], dtype=torch.float16)),
        ("bf16", torch.tensor([1.0, -2.5, 3.140625], dtype=torch.bfloat16)),
        ("f64", torch.tensor([[1e-3], [2.5]], dtype=torch.float64)),
        ("i64", torch.tensor([7, -3], dtype=torch.int64)),
    ])
    assert not sd["transposed"].is_contiguous() and sd["row_view"].storage_offset() == 3
    torch.save(sd, path("tensors.pth"))
    torch.save(sd, path("tensors_legacy.pth"), _use_new_zipfile_serialization=False)
    goldens["tensors"] = {k: {"shape": list(v.shape), "values": [float(x) for x in v.reshape(-1).tolist()],
                              "dtype": str(v.dtype).replace("torch.", "")} for k, v in sd.items()}


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def zip_with_pickle(file, pkl):
    with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/version", "3\n")


def case_malicious():
    # GLOBAL 'os system', the argument tuple, REDUCE: what pickle makes of os.system on any OS
    zip_with_pickle(path("os_system.pth"), b"\x80\x02cos\nsystem\nX\x0a\x00\x00\x00echo pwned\x85R.")
    torch.save({"weight": torch.zeros(2), "payload": _Evil()}, path("posix_system.pth"))
    with open(path("eval.bin"), "wb") as f:
        f.write(b"\x80\x02cbuiltins\neval\nX\x0e\x00\x00\x00print('pwned')\x85R.")
    evil = pickle.dumps(collections.OrderedDict(w=_Popen()), protocol=4)
    assert b"\x93" in evil  # STACK_GLOBAL
    zip_with_pickle(path("subprocess.pth"), evil)


class _Popen:
    def __reduce__(self):
        import subprocess
        return (subprocess.Popen, (["echo", "pwned"],))


def case_malformed_safetensors():
    data = struct.pack("<3f", 1, 2, 3)
    raw_header(path("overlap.safetensors"), json.dumps({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode(), data)
    raw_header(path("header_10gb.safetensors"), b"{}", b"", declared_len=10 * 1024 ** 3)
    raw_header(path("wrong_dtype_size.safetensors"), json.dumps({
        "a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 6]}}).encode(), data[:6])
    raw_header(path("truncated.safetensors"), json.dumps({
        "a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}).encode(), data[:5])
    raw_header(path("not_json.safetensors"), b"this is not json", data)


def main():
    torch.manual_seed(0)
    goldens = {"generator": "scripts/make_layout_goldens.py", "torch": torch.__version__}
    case_timm(goldens)
    case_timm_avg(goldens)
    case_hf(goldens)
    case_hf_model(goldens)
    case_torchvision(goldens)
    case_tensors(goldens)
    case_malicious()
    case_malformed_safetensors()
    with open(path("goldens.json"), "w") as f:
        json.dump(goldens, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    assert total < 1024 * 1024, total
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
