"""Plain-PyTorch reference of token merging (ToMe, Bolya et al. 2023) on the timm-layout ViT of
``timm_vit.py``, and the generator of tessera's ToMe goldens.

Written from the paper and from reading facebookresearch/ToMe at commit
af95e4b1befa172dadccd8c81e223b10090f9579 (tome/merge.py: bipartite_soft_matching, merge_wavg,
merge_source; tome/patch/timm.py: ToMeBlock, ToMeAttention), re-expressed in this repo's own
words, not copied:

* between each block's attention branch and its MLP, the keys averaged over heads [B, T, C] are
  normalised; tokens alternate into A (even positions) and B (odd); each A token's best cosine
  match in B is found; the class token (A's first) is never a source and a distillation token
  (B's first) never a destination; the r A tokens with the best matches are summed into their
  partners (r capped at half of the unprotected tokens);
* the output is [A's unmerged tokens (position order when there is a class token, else by
  decreasing best score), B]; with a distillation token [unm₀, B₀, unm₁…, B₁…];
* merging is size-weighted: x·size and size are summed, then divided; sizes start at 1;
* proportional attention: log(size) added to every query's logits over the keys, from the block
  after the first merge on;
* the matching is under no_grad (indices only); gradients flow through the gathers and sums.

Writes ``test/fixtures/tome_goldens.{json,safetensors}``: for a few small models (class token,
DeiT distillation token, avg pooling without class token), the random weights, the input, the
logits, the loss and the gradients of every parameter and of the input, the token counts after
each block, and the source map (which patch each final token holds). Each case asserts that its
matching decisions have a margin (no near-ties that float noise could flip) and that float32 and
float64 give the same logits.

Run: /usr/bin/python3 scripts/tome_ref.py
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)

from make_vit_goldens import read_safetensors, write_safetensors  # noqa: E402
from timm_vit import VisionTransformer  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(SCRIPTS), "test", "fixtures")
ST_PATH = os.path.join(FIXTURES, "tome_goldens.safetensors")
JSON_PATH = os.path.join(FIXTURES, "tome_goldens.json")
TOME_COMMIT = "af95e4b1befa172dadccd8c81e223b10090f9579"


def matching(metric, r, class_token, distill_token, margins):
    """Returns merge(x) for the r best pairs of metric [B, T, C], or None; appends decision margins."""
    t = metric.shape[1]
    guarded = int(class_token) + int(distill_token)
    r = min(r, (t - guarded) // 2)
    if r <= 0:
        return None
    with torch.no_grad():
        unit = metric / metric.norm(dim=-1, keepdim=True)
        a, b = unit[:, 0::2], unit[:, 1::2]
        scores = torch.einsum("bic,bjc->bij", a, b)
        if class_token:
            scores[:, 0, :] = float("-inf")
        if distill_token:
            scores[:, :, 0] = float("-inf")
        best, partner = scores.max(dim=-1)  # [B, Na]
        order = torch.sort(best, dim=-1, descending=True).indices  # [B, Na]
        # margins: between the r-th and (r+1)-th best score, and each source's best vs second best
        ranked = torch.gather(best, 1, order)
        margins.append((ranked[:, r - 1] - ranked[:, r]).min().item())
        top2 = scores.topk(2, dim=-1).values
        gap = (top2[..., 0] - top2[..., 1])
        merged_gaps = torch.gather(gap, 1, order[:, :r])
        margins.append(merged_gaps.min().item())
        kept, moved = order[:, r:], order[:, :r]
        if class_token:
            kept = kept.sort(dim=-1).values
        target = torch.gather(partner, 1, moved)  # [B, r]
    def merge(x):
        c = x.shape[-1]
        src, dst = x[:, 0::2], x[:, 1::2]
        unm = torch.gather(src, 1, kept[..., None].expand(-1, -1, c))
        moving = torch.gather(src, 1, moved[..., None].expand(-1, -1, c))
        dst = dst.index_put(  # dst[b, target[b, i]] += moving[b, i], per sample
            (torch.arange(x.shape[0])[:, None].expand(-1, r), target), moving, accumulate=True)
        if distill_token:
            return torch.cat([unm[:, :1], dst[:, :1], unm[:, 1:], dst[:, 1:]], dim=1)
        return torch.cat([unm, dst], dim=1)

    return merge


def tome_forward(model, x, r, trace_source=False):
    """The model's logits with r tokens merged per block; also the token counts and source map."""
    tokens = model._pos_embed(model.patch_embed(x))
    class_token = model.cls_token is not None
    distill = model.dist_token is not None
    size, source, counts, margins = None, None, [], []
    if trace_source:
        t = tokens.shape[1]
        source = torch.eye(t, dtype=tokens.dtype).expand(tokens.shape[0], t, t)
    for blk in model.blocks:
        att = blk.attn
        h = blk.norm1(tokens)
        B, N, C = h.shape
        qkv = att.qkv(h).reshape(B, N, 3, att.num_heads, att.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        logits = (q * att.scale) @ k.transpose(-2, -1)
        if size is not None:
            logits = logits + torch.log(size)[:, None, None, :, 0]
        y = (logits.softmax(-1) @ v).transpose(1, 2).reshape(B, N, C)
        tokens = tokens + att.proj(y)
        merge = matching(k.mean(1), r, class_token, distill, margins) if r > 0 else None
        if merge is not None:
            s = torch.ones_like(tokens[..., :1]) if size is None else size
            total = merge(tokens * s)
            size = merge(s)
            tokens = total / size
            if source is not None:
                source = merge(source)
        tokens = tokens + blk.mlp(blk.norm2(tokens))
        counts.append(tokens.shape[1])
    return model.forward_head(model.norm(tokens)), counts, source, margins


BASE = dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=32, depth=3, num_heads=2,
            mlp_ratio=2.0, qkv_bias=True)
CASES = {
    "cls_r8": dict(global_pool="token", class_token=True, distilled=False, r=8),
    "distilled_r6": dict(global_pool="token", class_token=True, distilled=True, r=6),
    "avg_r10": dict(global_pool="avg", class_token=False, distilled=False, r=10),
    "cls_r40_capped": dict(global_pool="token", class_token=True, distilled=False, r=40),
}
LABELS = [3, 7, 1]


def main():
    gen = torch.Generator().manual_seed(21)
    tensors, meta = {}, {"generator": "scripts/tome_ref.py", "tome_commit": TOME_COMMIT, "config": BASE, "labels": LABELS}
    x0 = torch.randn(len(LABELS), 1, 28, 28, generator=gen)
    tensors["input"] = x0
    for name, spec in CASES.items():
        spec = dict(spec)
        r = spec.pop("r")
        model = VisionTransformer(**BASE, **spec)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        model.eval()
        x = x0.clone().requires_grad_(True)
        logits, counts, source, margins = tome_forward(model, x, r, trace_source=True)
        assert min(margins) > 1e-4, f"{name}: a matching decision is within {min(margins)} of a tie"
        loss = F.cross_entropy(logits, torch.tensor(LABELS))
        params = dict(model.named_parameters())
        keys = list(params)
        grads = torch.autograd.grad(loss, [params[k] for k in keys] + [x])
        with torch.no_grad():
            d64, _, _, _ = tome_forward(model.double(), x0.double(), r)
            err = (logits.double() - d64).abs().max().item()
        model.float()
        with torch.no_grad():
            plain = model(x0)
            r0, _, _, _ = tome_forward(model, x0, 0)
        assert torch.equal(plain, r0), f"{name}: r = 0 differs from the plain ViT"
        tensors[f"{name}.logits_r0"] = plain
        assert err < 1e-4, f"{name}: float32 vs float64 logits differ by {err}"
        for k in keys:
            tensors[f"{name}.param.{k}"] = params[k].detach()
        tensors[f"{name}.logits"] = logits.detach()
        tensors[f"{name}.source"] = source.detach()
        for k, g in zip(keys, grads[:-1]):
            tensors[f"{name}.grad.{k}"] = g
        tensors[f"{name}.grad_input"] = grads[-1]
        meta[name] = {**spec, "r": r, "keys": keys, "loss": loss.item(), "token_counts": counts,
                      "min_decision_margin": min(margins), "f64_max_abs_logit_diff": err}
    write_safetensors(ST_PATH, tensors, {"generator": "scripts/tome_ref.py", "format": "pt", "torch": torch.__version__})
    _, back = read_safetensors(ST_PATH)
    assert list(back) == list(tensors)
    with open(JSON_PATH, "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"wrote {ST_PATH} ({os.path.getsize(ST_PATH)} bytes, {len(tensors)} tensors) and {JSON_PATH}")
    for name in CASES:
        print(name, meta[name]["token_counts"], "margin", meta[name]["min_decision_margin"])


if __name__ == "__main__":
    main()
