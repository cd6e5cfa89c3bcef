"""Plain-PyTorch reference implementations of tessera's attention mechanisms.

Each function maps q, k, v [B, H, N, D] (N = prefix tokens + a row-major grid of patches) to
[B, H, N, D], written the direct way (dense masks, per-row loops, einsums) rather than the
blockwise way tessera computes them, so the goldens check the semantics and not a copy of the
same algorithm:

* ``softmax_attention``: softmax(q k^T / sqrt(D)) v.
* ``performer_attention``: FAVOR+ (Choromanski et al. 2021) with given features W [m, D]:
  phi(x) = m^-1/2 (exp(x' W^T - |x'|^2/2 - stab) + 1e-4), x' = x D^-1/4, stab the max over the
  features per query and over all keys and features per (sample, head) for keys, not detached
  (google-research's JAX differentiates it); out = phi(q) (phi(k)^T v) / (phi(q) . sum phi(k)).
* ``gaussian_orthogonal_features``: m x D features, blocks of D orthonormal rows (torch QR)
  scaled by the norms of Gaussian rows (gaussian_orthogonal_random_matrix, scaling=0).
* ``linear_attention``: elu(x)+1 features (Katharopoulos et al. 2020), fast-transformers'
  normaliser eps 1e-6.
* ``sparse_attention``: BigBird-style blocks as a dense softmax under the block mask; the prefix
  tokens and the first ``num_global`` blocks are global, each other query block sees its
  ``pattern`` blocks; ``sparse_pattern`` draws a pattern (global + 3-block window + random fill).
* ``axial_attention``: a row pass then a column pass over the grid, prefix tokens global (dense
  rows; keys of every patch in both passes, with their own values), Axial-DeepLab's relative
  q/k/v terms optional (``rel`` = {"width": [3, 2W-1, D], "height": [3, 2H-1, D]}).

Only torch and the standard library are used.
"""

import math

import torch

__all__ = [
    "softmax_attention", "performer_attention", "gaussian_orthogonal_features", "linear_attention",
    "sparse_attention", "sparse_pattern", "axial_attention",
]


def softmax_attention(q, k, v, mask=None):
    logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return logits.softmax(dim=-1) @ v


def _favor_features(x, w, is_query, eps=1e-4):
    d = x.shape[-1]
    m = w.shape[0]
    dash = torch.einsum("bhnd,md->bhnm", x * d ** -0.25, w)
    half = (x ** 2).sum(dim=-1, keepdim=True) * 0.5 * d ** -0.5
    stab = dash.amax(dim=-1, keepdim=True) if is_query else dash.amax(dim=(-1, -2), keepdim=True)
    return m ** -0.5 * (torch.exp(dash - half - stab) + eps)


def performer_attention(q, k, v, w):
    fq = _favor_features(q, w, True)
    fk = _favor_features(k, w, False)
    context = torch.einsum("bhnm,bhne->bhme", fk, v)
    norm = torch.einsum("bhnm,bhm->bhn", fq, fk.sum(dim=2))
    return torch.einsum("bhnm,bhme->bhne", fq, context) / norm.unsqueeze(-1)


def gaussian_orthogonal_features(m, d, generator):
    blocks = []
    for _ in range(math.ceil(m / d)):
        g = torch.randn(d, d, generator=generator, dtype=torch.float64)
        qmat, _ = torch.linalg.qr(g)
        blocks.append(qmat.t())  # orthonormal rows
    rows = torch.cat(blocks)[:m]
    scale = torch.randn(m, d, generator=generator, dtype=torch.float64).norm(dim=1)
    return (scale.unsqueeze(1) * rows).float()


def linear_attention(q, k, v, eps=1e-6):
    fq = torch.nn.functional.elu(q) + 1
    fk = torch.nn.functional.elu(k) + 1
    kv = torch.einsum("bhnd,bhne->bhde", fk, v)
    z = 1.0 / (torch.einsum("bhnd,bhd->bhn", fq, fk.sum(dim=2)) + eps)
    return torch.einsum("bhnd,bhde,bhn->bhne", fq, kv, z)


def sparse_pattern(num_heads, num_blocks, num_global, num_random, generator, window=1):
    """[H][blocks - global][K] sorted block lists; K = min(blocks, global + 2 window + 1 + random)."""
    k = min(num_blocks, num_global + 2 * window + 1 + num_random)
    out = []
    for _ in range(num_heads):
        rows = []
        for i in range(num_global, num_blocks):
            base = set(range(num_global)) | set(range(max(0, i - window), min(num_blocks, i + window + 1)))
            rest = [s for s in range(num_blocks) if s not in base]
            perm = torch.randperm(len(rest), generator=generator).tolist()
            chosen = [rest[j] for j in perm[: max(0, k - len(base))]]
            rows.append(sorted(base | set(chosen)))
        out.append(rows)
    return out


def sparse_mask(num_heads, prefix, num_patches, block_size, num_global, pattern):
    """The [H, N, N] boolean mask of the block pattern."""
    n = prefix + num_patches
    block = [None] * prefix + [t // block_size for t in range(num_patches)]
    mask = torch.zeros(num_heads, n, n, dtype=torch.bool)
    for h in range(num_heads):
        for i in range(n):
            for j in range(n):
                bi, bj = block[i], block[j]
                mask[h, i, j] = (bi is None or bj is None or bi < num_global
                                 or bj in pattern[h][bi - num_global])
    return mask


def sparse_attention(q, k, v, prefix, block_size, num_global, pattern):
    num_patches = q.shape[2] - prefix
    mask = sparse_mask(q.shape[1], prefix, num_patches, block_size, num_global, pattern)
    return softmax_attention(q, k, v, mask.unsqueeze(0))


def _line(qt, kt, vt, kp, vp, terms):
    """One axis: qt, kt, vt [B, H, L, D] of one line, prefix keys/values [B, H, P, D]."""
    d = qt.shape[-1]
    length = qt.shape[2]
    s = d ** -0.5
    logits = qt @ kt.transpose(-2, -1) * s  # [B, H, L, L]
    if terms is not None:
        idx = torch.arange(length).unsqueeze(0) - torch.arange(length).unsqueeze(1) + length - 1  # [q, k]: k - q + L - 1
        rq, rk, rv = terms[0][idx], terms[1][idx], terms[2][idx]  # [L, L, D]
        logits = logits + torch.einsum("bhqd,qkd->bhqk", qt, rq) * s + torch.einsum("bhkd,qkd->bhqk", kt, rk) * s
    p = kp.shape[2]
    full = torch.cat([qt @ kp.transpose(-2, -1) * s, logits], dim=-1)
    probs = full.softmax(dim=-1)
    out = probs[..., :p] @ vp + probs[..., p:] @ vt
    if terms is not None:
        out = out + torch.einsum("bhqk,qkd->bhqd", probs[..., p:], rv)
    return out


def axial_attention(q, k, v, prefix, grid, rel=None):
    gh, gw = grid
    b, h, n, d = q.shape
    kp, vp = k[:, :, :prefix], v[:, :, :prefix]
    qg = q[:, :, prefix:].reshape(b, h, gh, gw, d)
    kg = k[:, :, prefix:].reshape(b, h, gh, gw, d)
    vg = v[:, :, prefix:].reshape(b, h, gh, gw, d)
    row = torch.stack([_line(qg[:, :, y], kg[:, :, y], vg[:, :, y], kp, vp, rel and rel["width"])
                       for y in range(gh)], dim=2)  # [B, H, gh, gw, D]
    col = torch.stack([_line(qg[:, :, :, x], kg[:, :, :, x], row[:, :, :, x], kp, vp, rel and rel["height"])
                       for x in range(gw)], dim=3)  # [B, H, gh, gw, D]
    patches = col.reshape(b, h, gh * gw, d)
    if prefix == 0:
        return patches
    return torch.cat([softmax_attention(q[:, :, :prefix], k, v), patches], dim=2)
