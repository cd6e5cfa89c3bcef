"""Generate golden reference values for tessera's attention mechanisms.

Computed in float32 with the plain-PyTorch references of ``scripts/attention_ref.py`` (each also
run in float64 as a sanity check):

* ``test/fixtures/attention_goldens.safetensors`` (F32):
    - ``mech.inputs.{q,k,v,w}`` [2, 3, 21, 8] (1 prefix token + a 4x5 grid; q, k scaled sin/cos
      waves, see ``qkv()``) and, per mechanism case ``mech.<case>``: ``out`` and the gradients
      ``dq``, ``dk``, ``dv`` (and ``d.<param>``) of sum(out * w); ``mech.performer.features``
      [32, 8] (the random features fed to both sides);
    - per model case ``vit.<case>``: the logits of a small ViT (img 28, patch 4, 1 channel,
      10 classes, dim 32, depth 2, 2 heads, mlp ratio 2) whose blocks use that mechanism, with
      the deterministic weights of ``timm_vit.fill_deterministic`` on every parameter, input
      ``det_input([2, 1, 28, 28])``, labels [3, 7]; ``grad.<key>`` of the mean cross-entropy for
      every parameter and ``grad_input``; for performer the features of each block
      (``blocks.N.attn.fast_attention.projection_matrix``).
* ``test/fixtures/attention_goldens.json``: per case its options, the sparse patterns, the
  parameter keys, the loss; and the generator's path.

Run from the repository root:

    /usr/bin/python3 scripts/make_attention_goldens.py

Only torch and the standard library are used.
"""

import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)

from attention_ref import (  # noqa: E402
    axial_attention, gaussian_orthogonal_features, linear_attention, performer_attention,
    softmax_attention, sparse_attention, sparse_pattern,
)
from make_vit_goldens import read_safetensors, write_safetensors  # noqa: E402
from timm_vit import VisionTransformer, det_input, fill_deterministic  # noqa: E402

ROOT = os.path.dirname(SCRIPTS)
FIXTURES = os.path.join(ROOT, "test", "fixtures")
ST_PATH = os.path.join(FIXTURES, "attention_goldens.safetensors")
JSON_PATH = os.path.join(FIXTURES, "attention_goldens.json")

SHAPE = (2, 3, 21, 8)
PREFIX, GRID = 1, (4, 5)
VIT = dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=32, depth=2, num_heads=2,
           mlp_ratio=2.0, qkv_bias=True, global_pool="token", class_token=True, distilled=False)
LABELS = [3, 7]


def qkv(dtype=torch.float64):
    i = torch.arange(math.prod(SHAPE), dtype=torch.float64).reshape(SHAPE)
    q = 1.5 * torch.sin(0.37 * i + 0.1)
    k = 1.5 * torch.cos(0.23 * i)
    v = torch.sin(0.11 * i + 1.0)
    w = torch.cos(0.05 * i)
    return [t.to(dtype) for t in (q, k, v, w)]


# ----------------------------------------------------------------------------
# mechanism cases: q, k, v -> out and gradients of sum(out * w)
# ----------------------------------------------------------------------------

def mechanism_cases(gen):
    features = gaussian_orthogonal_features(32, SHAPE[3], gen)
    pattern = sparse_pattern(SHAPE[1], num_blocks=7, num_global=1, num_random=1, generator=gen)
    full = sparse_pattern(SHAPE[1], num_blocks=7, num_global=1, num_random=9, generator=gen)
    pattern_np = sparse_pattern(SHAPE[1], num_blocks=7, num_global=1, num_random=1, generator=gen)
    rel = {"width": 0.3 * torch.sin(0.3 * torch.arange(3 * 9 * 8, dtype=torch.float64)).reshape(3, 9, 8),
           "height": 0.3 * torch.cos(0.2 * torch.arange(3 * 7 * 8, dtype=torch.float64)).reshape(3, 7, 8)}
    no_prefix = lambda t: t[:, :, PREFIX:]  # noqa: E731
    cases = {
        "softmax": (dict(attn_type="softmax"), lambda q, k, v, p: softmax_attention(q, k, v), {}),
        "softmax_chunked": (dict(attn_type="softmax", query_chunk=6), lambda q, k, v, p: softmax_attention(q, k, v), {}),
        "performer": (dict(attn_type="performer", nb_features=32),
                      lambda q, k, v, p: performer_attention(q, k, v, features.to(q.dtype)), {}),
        "linear": (dict(attn_type="linear"), lambda q, k, v, p: linear_attention(q, k, v), {}),
        "sparse": (dict(attn_type="sparse", block_size=3, num_global_blocks=1, num_random_blocks=1, pattern=pattern),
                   lambda q, k, v, p: sparse_attention(q, k, v, PREFIX, 3, 1, pattern), {}),
        "sparse_full": (dict(attn_type="sparse", block_size=3, num_global_blocks=1, num_random_blocks=9, pattern=full),
                        lambda q, k, v, p: sparse_attention(q, k, v, PREFIX, 3, 1, full), {}),
        "sparse_no_prefix": (dict(attn_type="sparse", block_size=3, num_global_blocks=1, num_random_blocks=1, pattern=pattern_np, prefix=0),
                             lambda q, k, v, p: sparse_attention(no_prefix(q), no_prefix(k), no_prefix(v), 0, 3, 1, pattern_np), {}),
        "axial": (dict(attn_type="axial"), lambda q, k, v, p: axial_attention(q, k, v, PREFIX, GRID), {}),
        "axial_no_prefix": (dict(attn_type="axial", prefix=0),
                            lambda q, k, v, p: axial_attention(no_prefix(q), no_prefix(k), no_prefix(v), 0, GRID), {}),
        "axial_rel_pos": (dict(attn_type="axial", axial_rel_pos=True),
                          lambda q, k, v, p: axial_attention(q, k, v, PREFIX, GRID, p), rel),
    }
    tensors, meta = {}, {}
    for t, name in zip(qkv(torch.float32), "qkvw"):
        tensors[f"mech.inputs.{name}"] = t
    tensors["mech.performer.features"] = features
    for t, name in zip(rel.values(), ("relative_width", "relative_height")):
        tensors[f"mech.axial_rel_pos.param.{name}"] = t.float()
    for name, (opts, fn, params) in cases.items():
        results = {}
        for dtype in (torch.float32, torch.float64):
            q, k, v, w = [t.requires_grad_(True) for t in qkv(dtype)]
            ps = {key: t.to(dtype).requires_grad_(True) for key, t in params.items()}
            out = fn(q, k, v, ps or None)
            wt = w[:, :, PREFIX:] if opts.get("prefix") == 0 else w
            wanted = [q, k, v, *ps.values()]
            grads = torch.autograd.grad((out * wt).sum(), wanted)
            if opts.get("prefix") == 0:
                grads = [g[:, :, PREFIX:] for g in grads[:3]] + list(grads[3:])
            results[dtype] = (out.detach(), grads)
        out, grads = results[torch.float32]
        err = (out.double() - results[torch.float64][0]).abs().max().item()
        assert err < 1e-4, f"mech.{name}: float32 vs float64 differ by {err}"
        tensors[f"mech.{name}.out"] = out
        for g, gname in zip(grads, ["dq", "dk", "dv", *(f"d.{p}" for p in ("relative_width", "relative_height"))]):
            tensors[f"mech.{name}.{gname}"] = g
        meta[f"mech.{name}"] = {**opts, "f64_max_abs_diff": err}
    return tensors, meta


# ----------------------------------------------------------------------------
# model cases: a small ViT whose blocks use the mechanism
# ----------------------------------------------------------------------------

class FastAttentionState(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.register_buffer("projection_matrix", features)


class AxialState(nn.Module):
    def __init__(self, grid, d):
        super().__init__()
        self.relative_width = nn.Parameter(torch.zeros(3, 2 * grid[1] - 1, d))
        self.relative_height = nn.Parameter(torch.zeros(3, 2 * grid[0] - 1, d))


class MechanismAttention(nn.Module):
    """timm's Attention (fused qkv, proj) with the heads' attention given by ``mechanism``."""

    def __init__(self, dim, num_heads, mechanism, state=None, state_name=None):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.mechanism = mechanism
        self.state_name = state_name
        if state is not None:
            self.add_module(state_name, state)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = self.mechanism(qkv[0], qkv[1], qkv[2], getattr(self, self.state_name) if self.state_name else None)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


def model_cases(gen):
    d = VIT["embed_dim"] // VIT["num_heads"]
    grid = (VIT["img_size"] // VIT["patch_size"],) * 2
    m = round(d * math.log(d))

    def rel_terms(s):
        return {"width": s.relative_width, "height": s.relative_height}

    specs = {
        "softmax": (dict(attn_type="softmax", query_chunk=16), lambda: (lambda q, k, v, s: softmax_attention(q, k, v), None, None)),
        "performer": (dict(attn_type="performer"), lambda: (lambda q, k, v, s: performer_attention(q, k, v, s.projection_matrix),
                                                            FastAttentionState(gaussian_orthogonal_features(m, d, gen)), "fast_attention")),
        "linear": (dict(attn_type="linear"), lambda: (lambda q, k, v, s: linear_attention(q, k, v), None, None)),
        "sparse": (dict(attn_type="sparse", block_size=8, num_random_blocks=2, num_global_blocks=1), None),
        "axial": (dict(attn_type="axial"), lambda: (lambda q, k, v, s: axial_attention(q, k, v, 1, grid), None, None)),
        "axial_rel_pos": (dict(attn_type="axial", axial_rel_pos=True),
                          lambda: (lambda q, k, v, s: axial_attention(q, k, v, 1, grid, rel_terms(s)), AxialState(grid, d), "axial")),
    }
    tensors, meta = {}, {}
    for name, (opts, make) in specs.items():
        model = VisionTransformer(**VIT)
        patterns = []
        for blk in model.blocks:
            if name == "sparse":
                pat = sparse_pattern(VIT["num_heads"], num_blocks=7, num_global=1, num_random=2, generator=gen)
                patterns.append(pat)
                mech = (lambda pat: (lambda q, k, v, s: sparse_attention(q, k, v, 1, 8, 1, pat)))(pat)
                blk.attn = MechanismAttention(VIT["embed_dim"], VIT["num_heads"], mech)
            else:
                mech, state, state_name = make()
                blk.attn = MechanismAttention(VIT["embed_dim"], VIT["num_heads"], mech, state, state_name)
        fill_deterministic(model)
        model.eval()
        x = det_input([len(LABELS), 1, 28, 28]).requires_grad_(True)
        labels = torch.tensor(LABELS)
        logits = model(x)
        loss = F.cross_entropy(logits, labels)
        params = dict(model.named_parameters())
        keys = list(params)
        grads = torch.autograd.grad(loss, [params[k] for k in keys] + [x])
        with torch.no_grad():
            err = (logits.double() - model.double()(x.double())).abs().max().item()
        assert err < 1e-4, f"vit.{name}: float32 vs float64 logits differ by {err}"
        model.float()
        tensors[f"vit.{name}.logits"] = logits.detach()
        for k, g in zip(keys, grads[:-1]):
            tensors[f"vit.{name}.grad.{k}"] = g
        tensors[f"vit.{name}.grad_input"] = grads[-1]
        for k, b in model.named_buffers():
            tensors[f"vit.{name}.buffer.{k}"] = b
        meta[f"vit.{name}"] = {**opts, "keys": keys, "buffers": [k for k, _ in model.named_buffers()], "loss": loss.item(),
                               "labels": LABELS, "patterns": patterns, "f64_max_abs_logit_diff": err}
    meta["vit_config"] = VIT
    return tensors, meta


def main():
    gen = torch.Generator().manual_seed(18)
    tensors, meta = mechanism_cases(gen)
    t2, m2 = model_cases(gen)
    tensors.update(t2)
    meta.update(m2)
    meta["generator"] = "scripts/make_attention_goldens.py"
    write_safetensors(ST_PATH, tensors, {"generator": "scripts/make_attention_goldens.py", "format": "pt", "torch": torch.__version__})
    _, back = read_safetensors(ST_PATH)
    assert list(back) == list(tensors)
    with open(JSON_PATH, "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    size = os.path.getsize(ST_PATH)
    assert size < 2 * 1024 * 1024, size
    print(f"wrote {ST_PATH} ({size} bytes, {len(tensors)} tensors) and {JSON_PATH}")


if __name__ == "__main__":
    main()
