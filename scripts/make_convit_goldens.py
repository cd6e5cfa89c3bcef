"""Generate golden reference values for tessera's ConViT tests (test/models/convit.test.ts).

Computed with PyTorch in float32 on the timm-layout reference model of ``scripts/convit_ref.py``:

* ``test/fixtures/convit_goldens.safetensors`` - all tensors (F32):
    - for each small case (``small``: 16x16 RGB, patch 4 (a 4x4 grid), 4 heads of 8, depth 3,
      2 GPSA blocks, token pooling; ``small_avg``: 12x12, patch 4 (3x3), 9 heads of 4 (a 3x3
      locality kernel), depth 2, 1 GPSA block, qkv biases, locality strength 0.7, avg pooling):
      ``<case>.param.<key>`` the weights (timm's init, then perturbed: gates 1 + 1.5 N(0, 1) so
      several are negative, pos_proj weights + 0.5 N(0, 1) and biases 0.5 N(0, 1), LayerNorm
      weights 1 + 0.2 N, other biases 0.1 N, every matrix + 0.2 N); ``<case>.logits``,
      ``<case>.grad.<key>`` (d mean-CE / d param for every key), ``<case>.grad_input`` for the
      input det_input([2, C, H, W]) and labels ``LABELS``; ``<case>.attn.<i>`` block i's attention
      probabilities (GPSA [B, H, N, N], MHSA [B, H, 1 + N, 1 + N]);
    - ``small.drop_path_logits``: the ``small`` logits with drop-path scales ``DROP_SCALES``
      [2, depth * 2] (column 2i scales block i's attention branch, 2i + 1 its MLP branch);
    - ``tiny224.logits`` [1, 1000]: convit_tiny with ``fill_deterministic`` weights (scripts/timm_vit.py:
      sin-based closed form that the TypeScript side reproduces) on det_input([1, 3, 224, 224]).
* ``test/fixtures/convit_goldens.json`` - per case: config, labels, ordered state-dict keys, loss;
  ``tiny224``: its 180 state-dict keys and parameter count; ``params``: the port's parameter
  counts of convit_tiny / small / base (asserted equal to timm's 5,710,512 / 27,777,322 /
  86,540,040); ``init``: the locality init of pos_proj.weight (first k^2 rows) for 4, 6 and 9
  heads at strengths 1 and 0.5, and the [3 * 3, 3 * 3, 3] relative positions of a 3x3 grid.

The true gradient of every ``pos_proj.bias`` is zero (a per-head constant added to all of a row's
scores leaves its softmax unchanged); the float64 run asserts it, and the float32 values are
rounding noise which the test compares in absolute terms.

Run from the repository root (Debian's python3-torch):

    /usr/bin/python3 scripts/make_convit_goldens.py

Only torch and the standard library are used.
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)

from convit_ref import CONFIGS, GPSA, ConVit, convit, locality_weights, relative_positions  # noqa: E402
from make_vit_goldens import read_safetensors, write_safetensors  # noqa: E402
from timm_vit import det_input, fill_deterministic  # noqa: E402

ROOT = os.path.dirname(SCRIPTS)
FIXTURES = os.path.join(ROOT, "test", "fixtures")
ST_PATH = os.path.join(FIXTURES, "convit_goldens.safetensors")
JSON_PATH = os.path.join(FIXTURES, "convit_goldens.json")

torch.set_default_dtype(torch.float32)

CASES = {
    "small": dict(img_size=16, patch_size=4, in_chans=3, num_classes=5, embed_dim=8, depth=3, num_heads=4,
                  mlp_ratio=2.0, qkv_bias=False, local_up_to_layer=2, locality_strength=1.0, global_pool="token"),
    "small_avg": dict(img_size=12, patch_size=4, in_chans=3, num_classes=5, embed_dim=4, depth=2, num_heads=9,
                      mlp_ratio=2.0, qkv_bias=True, local_up_to_layer=1, locality_strength=0.7, global_pool="avg"),
}
LABELS = [1, 3]
# drop path for the `small` case (depth 3): block 0 keeps both branches, block 1 drops sample 0's
# attention branch and sample 1's MLP branch, block 2 scales by 1 / keep = 1 / 0.8
DROP_SCALES = [[1, 1, 0, 1.25, 1.25, 0], [1, 1, 1.25, 0, 0, 1.25]]
TIMM_PARAMS = {"convit_tiny": 5_710_512, "convit_small": 27_777_322, "convit_base": 86_540_040}


@torch.no_grad()
def perturb(model, seed):
    """timm's init (already in place), moved off it so that every formula shows in the goldens."""
    gen = torch.Generator().manual_seed(seed)
    noise = lambda p: torch.randn(p.shape, generator=gen)  # noqa: E731
    for k, p in model.named_parameters():
        if k.endswith("gating_param"):
            p.copy_(1 + 1.5 * noise(p))
        elif k.endswith("pos_proj.weight"):
            p.add_(0.5 * noise(p))
        elif k.endswith("pos_proj.bias"):
            p.copy_(0.5 * noise(p))
        elif p.dim() == 1 and k.endswith("weight"):  # LayerNorm
            p.copy_(1 + 0.2 * noise(p))
        elif k.endswith("bias"):
            p.copy_(0.1 * noise(p))
        else:
            p.add_(0.2 * noise(p))
    assert (model.blocks[0].attn.gating_param < 0).any(), "want some gates below 0"
    return model


def attentions(model, x):
    """Every block's attention probabilities, from the input each attention module receives."""
    seen = []
    hooks = [b.attn.register_forward_pre_hook(lambda m, args: seen.append((m, args[0]))) for b in model.blocks]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        return [m.attention(inp) for m, inp in seen]


def small_case(name, cfg, tensors, meta, seed):
    torch.manual_seed(seed)
    model = perturb(ConVit(**cfg), seed + 1).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    keys = list(state)
    params = dict(model.named_parameters())
    assert list(params) == keys, "named_parameters and state_dict order differ"

    x = det_input([len(LABELS), cfg["in_chans"], cfg["img_size"], cfg["img_size"]]).requires_grad_(True)
    labels = torch.tensor(LABELS, dtype=torch.int64)
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    grads = torch.autograd.grad(loss, [params[k] for k in keys] + [x])

    # the same in float64: logits agree, and pos_proj.bias gets no gradient
    model64 = ConVit(**cfg).double()
    model64.load_state_dict({k: v.double() for k, v in state.items()})
    x64 = det_input(list(x.shape), dtype=torch.float64).requires_grad_(True)
    logits64 = model64(x64)
    err = (logits.detach().double() - logits64).abs().max().item()
    assert err < 1e-4, f"{name}: float32 vs float64 logits differ by {err}"
    p64 = dict(model64.named_parameters())
    bias_keys = [k for k in keys if k.endswith("pos_proj.bias")]
    g64 = torch.autograd.grad(F.cross_entropy(logits64, labels), [p64[k] for k in bias_keys])
    assert all(g.abs().max().item() < 1e-12 for g in g64), "pos_proj.bias should get no gradient"

    for k in keys:
        tensors[f"{name}.param.{k}"] = state[k]
    tensors[f"{name}.logits"] = logits.detach()
    for k, g in zip(keys, grads[:-1]):
        tensors[f"{name}.grad.{k}"] = g
    tensors[f"{name}.grad_input"] = grads[-1]
    for i, a in enumerate(attentions(model, x.detach())):
        tensors[f"{name}.attn.{i}"] = a
    meta[name] = {"config": cfg, "labels": LABELS, "keys": keys, "loss": loss.item(), "input_shape": list(x.shape),
                  "f64_max_abs_logit_diff": err,
                  "gates": state["blocks.0.attn.gating_param"].tolist()}
    return model, x.detach()


def main():
    tensors = {}
    meta = {}
    small, x = small_case("small", CASES["small"], tensors, meta, seed=0)
    with torch.no_grad():
        tensors["small.drop_path_logits"] = small(x, torch.tensor(DROP_SCALES))
    meta["small"]["drop_scales"] = DROP_SCALES
    small_case("small_avg", CASES["small_avg"], tensors, meta, seed=10)

    tiny = fill_deterministic(convit("convit_tiny")).eval()
    x = det_input([1, 3, 224, 224])
    with torch.no_grad():
        logits = tiny(x)
        err = (logits.double() - fill_deterministic(convit("convit_tiny")).double()(x.double())).abs().max().item()
    assert err < 1e-3, f"tiny224: float32 vs float64 logits differ by {err}"
    tensors["tiny224.logits"] = logits
    keys = list(tiny.state_dict())
    assert len(keys) == 180, len(keys)
    meta["tiny224"] = {"model": "convit_tiny", "keys": keys, "input_shape": [1, 3, 224, 224], "f64_max_abs_logit_diff": err,
                       "num_params": sum(p.numel() for p in tiny.parameters())}

    meta["params"] = {n: sum(p.numel() for p in convit(n).parameters()) for n in CONFIGS}
    assert meta["params"] == TIMM_PARAMS, meta["params"]

    init = {}
    for heads in (4, 6, 9):
        k = int(heads ** 0.5)
        for strength in (1.0, 0.5):
            w = locality_weights(heads, strength, torch.zeros(heads, 3))
            init[f"heads{heads}_strength{strength}"] = w[: k * k].tolist()
    g = GPSA(8, 4, False, 1.0)
    g.local_init()
    assert torch.equal(g.v.weight, torch.eye(8)) and torch.equal(g.gating_param, torch.ones(4))
    meta["init"] = {"pos_proj": init, "relative_3x3": relative_positions(3).flatten().tolist()}
    meta["generator"] = "scripts/make_convit_goldens.py"

    os.makedirs(FIXTURES, exist_ok=True)
    write_safetensors(ST_PATH, tensors, {"generator": "scripts/make_convit_goldens.py", "format": "pt", "torch": torch.__version__})
    _, back = read_safetensors(ST_PATH)
    assert list(back) == list(tensors)
    for k, t in tensors.items():
        assert torch.equal(back[k], t.detach().float()), k
    with open(JSON_PATH, "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    size = os.path.getsize(ST_PATH)
    assert size < 1024 * 1024, size
    print(f"wrote {ST_PATH} ({size} bytes, {len(tensors)} tensors) and {JSON_PATH}")


if __name__ == "__main__":
    main()
