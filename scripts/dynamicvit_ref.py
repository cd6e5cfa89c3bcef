"""Plain-PyTorch reference of DynamicViT token pruning (Rao et al. 2021) on the timm-layout ViT of
``timm_vit.py``, and the generator of tessera's DynamicViT goldens.

Written from the paper and from reading raoyongming/DynamicViT at commit
1322e626d1e9eca18cc150569908fb4af29e15f7 (models/dyvit.py: PredictorLG, softmax_with_policy,
VisionTransformerDiffPruning.forward; losses.py: DistillDiffPruningLoss), re-expressed in this
repo's own words, not copied:

* a scorer per stage: LayerNorm (eps 1e-5) → Linear C→C → GELU; the second half of the channels
  is replaced by its policy-weighted mean over the patch tokens; Linear C→C/2 → GELU → Linear
  C/2→C/4 → GELU → Linear C/4→2 → log-softmax (keep, drop); keys score_predictor.N.in_conv.{0,1},
  out_conv.{0,2,4};
* training: before each pruning block the hard Gumbel-softmax decision (τ = 1, straight-through:
  hard − soft.detach() + soft, the keep column) times the previous decision becomes the policy;
  every block's softmax is masked by the policy over keys (a dropped key stays visible to itself),
  exp(l − max)·p, then (e + eps/N) / (Σe + eps), eps 1e-6; the token count never changes;
* inference: the ⌊N·ρ^(s+1)⌋ patch tokens with the highest keep log-probability go on, the class
  token stays first;
* the ratio loss: per stage, the mean over the batch of (mean kept fraction per image − ρ^(s+1))².

Writes ``test/fixtures/dynamicvit_goldens.{json,safetensors}``: random weights (×0.3), the input,
fixed Gumbel noise, logits and loss (CE + ratio loss) of the training path with every gradient,
the full objective (CE on soft targets, ratio loss, KL of logits and MSE of the kept tokens
against the unpruned teacher, weights 1, 2/stages, 0.5, 0.5 as losses.py) with every gradient,
and the inference path's logits and token counts. Asserts that no hard decision or top-k cutoff
is within float noise of a tie, that float32 and float64 agree, and that the inference path with
ρ = 1 keeps every token and equals the plain ViT bit for bit.

Run: /usr/bin/python3 scripts/dynamicvit_ref.py
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

from make_vit_goldens import read_safetensors, write_safetensors  # noqa: E402
from timm_vit import VisionTransformer  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(SCRIPTS), "test", "fixtures")
ST_PATH = os.path.join(FIXTURES, "dynamicvit_goldens.safetensors")
JSON_PATH = os.path.join(FIXTURES, "dynamicvit_goldens.json")
DYNAMICVIT_COMMIT = "1322e626d1e9eca18cc150569908fb4af29e15f7"


class Scorer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.in_conv = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, c), nn.GELU())
        self.out_conv = nn.Sequential(nn.Linear(c, c // 2), nn.GELU(), nn.Linear(c // 2, c // 4), nn.GELU(),
                                      nn.Linear(c // 4, 2), nn.LogSoftmax(dim=-1))

    def forward(self, x, policy):
        h = self.in_conv(x)
        half = h.shape[-1] // 2
        glob = (h[..., half:] * policy).sum(1, keepdim=True) / policy.sum(1, keepdim=True)
        return self.out_conv(torch.cat([h[..., :half], glob.expand(-1, h.shape[1], -1)], -1))


def block_forward(blk, x, policy=None):
    att = blk.attn
    h = blk.norm1(x)
    B, N, C = h.shape
    qkv = att.qkv(h).reshape(B, N, 3, att.num_heads, att.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    logits = (q * att.scale) @ k.transpose(-2, -1)
    if policy is None:
        a = logits.softmax(-1)
    else:
        p = policy.reshape(B, 1, 1, N)
        keys = p + (1 - p) * torch.eye(N, dtype=x.dtype)
        e = (logits - logits.max(-1, keepdim=True)[0]).exp() * keys
        a = (e + 1e-6 / N) / (e.sum(-1, keepdim=True) + 1e-6)
    x = x + att.proj((a @ v).transpose(1, 2).reshape(B, N, C))
    return x + blk.mlp(blk.norm2(x))


def dyn_forward(model, scorers, locs, keep, x, gumbel=None, margins=None):
    """gumbel [B, S·N·2] → training path (logits, decisions); None → inference path (logits, counts)."""
    tokens = model._pos_embed(model.patch_embed(x))
    B, T, _ = tokens.shape
    n = model.patch_embed.num_patches
    prefix = T - n
    decision = torch.ones(B, n, 1, dtype=tokens.dtype)
    policy = torch.ones(B, T, 1, dtype=tokens.dtype) if gumbel is not None else None
    decisions, counts = [], []
    for i, blk in enumerate(model.blocks):
        if i in locs:
            s = locs.index(i)
            scores = scorers[s](tokens[:, prefix:], decision)
            if gumbel is not None:
                z = scores + gumbel[:, s * n * 2:(s + 1) * n * 2].reshape(B, n, 2)
                if margins is not None:
                    margins.append((z[..., 0] - z[..., 1]).abs().min().item())
                soft = z.softmax(-1)
                hard = (z[..., :1] >= z[..., 1:]).to(z.dtype)
                decision = (hard - soft[..., :1].detach() + soft[..., :1]) * decision
                decisions.append(decision.reshape(B, n))
                policy = torch.cat([torch.ones(B, prefix, 1, dtype=tokens.dtype), decision], 1)
            else:
                count = max(1, math.floor(n * keep ** (s + 1)))
                cur = tokens.shape[1] - prefix
                if count < cur:
                    sc = scores[..., 0]
                    srt = sc.sort(1, descending=True)[0]
                    if margins is not None:
                        margins.append((srt[:, count - 1] - srt[:, count]).min().item())
                    idx = sc.argsort(1, descending=True)[:, :count]
                    kept = torch.gather(tokens[:, prefix:], 1, idx[..., None].expand(-1, -1, tokens.shape[-1]))
                    tokens = torch.cat([tokens[:, :prefix], kept], 1)
                    decision = torch.ones(B, count, 1, dtype=tokens.dtype)
        tokens = block_forward(blk, tokens, policy)
        counts.append(tokens.shape[1])
    feats = model.norm(tokens)
    logits = model.forward_head(feats)
    if gumbel is not None:
        dyn_forward.last = (feats[:, prefix:], decision)
    return logits, (decisions if gumbel is not None else counts)


def ratio_loss(decisions, keep):
    return sum(((d.mean(1) - keep ** (s + 1)) ** 2).mean() for s, d in enumerate(decisions))


def dynamicvit_loss(logits, tokens, mask, decisions, keep, targets, t_logits, t_tokens):
    """CE + 2·ratio/stages + 0.5·KL(teacher‖student) + 0.5·MSE over the finally kept patch tokens."""
    ce = torch.sum(-targets * F.log_softmax(logits, -1), -1).mean()
    ratio = ratio_loss(decisions, keep) / len(decisions)
    kl = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(t_logits, -1), reduction="batchmean", log_target=True)
    sel = mask.detach().reshape(-1) > 0.5
    C = tokens.shape[-1]
    tok = ((tokens.reshape(-1, C)[sel] - t_tokens.reshape(-1, C)[sel]) ** 2).mean() if sel.sum() > 0 else tokens.new_zeros(())
    return ce + 2.0 * ratio + 0.5 * kl + 0.5 * tok, dict(ce=ce.item(), ratio=ratio.item(), kl=kl.item(), token=tok.item())


BASE = dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=32, depth=4, num_heads=2,
            mlp_ratio=2.0, qkv_bias=True)
CASES = {
    "cls_keep07": dict(global_pool="token", class_token=True, distilled=False, keep=0.7, locs=[1, 2, 3]),
    "distilled_keep05": dict(global_pool="token", class_token=True, distilled=True, keep=0.5, locs=[2]),
}
LABELS = [3, 7, 1]


def main():
    gen = torch.Generator().manual_seed(2021)
    tensors, meta = {}, {"generator": "scripts/dynamicvit_ref.py", "dynamicvit_commit": DYNAMICVIT_COMMIT, "config": BASE, "labels": LABELS}
    x0 = torch.randn(len(LABELS), 1, 28, 28, generator=gen)
    tensors["input"] = x0
    n = (28 // 4) ** 2
    for name, spec in CASES.items():
        spec = dict(spec)
        keep, locs = spec.pop("keep"), spec.pop("locs")
        model = VisionTransformer(**BASE, **spec)
        model.score_predictor = nn.ModuleList([Scorer(BASE["embed_dim"]) for _ in locs])
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        model.eval()
        scorers = model.score_predictor
        u = torch.rand(len(LABELS), len(locs) * n * 2, generator=gen).clamp(1e-12, 1 - 1e-7)
        gumbel = -torch.log(-torch.log(u))
        tensors[f"{name}.gumbel"] = gumbel
        x = x0.clone().requires_grad_(True)
        margins = []
        logits, decisions = dyn_forward(model, scorers, locs, keep, x, gumbel, margins)
        assert min(margins) > 1e-4, f"{name}: a Gumbel decision is within {min(margins)} of a tie"
        loss = F.cross_entropy(logits, torch.tensor(LABELS)) + ratio_loss(decisions, keep)
        params = dict(model.named_parameters())
        keys = list(params)
        grads = torch.autograd.grad(loss, [params[k] for k in keys] + [x])
        # the full DynamicViT objective, the teacher being the plain ViT of the same weights on the same images
        with torch.no_grad():
            t_feats = model.norm(model.blocks(model._pos_embed(model.patch_embed(x0))))
            t_logits = model.forward_head(t_feats)
            t_tokens = t_feats[:, model.num_prefix_tokens:]
        soft = F.one_hot(torch.tensor(LABELS), BASE["num_classes"]).float() * 0.9 + 0.01
        x2 = x0.clone().requires_grad_(True)
        logits2, decisions2 = dyn_forward(model, scorers, locs, keep, x2, gumbel)
        feats2, mask2 = dyn_forward.last
        objective, parts = dynamicvit_loss(logits2, feats2, mask2, decisions2, keep, soft, t_logits, t_tokens)
        fgrads = torch.autograd.grad(objective, [params[k] for k in keys] + [x2])
        tensors[f"{name}.targets"] = soft
        tensors[f"{name}.teacher_logits"] = t_logits
        tensors[f"{name}.teacher_tokens"] = t_tokens
        for k, g in zip(keys, fgrads[:-1]):
            tensors[f"{name}.objective_grad.{k}"] = g
        tensors[f"{name}.objective_grad_input"] = fgrads[-1]
        with torch.no_grad():
            imargins = []
            ilogits, counts = dyn_forward(model, scorers, locs, keep, x0, None, imargins)
            assert min(imargins) > 1e-4, f"{name}: a top-k cutoff is within {min(imargins)} of a tie"
            m64 = model.double()
            d64, _ = dyn_forward(m64, m64.score_predictor, locs, keep, x0.double(), gumbel.double())
            i64, _ = dyn_forward(m64, m64.score_predictor, locs, keep, x0.double(), None)
            model.float()
            err = max((logits.double() - d64).abs().max().item(), (ilogits.double() - i64).abs().max().item())
            assert err < 1e-4, f"{name}: float32 vs float64 logits differ by {err}"
            plain = model(x0)
            full, full_counts = dyn_forward(model, scorers, locs, 1.0, x0, None)
            assert torch.equal(plain, full) and set(full_counts) == {n + model.num_prefix_tokens}, f"{name}: ρ = 1 differs from the plain ViT"
        for k in keys:
            tensors[f"{name}.param.{k}"] = params[k].detach()
        tensors[f"{name}.logits_train"] = logits.detach()
        for s, d in enumerate(decisions):
            tensors[f"{name}.decision.{s}"] = d.detach()
        tensors[f"{name}.logits_infer"] = ilogits
        tensors[f"{name}.logits_plain"] = plain
        for k, g in zip(keys, grads[:-1]):
            tensors[f"{name}.grad.{k}"] = g
        tensors[f"{name}.grad_input"] = grads[-1]
        meta[name] = {**spec, "keep": keep, "locs": locs, "keys": keys, "loss": loss.item(), "token_counts": counts,
                      "kept_fraction": [d.mean().item() for d in decisions], "objective_loss": objective.item(), "objective_parts": parts,
                      "min_gumbel_margin": min(margins), "min_topk_margin": min(imargins), "f64_max_abs_logit_diff": err}
    write_safetensors(ST_PATH, tensors, {"generator": "scripts/dynamicvit_ref.py", "format": "pt", "torch": torch.__version__})
    _, back = read_safetensors(ST_PATH)
    assert list(back) == list(tensors)
    with open(JSON_PATH, "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
