"""Generate golden reference values for tessera's Vision Transformer tests.

Produces, computed with PyTorch in float32 using the timm-compatible reference
model in ``scripts/timm_vit.py``:

* ``test/fixtures/vit_goldens.safetensors`` - all tensors (F32):
    - ``small_token.logits``, ``small_token.grad.<key>`` (d mean-CE / d param for
      every state-dict key), ``small_token.grad_input``
      (img 28, patch 4, 1 channel, 10 classes, dim 48, depth 2, 3 heads, token pooling,
      input det_input([2,1,28,28]), labels [3, 7]);
    - the same for ``small_avg.*`` (global_pool='avg': fc_norm, no norm) and
      ``small_convstem.*`` (the convolutional stem, width 8) and ``small_convstem_s1.*`` (width
      4 with a leading stride-1 conv, strides [1, 2, 2]) and ``small_convstem_gn.*`` (width 8,
      strides [2, 1, 2], GroupNorm after each 3x3 conv);
    - ``small_distilled.logits`` (DeiT distilled head, eval average of both heads);
    - ``tiny224.logits`` (vit_tiny_patch16_224, input det_input([2,3,224,224]));
    - ``resample.src`` ([1, 1+7*7, 8] = det_input) and its bicubic, antialiased,
      1-prefix-token resamplings ``resample.up_14x14``, ``resample.down_4x4``,
      ``resample.rect_10x12``.
* ``test/fixtures/vit_goldens.json`` - per case: config, labels, ordered
  state-dict keys; plus ``tiny224_num_tensors`` and the generator path.

Weights come from ``fill_deterministic`` (value for key k, flat index i:
base = sin(0.7*i + 0.013*h(k)), h(k) = sum((j+1)*ord(c)) % 10007; LayerNorm
weights 1+0.1*base, biases 0.02*base, everything else 0.05*base), inputs from
``det_input`` (sin(0.05*i)); both computed in float64 and stored as float32.

The safetensors file is written by hand (8-byte LE header length, JSON header
padded with spaces to a multiple of 8, then contiguous little-endian data).

Run from the repository root:

    /usr/bin/python3 scripts/make_vit_goldens.py

Only torch and the standard library are used.
"""

import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)

from timm_vit import (  # noqa: E402
    VisionTransformer,
    det_input,
    fill_deterministic,
    resample_abs_pos_embed,
)

ROOT = os.path.dirname(SCRIPTS)
FIXTURES = os.path.join(ROOT, "test", "fixtures")
ST_PATH = os.path.join(FIXTURES, "vit_goldens.safetensors")
JSON_PATH = os.path.join(FIXTURES, "vit_goldens.json")

torch.set_default_dtype(torch.float32)

SMALL = dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=48, depth=2,
             num_heads=3, mlp_ratio=4.0, qkv_bias=True, global_pool="token", class_token=True,
             distilled=False)
TINY224 = dict(img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=192, depth=12,
               num_heads=3, mlp_ratio=4.0, qkv_bias=True, global_pool="token", class_token=True,
               distilled=False)
LABELS = [3, 7]


# ----------------------------------------------------------------------------
# safetensors writer
# ----------------------------------------------------------------------------

def write_safetensors(path, tensors, metadata):
    """tensors: ordered dict name -> float32 tensor."""
    header = {}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().to(torch.float32).contiguous().cpu()
        data = t.numpy().astype("<f4", copy=False).tobytes()  # little-endian f32
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Minimal reader used to verify the written file round-trips."""
    import numpy as np

    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out = {}
    end_max = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        end_max = max(end_max, e)
        arr = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    assert end_max == len(data), "trailing bytes in data section"
    return header, out


# ----------------------------------------------------------------------------
# cases
# ----------------------------------------------------------------------------

def build(cfg):
    model = VisionTransformer(**cfg)
    fill_deterministic(model)
    model.eval()
    return model


def case_with_grads(name, cfg, tensors, meta):
    model = build(cfg)
    x = det_input([len(LABELS), cfg["in_chans"], cfg["img_size"], cfg["img_size"]]).requires_grad_(True)
    labels = torch.tensor(LABELS, dtype=torch.int64)
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    params = dict(model.named_parameters())
    keys = list(model.state_dict().keys())
    assert list(params.keys()) == keys, "named_parameters and state_dict order differ"
    grads = torch.autograd.grad(loss, [params[k] for k in keys] + [x])

    # float64 sanity check of the same computation
    model64 = build(cfg).double()
    x64 = det_input(list(x.shape), dtype=torch.float64)
    logits64 = model64(x64)
    err = (logits.detach().double() - logits64).abs().max().item()
    assert err < 1e-3, f"{name}: float32 vs float64 logits differ by {err}"

    tensors[f"{name}.logits"] = logits.detach()
    for k, g in zip(keys, grads[:-1]):
        tensors[f"{name}.grad.{k}"] = g
    tensors[f"{name}.grad_input"] = grads[-1]
    meta[name] = {"config": cfg, "labels": LABELS, "keys": keys, "loss": loss.item(),
                  "input_shape": list(x.shape), "f64_max_abs_logit_diff": err}


def case_logits(name, cfg, tensors, meta):
    model = build(cfg)
    x = det_input([len(LABELS), cfg["in_chans"], cfg["img_size"], cfg["img_size"]])
    with torch.no_grad():
        logits = model(x)
        err = (logits.double() - build(cfg).double()(x.double())).abs().max().item()
    assert err < 1e-3, f"{name}: float32 vs float64 logits differ by {err}"
    tensors[f"{name}.logits"] = logits
    meta[name] = {"config": cfg, "labels": LABELS, "keys": list(model.state_dict().keys()),
                  "input_shape": list(x.shape), "f64_max_abs_logit_diff": err}
    return model


def case_resample(tensors, meta):
    src = det_input([1, 1 + 7 * 7, 8])
    tensors["resample.src"] = src
    outs = {"up_14x14": (14, 14), "down_4x4": (4, 4), "rect_10x12": (10, 12)}
    for nm, size in outs.items():
        r = resample_abs_pos_embed(src, new_size=size, old_size=(7, 7), num_prefix_tokens=1,
                                   interpolation="bicubic", antialias=True)
        assert r.shape == (1, 1 + size[0] * size[1], 8), r.shape
        assert torch.equal(r[:, :1], src[:, :1])
        tensors[f"resample.{nm}"] = r
    meta["resample"] = {"src_shape": [1, 50, 8], "old_size": [7, 7], "num_prefix_tokens": 1,
                        "interpolation": "bicubic", "antialias": True,
                        "outputs": {nm: list(s) for nm, s in outs.items()}}


def main():
    torch.manual_seed(0)
    tensors = {}
    meta = {}
    case_with_grads("small_token", dict(SMALL), tensors, meta)
    case_with_grads("small_avg", dict(SMALL, global_pool="avg"), tensors, meta)
    case_with_grads("small_convstem", dict(SMALL, embed_layer="conv", stem_width=8), tensors, meta)
    case_with_grads("small_convstem_s1", dict(SMALL, embed_layer="conv", stem_width=4, stem_strides=[1, 2, 2]), tensors, meta)
    case_logits("small_distilled", dict(SMALL, distilled=True), tensors, meta)
    tiny = case_logits("tiny224", dict(TINY224), tensors, meta)
    n_tiny = len(tiny.state_dict())
    assert n_tiny == 152, f"vit_tiny_patch16_224 should have 152 tensors, got {n_tiny}"
    meta["tiny224_num_tensors"] = n_tiny
    meta["tiny224_num_params"] = sum(p.numel() for p in tiny.parameters())
    case_resample(tensors, meta)
    # last, so the cases above keep the random draws they had before it was added
    case_with_grads("small_convstem_gn", dict(SMALL, embed_layer="conv", stem_width=8, stem_strides=[2, 1, 2], stem_norm="group"), tensors, meta)
    meta["generator"] = "scripts/make_vit_goldens.py"

    os.makedirs(FIXTURES, exist_ok=True)
    write_safetensors(ST_PATH, tensors, {"generator": "scripts/make_vit_goldens.py",
                                         "format": "pt", "torch": torch.__version__})
    header, back = read_safetensors(ST_PATH)
    assert list(back.keys()) == list(tensors.keys())
    for k, t in tensors.items():
        assert torch.equal(back[k], t.detach().float()), k
    with open(JSON_PATH, "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    size = os.path.getsize(ST_PATH)
    assert size < 3 * 1024 * 1024, size
    print(f"wrote {ST_PATH} ({size} bytes, {len(tensors)} tensors) and {JSON_PATH}")


if __name__ == "__main__":
    main()
