"""Generate the MobileViT goldens (test/fixtures/mobilevit_goldens.{safetensors,json}).

Computed with PyTorch in float32 on scripts/mobilevit_ref.py (a plain-PyTorch MobileViT in timm's
layout). Small configs carry random weights with perturbed norms and BatchNorm statistics
(running mean not 0, running variance not 1, num_batches_tracked 3), stored in the fixture as
``<case>.state.<key>``; inputs are sin(0.05 i), labels [3, 5, 1]:

* ``v1``: img 64, v1, stages 32, 16, 8, 4, 2 px; MobileViT blocks at 8, 4 and 2 (whole patches).
* ``v1_odd``: img 40, the same widths: MobileViT blocks at 5 and 3 (resized to 6, 4 and back) and 2.
* ``v2``: img 40, v2 (linear attention, align_corners True resize at 5 and 3, not resized back).

For each: eval-mode logits; then in training mode (batch statistics) with a fixed drop_path
input (``<case>.drop_path``, [B, slots] keep scales, some 0) the logits, the mean cross-entropy,
the gradient of every parameter and of the input, and every buffer after the step
(``<case>.buffer.<key>``: running statistics moved with momentum 0.1, num_batches_tracked 4).

* ``xxs.logits``: mobilevit_xxs at 256, batch 1, eval mode, with the closed-form weights of
  ``full_size_values`` (repeated in test/models/mobilevit_goldens.test.ts).

Run from the repository root:  /usr/bin/python3 scripts/make_mobilevit_goldens.py
Check the reference against timm:  /usr/bin/python3 scripts/make_mobilevit_goldens.py --check-timm DIR
(DIR a timm source tree): loads each case's weights into timm's ByobNet and compares eval logits,
train-mode logits, gradients and updated buffers, and mobilevit_xxs / mobilevitv2_050 logits.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)

from make_vit_goldens import write_safetensors  # noqa: E402
from mobilevit_ref import MobileVit  # noqa: E402

ROOT = os.path.dirname(SCRIPTS)
FIXTURES = os.path.join(ROOT, "test", "fixtures")
LABELS = [3, 5, 1]

_V1 = dict(version=1, in_chans=3, num_classes=7, stem_chs=8, channels=[8, 16, 24, 24, 32], strides=[1, 2, 2, 2, 2],
           depths=[1, 2, 1, 1, 1], bottle_ratios=[2, 2, 2, 2, 2], transformer_depths=[0, 0, 1, 2, 1],
           transformer_dims=[0, 0, 16, 24, 16], transformer_ratio=0.5, patch_size=2, num_heads=4, mlp_ratio=2.0,
           num_features=48)
CASES = {
    "v1": dict(_V1, img_size=64),
    "v1_odd": dict(_V1, img_size=40),
    "v2": dict(_V1, img_size=40, version=2, channels=[16, 16, 24, 32, 40], transformer_dims=[0, 0, 0, 0, 0], num_features=0),
}
XXS = dict(version=1, in_chans=3, num_classes=1000, img_size=256, stem_chs=16, channels=[16, 24, 48, 64, 80],
           strides=[1, 2, 2, 2, 2], depths=[1, 3, 1, 1, 1], bottle_ratios=[2] * 5, transformer_depths=[0, 0, 2, 4, 3],
           transformer_dims=[0, 0, 64, 80, 96], transformer_ratio=0.5, patch_size=2, num_heads=4, mlp_ratio=2.0,
           num_features=320)
V2_050 = dict(XXS, version=2, stem_chs=16, channels=[32, 64, 128, 192, 256], depths=[1, 2, 1, 1, 1], transformer_dims=[0] * 5,
              num_features=0)


def det_input(shape):
    n = math.prod(shape)
    return torch.sin(0.05 * torch.arange(n, dtype=torch.float64)).float().reshape(shape)


def perturbed(model, seed):
    """Random weights (PyTorch's default init) with every norm and BatchNorm statistic moved off its init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.num_batches_tracked.fill_(3)
            elif isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm)):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and m.bias is not None:
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model


def build(cfg, seed=0):
    torch.manual_seed(seed)
    return perturbed(MobileVit(**cfg), seed + 1)


def key_hash(key):
    return sum((j + 1) * ord(ch) for j, ch in enumerate(key)) % 10007


def full_size_values(key, shape):
    """Closed-form weights for the full-size golden (no weight file): sin(0.7 i + 0.013 h(key)) scaled by kind."""
    n = math.prod(shape)
    base = torch.sin(0.7 * torch.arange(n, dtype=torch.float64) + 0.013 * key_hash(key))
    if key.endswith("num_batches_tracked"):
        out = torch.zeros(n, dtype=torch.float64)
    elif key.endswith("running_var"):
        out = 1 + 0.3 * base
    elif key.endswith("running_mean"):
        out = 0.1 * base
    elif len(shape) == 1 and key.endswith(".weight"):
        out = 1 + 0.1 * base
    elif key.endswith(".bias"):
        out = 0.02 * base
    else:
        out = base * math.sqrt(3.0 / math.prod(shape[1:]))  # variance 1.5 / fan_in
    return out.float().reshape(shape)


def fill_full_size(model):
    sd = model.state_dict()
    model.load_state_dict({k: full_size_values(k, list(v.shape)).to(v.dtype) for k, v in sd.items()})
    return model


def drop_path_input(slots, seed):
    g = torch.Generator().manual_seed(seed)
    keep = (torch.rand(len(LABELS), slots, generator=g) > 0.3).float()
    return keep / 0.8


def null_gradients(grads):
    """Keys whose gradient is zero up to rounding (a per-channel shift that a train-mode BatchNorm removes)."""
    scale = max(g.abs().max().item() for g in grads.values())
    return [k for k, g in grads.items() if g.abs().max().item() < 1e-6 * scale]


def train_step(model, x, dp):
    model.train()
    xg = x.clone().requires_grad_(True)
    logits = model(xg, dp)
    loss = F.cross_entropy(logits, torch.tensor(LABELS))
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()) + [xg])
    return logits, loss, dict(zip(params, grads[:-1])), grads[-1]


def case(name, cfg, tensors, meta):
    model = build(cfg)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    x = det_input([len(LABELS), cfg["in_chans"], cfg["img_size"], cfg["img_size"]])
    with torch.no_grad():
        eval_logits = model.eval()(x)
    m64 = build(cfg).double().eval()
    with torch.no_grad():
        err = (eval_logits.double() - m64(x.double())).abs().max().item()
    assert err < 1e-4, f"{name}: float32 vs float64 eval logits differ by {err}"
    dp = drop_path_input(model.slots, 7)
    logits, loss, grads, grad_x = train_step(model, x, dp)
    for k, v in sd.items():
        tensors[f"{name}.state.{k}"] = v.float()
    tensors[f"{name}.eval_logits"] = eval_logits
    tensors[f"{name}.drop_path"] = dp
    tensors[f"{name}.train_logits"] = logits.detach()
    for k, gr in grads.items():
        tensors[f"{name}.grad.{k}"] = gr
    tensors[f"{name}.grad_input"] = grad_x
    buffers = [k for k, _ in model.named_buffers()]
    for k, b in model.named_buffers():
        tensors[f"{name}.buffer.{k}"] = b.detach().float()
    meta[name] = {"config": cfg, "labels": LABELS, "keys": list(sd), "params": list(grads), "buffers": buffers,
                  "null_grads": null_gradients(grads),
                  "loss": loss.item(), "input_shape": list(x.shape), "slots": model.slots,
                  "num_params": sum(p.numel() for p in model.parameters()), "f64_max_abs_logit_diff": err}


def timm_model(cfg):
    from timm.models.byobnet import ByobNet, ByoModelCfg
    from timm.models import mobilevit as tm
    blocks = []
    for s, c in enumerate(cfg["channels"]):
        ir = tm._inverted_residual_block(d=cfg["depths"][s], c=c, s=cfg["strides"][s], br=cfg["bottle_ratios"][s])
        if not cfg["transformer_depths"][s]:
            blocks.append(ir)
        elif cfg["version"] == 1:
            blocks.append(tm._mobilevit_block(d=cfg["depths"][s], c=c, s=cfg["strides"][s], transformer_dim=cfg["transformer_dims"][s],
                                              transformer_depth=cfg["transformer_depths"][s], patch_size=cfg["patch_size"],
                                              br=cfg["bottle_ratios"][s]))
        else:
            blocks.append(tm._mobilevitv2_block(d=cfg["depths"][s], c=c, s=cfg["strides"][s], transformer_depth=cfg["transformer_depths"][s],
                                                patch_size=cfg["patch_size"], br=cfg["bottle_ratios"][s]))
    mcfg = ByoModelCfg(blocks=tuple(blocks), stem_chs=cfg["stem_chs"], stem_type="3x3", stem_pool="", downsample="",
                       act_layer="silu", num_features=cfg["num_features"])
    return ByobNet(mcfg, num_classes=cfg["num_classes"], in_chans=cfg["in_chans"])


def check_timm(timm_dir):
    """Loads the reference's weights into timm's own ByobNet and compares outputs, gradients and statistics."""
    sys.path.insert(0, timm_dir)
    import timm
    for name, cfg in CASES.items():
        ours, theirs = build(cfg), timm_model(cfg)
        theirs.load_state_dict(ours.state_dict(), strict=True)
        x = det_input([len(LABELS), cfg["in_chans"], cfg["img_size"], cfg["img_size"]])
        with torch.no_grad():
            d_eval = (ours.eval()(x) - theirs.eval()(x)).abs().max().item()
        theirs.train()
        xg = x.clone().requires_grad_(True)
        t_logits = theirs(xg)
        t_loss = F.cross_entropy(t_logits, torch.tensor(LABELS))
        t_params = dict(theirs.named_parameters())
        t_grads = dict(zip(t_params, torch.autograd.grad(t_loss, list(t_params.values()))))
        o_logits, _, o_grads, _ = train_step(ours, x, None)
        d_train = (o_logits - t_logits).abs().max().item()
        # a per-channel shift feeding a train-mode BatchNorm (through 1x1 convs, resizes) has gradient 0
        # in exact arithmetic: those compare absolutely
        null = null_gradients(o_grads)
        print(f"  {len(null)} gradients are 0 in exact arithmetic, max |timm - ours| there "
              f"{max([(o_grads[k] - t_grads[k]).abs().max().item() for k in null] or [0]):.3g}")
        rel = {k: ((g - t_grads[k]).norm() / t_grads[k].norm().clamp_min(1e-12)).item() for k, g in o_grads.items() if k not in null}
        worst = max(rel, key=rel.get)
        d_grad = rel[worst]
        if d_grad >= 1e-4:
            print(sorted(rel.items(), key=lambda kv: -kv[1])[:8])
        tb = dict(theirs.named_buffers())
        d_buf = max((b - tb[k]).abs().max().item() for k, b in ours.named_buffers())
        print(f"{name}: timm vs reference: eval logits {d_eval:.3g}, train logits {d_train:.3g}, "
              f"max rel grad {d_grad:.3g}, buffers {d_buf:.3g}")
        assert max(d_eval, d_train, d_buf) < 1e-4 and d_grad < 1e-4, name
    for arch, cfg in [("mobilevit_xxs", XXS), ("mobilevitv2_050", V2_050)]:
        ours = fill_full_size(MobileVit(**cfg)).eval()
        theirs = timm.create_model(arch).eval()
        theirs.load_state_dict(ours.state_dict(), strict=True)
        x = det_input([1, 3, 256, 256])
        with torch.no_grad():
            d = (ours(x) - theirs(x)).abs().max().item()
        print(f"{arch}: timm vs reference max |logit diff| {d:.3g}; timm params {sum(p.numel() for p in theirs.parameters())}")
        assert d < 1e-4, arch


def main():
    if "--check-timm" in sys.argv:
        check_timm(sys.argv[sys.argv.index("--check-timm") + 1])
        return
    tensors, meta = {}, {"generator": "scripts/make_mobilevit_goldens.py"}
    for name, cfg in CASES.items():
        case(name, cfg, tensors, meta)
    model = fill_full_size(MobileVit(**XXS)).eval()
    with torch.no_grad():
        tensors["xxs.logits"] = model(det_input([1, 3, 256, 256]))
    meta["xxs"] = {"config": XXS, "keys": list(model.state_dict()), "input_shape": [1, 3, 256, 256],
                   "num_params": sum(p.numel() for p in model.parameters())}
    write_safetensors(os.path.join(FIXTURES, "mobilevit_goldens.safetensors"), tensors, {"generator": meta["generator"]})
    with open(os.path.join(FIXTURES, "mobilevit_goldens.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print({k: v.get("num_params") for k, v in meta.items() if isinstance(v, dict)})


if __name__ == "__main__":
    main()
