"""Generate golden values for tessera's explanation maps and adversarial attacks.

Writes ``test/fixtures/explain_goldens.json``, computed with PyTorch in float32 on the
timm-layout reference model of ``scripts/timm_vit.py`` (weights from ``fill_deterministic``):

For each case (``token``: class-token pooling; ``avg``: global average pooling with fc_norm;
``distilled``: DeiT with a distillation token) of the small config (28x28, 1 channel, patch 4,
dim 48, depth 2, 3 heads, 10 classes) on the input ``det_input([2, 1, 28, 28])`` (taken as the
normalised model input):

* ``logits`` [2, 10];
* ``cls_rows`` [depth, 2, heads, T]: row 0 of every block's attention probabilities;
* ``attention`` [2, N] and ``attention_heads`` [2, heads, N]: the last block's source row over
  the N patch tokens, head mean and per head;
* ``rollout.<fusion>_<discard>`` [2, N]: attention rollout (Abnar & Zuidema 2020) with head
  fusion mean/max/min and discard ratios 0, 0.5, 0.9;
* ``grad_rollout`` [2, N]: Chefer et al. 2021 relevance for classes ``CLASSES``;
* ``saliency`` [2, 784]: |d logit_c / d x| (max over channels) for classes ``CLASSES``.

The source row is the class token's row (token pooling, DeiT) or the mean of the patch tokens'
rows (avg pooling). Rollout per layer: fuse heads; zero the floor(r*T*T) lowest entries of the
fused matrix (ties: lower flat index first), keeping entry [0, 0] (vit-explain's
``indices[indices != 0]``); (A + I) / 2; divide each row by its sum; R = A @ R from R = I.
Grad-rollout: A_bar = mean_h clamp(dA * A, min=0), R = R + A_bar @ R from R = I.

The ``token`` case also has ``attention_full_l0_b0_h0`` [T, T] (block 0, image 0, head 0) and
``fgsm``: one FGSM step (torchattacks semantics) on the [0, 1] image ``(det_input + 1) / 2``,
normalised in the graph with mean 0.286 / std 0.353, labels ``CLASSES``, eps 0.1:
``x_adv = clamp(x + eps * sign(g), 0, 1)`` with g = d mean-CE / d x; it records ``grad`` and
``x_adv`` [2, 784], the adversarial ``logits`` and ``min_abs_grad``. Gradient entries within
float32 noise of zero may take either sign in another engine; the test allows exactly those.

Run from the repository root:

    /usr/bin/python3 scripts/make_explain_goldens.py

Only torch and the standard library are used.
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)

from timm_vit import VisionTransformer, det_input, fill_deterministic  # noqa: E402

ROOT = os.path.dirname(SCRIPTS)
OUT = os.path.join(ROOT, "test", "fixtures", "explain_goldens.json")

SMALL = dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=48, depth=2,
             num_heads=3, mlp_ratio=4.0, qkv_bias=True, global_pool="token", class_token=True,
             distilled=False)
CASES = {
    "token": SMALL,
    "avg": dict(SMALL, global_pool="avg"),
    "distilled": dict(SMALL, distilled=True),
}
CLASSES = [3, 7]
FUSIONS = ["mean", "max", "min"]
DISCARDS = [0.0, 0.5, 0.9]
MEAN, STD, EPS = 0.286, 0.353, 0.1


def capture_attention(model):
    """Makes every block's attention store its softmax probabilities (with retained gradients)."""
    store = []

    def make_forward(attn_mod):
        def forward(x):
            B, N, C = x.shape
            qkv = attn_mod.qkv(x).reshape(B, N, 3, attn_mod.num_heads, attn_mod.head_dim).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            attn = ((q * attn_mod.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # [B, H, N, N]
            if attn.requires_grad:
                attn.retain_grad()
            store.append(attn)
            y = (attn @ v).transpose(1, 2).reshape(B, N, C)
            return attn_mod.proj(y)
        return forward

    for blk in model.blocks:
        blk.attn.forward = make_forward(blk.attn)
    return store


def build(cfg):
    model = VisionTransformer(**cfg)
    fill_deterministic(model)
    model.eval()
    return model


def source_row(m, prefix, avg):
    """[T, T] -> [N]: the class token's row, or the mean of the patch rows, over patch columns."""
    if avg:
        return m[prefix:, prefix:].mean(dim=0)
    return m[0, prefix:]


def discard_lowest(f, ratio):
    t = f.shape[-1]
    flat = f.flatten().clone()
    k = int(ratio * t * t)
    if k:
        order = sorted(range(flat.numel()), key=lambda i: (flat[i].item(), i))[:k]
        idx = torch.tensor([i for i in order if i != 0], dtype=torch.int64)
        flat[idx] = 0
    return flat.reshape(t, t)


def rollout(layers, fusion, ratio):
    """layers: per block [H, T, T] of one image -> the rollout matrix [T, T]."""
    t = layers[0].shape[-1]
    eye = torch.eye(t, dtype=torch.float64)
    r = eye.clone()
    for a in layers:
        a = a.double()
        f = {"mean": lambda: a.mean(0), "max": lambda: a.max(0)[0], "min": lambda: a.min(0)[0]}[fusion]()
        if ratio:
            f = discard_lowest(f, ratio)
        f = (f + eye) / 2
        f = f / f.sum(dim=-1, keepdim=True)
        r = f @ r
    return r


def grad_rollout(layers, grads):
    t = layers[0].shape[-1]
    r = torch.eye(t, dtype=torch.float64)
    for a, g in zip(layers, grads):
        cam = (g.double() * a.double()).clamp(min=0).mean(0)
        r = r + cam @ r
    return r


def explain_case(cfg):
    model = build(cfg)
    store = capture_attention(model)
    prefix = model.num_prefix_tokens
    avg = cfg["global_pool"] == "avg"
    x = det_input([2, 1, 28, 28]).requires_grad_(True)
    logits = model(x)
    select = F.one_hot(torch.tensor(CLASSES), cfg["num_classes"]).float()
    (logits * select).sum().backward()
    attns = [a.detach() for a in store]
    grads = [a.grad.detach() for a in store]
    heads = cfg["num_heads"]
    out = {
        "config": cfg,
        "classes": CLASSES,
        "prefix": prefix,
        "logits": logits.detach().tolist(),
        "cls_rows": [a[:, :, 0, :].tolist() for a in attns],
        "attention": [source_row(attns[-1][b].mean(0), prefix, avg).tolist() for b in range(2)],
        "attention_heads": [[source_row(attns[-1][b, h], prefix, avg).tolist() for h in range(heads)] for b in range(2)],
        "rollout": {},
        "grad_rollout": [source_row(grad_rollout([a[b] for a in attns], [g[b] for g in grads]), prefix, avg).tolist()
                         for b in range(2)],
        "saliency": x.grad.abs().amax(dim=1).reshape(2, -1).tolist(),
    }
    for fusion in FUSIONS:
        for ratio in DISCARDS:
            out["rollout"][f"{fusion}_{ratio}"] = [
                source_row(rollout([a[b] for a in attns], fusion, ratio), prefix, avg).tolist() for b in range(2)]
    return out, attns


def fgsm_case(cfg):
    model = build(cfg)
    x = ((det_input([2, 1, 28, 28]) + 1) / 2).requires_grad_(True)
    labels = torch.tensor(CLASSES)
    loss = F.cross_entropy(model((x - MEAN) / STD), labels)
    (g,) = torch.autograd.grad(loss, [x])
    adv = torch.clamp(x.detach() + EPS * g.sign(), 0, 1)
    with torch.no_grad():
        adv_logits = model((adv - MEAN) / STD)
    return {
        "mean": MEAN, "std": STD, "eps": EPS, "labels": CLASSES,
        "grad": g.reshape(2, -1).tolist(),
        "x_adv": adv.reshape(2, -1).tolist(),
        "logits": adv_logits.tolist(),
        "min_abs_grad": g.abs().min().item(),
    }


def rounded(v):
    if isinstance(v, float):
        return float(f"{v:.9g}")
    if isinstance(v, list):
        return [rounded(u) for u in v]
    if isinstance(v, dict):
        return {k: rounded(u) for k, u in v.items()}
    return v


def main():
    torch.set_default_dtype(torch.float32)
    golden = {"generator": "scripts/make_explain_goldens.py", "torch": torch.__version__}
    for name, cfg in CASES.items():
        case, attns = explain_case(cfg)
        if name == "token":
            case["attention_full_l0_b0_h0"] = attns[0][0, 0].reshape(-1).tolist()
            case["fgsm"] = fgsm_case(cfg)
            assert case["fgsm"]["min_abs_grad"] > 1e-9, "an FGSM gradient is too close to zero for a stable sign"
        golden[name] = case
    with open(OUT, "w") as f:
        json.dump(rounded(golden), f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
