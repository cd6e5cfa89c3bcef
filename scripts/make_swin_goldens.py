"""Generate the Swin Transformer goldens (test/fixtures/swin_goldens.{safetensors,json}).

Computed with PyTorch in float32 on scripts/swin_ref.py (a plain-PyTorch Swin in timm's layout)
with scripts/timm_vit.py's deterministic weights and inputs:

* ``small.*``: img 32, patch 2, 3 channels, 7 classes, dim 16, depths (2, 2, 2), heads
  (2, 2, 4), window 4: stages of 16x16 and 8x8 (shifted windows, masked) and 4x4 (window clamped
  to the stage, no shift). Logits, mean cross-entropy against labels [3, 5] and the gradient of
  every parameter and of the input.
* ``padded.*``: img 20, patch 2, dim 16, depths (2, 2, 1), heads (2, 2, 4), window 4: 10x10 and
  5x5 stages padded to whole windows after the shift, and an odd-sized patch merging (5 -> 3).
  Same outputs.
* ``tiny224.logits``: swin_tiny_patch4_window7_224 at batch 1.

Run from the repository root:  /usr/bin/python3 scripts/make_swin_goldens.py
Check the reference against timm:  /usr/bin/python3 scripts/make_swin_goldens.py --check-timm DIR
where DIR holds a timm source tree (e.g. `git archive` of huggingface/pytorch-image-models);
this session used commit aa4b5850c1543fa488abf260f18390eda46cf85d (2026-08-08).
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)

from make_vit_goldens import write_safetensors  # noqa: E402
from swin_ref import SwinTransformer  # noqa: E402
from timm_vit import det_input, fill_deterministic  # noqa: E402

ROOT = os.path.dirname(SCRIPTS)
FIXTURES = os.path.join(ROOT, "test", "fixtures")
LABELS = [3, 5]

SMALL = dict(img_size=32, patch_size=2, in_chans=3, num_classes=7, embed_dim=16, depths=(2, 2, 2),
             num_heads=(2, 2, 4), window_size=4, mlp_ratio=2.0)
PADDED = dict(img_size=20, patch_size=2, in_chans=3, num_classes=7, embed_dim=16, depths=(2, 2, 1),
              num_heads=(2, 2, 4), window_size=4, mlp_ratio=2.0)
TINY224 = dict(img_size=224, patch_size=4, in_chans=3, num_classes=1000, embed_dim=96, depths=(2, 2, 6, 2),
               num_heads=(3, 6, 12, 24), window_size=7)


def build(cfg, dtype=torch.float32):
    model = fill_deterministic(SwinTransformer(**cfg)).to(dtype)
    return model.eval()


def case_with_grads(name, cfg, tensors, meta):
    model = build(cfg)
    x = det_input([len(LABELS), cfg["in_chans"], cfg["img_size"], cfg["img_size"]]).requires_grad_(True)
    logits = model(x)
    loss = F.cross_entropy(logits, torch.tensor(LABELS))
    params = dict(model.named_parameters())
    keys = list(model.state_dict().keys())
    assert list(params) == keys, "parameters and state dict differ (buffers must be non-persistent)"
    grads = torch.autograd.grad(loss, [params[k] for k in keys] + [x])
    err = (logits.detach().double() - build(cfg, torch.float64)(x.detach().double())).abs().max().item()
    assert err < 1e-4, f"{name}: float32 vs float64 logits differ by {err}"
    tensors[f"{name}.logits"] = logits.detach()
    for k, g in zip(keys, grads[:-1]):
        tensors[f"{name}.grad.{k}"] = g
    tensors[f"{name}.grad_input"] = grads[-1]
    meta[name] = {"config": cfg, "labels": LABELS, "keys": keys, "loss": loss.item(), "input_shape": list(x.shape),
                  "num_params": sum(p.numel() for p in params.values()), "f64_max_abs_logit_diff": err}


def check_timm(timm_dir):
    """Loads the reference's weights into timm's own SwinTransformer and compares the logits."""
    sys.path.insert(0, timm_dir)
    from timm.models.swin_transformer import SwinTransformer as TimmSwin  # noqa: E402
    for name, cfg in [("small", SMALL), ("padded", PADDED), ("tiny224", TINY224)]:
        ours = build(cfg)
        theirs = TimmSwin(**cfg, strict_img_size=cfg is not PADDED).eval()
        missing, unexpected = theirs.load_state_dict(ours.state_dict(), strict=True)
        x = det_input([len(LABELS), cfg["in_chans"], cfg["img_size"], cfg["img_size"]])
        with torch.no_grad():
            diff = (ours(x) - theirs(x)).abs().max().item()
        print(f"{name}: timm vs reference max |logit diff| {diff:.3g}; timm params {sum(p.numel() for p in theirs.parameters())}")
        assert diff < 1e-4, name


def main():
    if "--check-timm" in sys.argv:
        check_timm(sys.argv[sys.argv.index("--check-timm") + 1])
        return
    torch.manual_seed(0)
    tensors, meta = {}, {"generator": "scripts/make_swin_goldens.py"}
    case_with_grads("small", SMALL, tensors, meta)
    case_with_grads("padded", PADDED, tensors, meta)
    model = build(TINY224)
    x = det_input([1, 3, 224, 224])
    with torch.no_grad():
        tensors["tiny224.logits"] = model(x)
    meta["tiny224"] = {"config": TINY224, "keys": list(model.state_dict().keys()), "input_shape": [1, 3, 224, 224],
                       "num_params": sum(p.numel() for p in model.parameters())}
    write_safetensors(os.path.join(FIXTURES, "swin_goldens.safetensors"), tensors, {"generator": meta["generator"]})
    with open(os.path.join(FIXTURES, "swin_goldens.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print({k: v.get("num_params") for k, v in meta.items() if isinstance(v, dict)})


if __name__ == "__main__":
    main()
