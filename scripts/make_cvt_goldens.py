"""Generate the CvT goldens (test/fixtures/cvt_goldens.{safetensors,json}).

Computed with PyTorch in float32 on scripts/cvt_ref.py (a plain-PyTorch CvT in Hugging Face's
CvtForImageClassification layout) with scripts/timm_vit.py's deterministic weights and inputs,
perturbed so that no norm is an identity (see ``perturb``):

* ``small.*``: img 20, 3 channels, 7 classes, widths (16, 24, 32), heads (1, 2, 4), depths (1, 2, 3),
  embedding kernels (5, 3, 3) at stride 2: 10x10, 5x5 and 3x3 maps, kv maps 5x5, 3x3, 2x2 (odd
  sizes), no q/k/v bias in stage 1, the class token in stage 2. Eval logits (running statistics),
  then training mode (batch statistics): logits, mean cross-entropy against labels [3, 5, 1], the
  gradient of every parameter and of the input, and every BatchNorm buffer after the step.
* ``drop.*``: the same in training mode with drop-path scales fed in (HF's placement: the
  attention branch and the layer's whole output).
* ``cvt_goldens.hf_pytorch_model.bin`` + ``cvt_goldens.hf_config.json``: the small model as a
  Hugging Face directory holds it (torch.save, int64 num_batches_tracked; CvtConfig JSON).
* ``cvt13.logits``: cvt_13 (microsoft/cvt-13's config) at batch 1, eval, and its state-dict keys.

Run from the repository root:  /usr/bin/python3 scripts/make_cvt_goldens.py
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)

from cvt_ref import CvtForImageClassification, hf_config  # noqa: E402
from make_vit_goldens import write_safetensors  # noqa: E402
from timm_vit import det_input, deterministic_values, fill_deterministic  # noqa: E402

ROOT = os.path.dirname(SCRIPTS)
FIXTURES = os.path.join(ROOT, "test", "fixtures")
LABELS = [3, 5, 1]
IMG = 20

SMALL = hf_config(num_labels=7, patch_sizes=[5, 3, 3], patch_stride=[2, 2, 2], patch_padding=[2, 1, 1],
                  embed_dim=[16, 24, 32], num_heads=[1, 2, 4], depth=[1, 2, 3], mlp_ratio=[2.0, 2.0, 2.0],
                  qkv_bias=[True, False, True])
CVT13 = hf_config()
NORM_WEIGHT_SUFFIXES = ("normalization.weight", "layernorm_before.weight", "layernorm_after.weight", "layernorm.weight")


@torch.no_grad()
def perturb(model):
    """Norm weights 1 + v; BatchNorm running_mean v, running_var 1 + 4|v|, num_batches_tracked 3 (v: deterministic_values)."""
    for k, t in model.state_dict(keep_vars=True).items():
        if k.endswith(NORM_WEIGHT_SUFFIXES):
            t.copy_(1 + t)
        elif k.endswith("running_mean"):
            t.copy_(deterministic_values(k, t.numel()).float())
        elif k.endswith("running_var"):
            t.copy_(1 + 4 * deterministic_values(k, t.numel()).float().abs())
        elif k.endswith("num_batches_tracked"):
            t.fill_(3)
    return model


def build(cfg, dtype=torch.float32):
    return perturb(fill_deterministic(CvtForImageClassification(cfg))).to(dtype)


def drop_scales(layers, batch):
    """A fixed pattern of keep scales 1 / 0.75 and drops 0 over [batch, 2 * layers]."""
    s = torch.full((batch, 2 * layers), 1 / 0.75)
    for b in range(batch):
        for j in range(2 * layers):
            if (3 * b + 5 * j) % 7 == 0:
                s[b, j] = 0.0
    s[:, -1] = 1 / 0.75  # keep the last layer's output, so every sample reaches the head
    return s


def train_case(name, cfg, tensors, meta, with_drop):
    model = build(cfg).train()
    x = det_input([len(LABELS), cfg["num_channels"], IMG, IMG]).requires_grad_(True)
    layers = sum(cfg["depth"])
    scales = drop_scales(layers, len(LABELS)) if with_drop else None
    logits = model(x, scales)
    loss = F.cross_entropy(logits, torch.tensor(LABELS))
    params = dict(model.named_parameters())
    keys = list(params)
    grads = torch.autograd.grad(loss, [params[k] for k in keys] + [x])
    ref = build(cfg, torch.float64).train()
    err = (logits.detach().double() - ref(x.detach().double(), None if scales is None else scales.double())).abs().max().item()
    assert err < 1e-4, f"{name}: float32 vs float64 training logits differ by {err}"
    tensors[f"{name}.logits"] = logits.detach()
    for k, g in zip(keys, grads[:-1]):
        tensors[f"{name}.grad.{k}"] = g
    tensors[f"{name}.grad_input"] = grads[-1]
    buffers = {k: b for k, b in model.state_dict().items() if k not in params}
    for k, b in buffers.items():
        tensors[f"{name}.buffer.{k}"] = b.float()
    if scales is not None:
        tensors[f"{name}.drop_path"] = scales
    meta[name] = {"labels": LABELS, "loss": loss.item(), "input_shape": list(x.shape), "param_keys": keys,
                  "buffer_keys": list(buffers), "f64_max_abs_logit_diff": err}


def write_hf_directory_files(model):
    """The small model as a Hugging Face directory holds it: torch.save of the state dict (int64
    num_batches_tracked) and a CvtConfig config.json; the test copies them to pytorch_model.bin and
    config.json."""
    torch.save(model.state_dict(), os.path.join(FIXTURES, "cvt_goldens.hf_pytorch_model.bin"))
    cfg = {k: v for k, v in SMALL.items() if k != "num_labels"}
    labels = [f"class_{i}" for i in range(SMALL["num_labels"])]
    hf = {"architectures": ["CvtForImageClassification"], "model_type": "cvt", **cfg,
          "drop_path_rate": [0.0, 0.0, 0.1], "drop_rate": [0.0, 0.0, 0.0], "attention_drop_rate": [0.0, 0.0, 0.0],
          "qkv_projection_method": ["dw_bn", "dw_bn", "dw_bn"], "initializer_range": 0.02, "layer_norm_eps": 1e-12,
          "id2label": {str(i): n for i, n in enumerate(labels)}, "label2id": {n: i for i, n in enumerate(labels)}}
    with open(os.path.join(FIXTURES, "cvt_goldens.hf_config.json"), "w") as f:
        json.dump(hf, f, indent=1)
        f.write("\n")


def main():
    torch.manual_seed(0)
    tensors, meta = {}, {"generator": "scripts/make_cvt_goldens.py"}
    model = build(SMALL).eval()
    x = det_input([len(LABELS), 3, IMG, IMG])
    with torch.no_grad():
        tensors["small.eval_logits"] = model(x)
        err = (tensors["small.eval_logits"].double() - build(SMALL, torch.float64).eval()(x.double())).abs().max().item()
    assert err < 1e-4, err
    meta["small"] = {"config": SMALL, "img_size": IMG, "keys": list(model.state_dict().keys()),
                     "num_params": sum(p.numel() for p in model.parameters()), "f64_max_abs_eval_logit_diff": err}
    train_case("train", SMALL, tensors, meta, with_drop=False)
    train_case("drop", SMALL, tensors, meta, with_drop=True)
    write_hf_directory_files(build(SMALL))
    model = build(CVT13).eval()
    x = det_input([1, 3, 224, 224])
    with torch.no_grad():
        tensors["cvt13.logits"] = model(x)
    meta["cvt13"] = {"config": CVT13, "keys": list(model.state_dict().keys()), "input_shape": [1, 3, 224, 224],
                     "num_params": sum(p.numel() for p in model.parameters())}
    write_safetensors(os.path.join(FIXTURES, "cvt_goldens.safetensors"), tensors, {"generator": meta["generator"]})
    with open(os.path.join(FIXTURES, "cvt_goldens.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print({k: v.get("num_params") for k, v in meta.items() if isinstance(v, dict)},
          {k: v.get("loss") for k, v in meta.items() if isinstance(v, dict)})


if __name__ == "__main__":
    main()
