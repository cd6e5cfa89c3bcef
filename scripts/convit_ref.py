"""A plain-PyTorch ConViT with timm's parameter names, initialisation and semantics.

ConViT (d'Ascoli et al. 2021, "ConViT: Improving Vision Transformers with Soft Convolutional
Inductive Biases", https://arxiv.org/abs/2103.10697) as timm's ``convit.py`` builds it, written
from the paper and timm's documented behaviour for tessera's goldens
(``scripts/make_convit_goldens.py``). No dropout; drop path only as given per-sample scales (the
masks tessera draws on the host).

* ``embed_dim`` is the width *per head*, as timm's argument: the token width is
  ``embed_dim * num_heads`` (48 per head for every released model).
* Blocks ``0 .. local_up_to_layer - 1`` use gated positional self-attention (GPSA):
  keys ``attn.gating_param`` [H], ``attn.qk`` (2D, no bias by default), ``attn.v``,
  ``attn.proj``, ``attn.pos_proj`` (Linear 3 -> H, with bias). The attention is
  ``(1 - sigmoid(g)) * softmax(q k^T / sqrt(hd)) + sigmoid(g) * softmax(pos_proj(rel))``,
  divided by its row sum, where ``rel[i, j] = [dx, dy, dx^2 + dy^2]`` for query patch i and
  key patch j (dx: column of j minus column of i, dy: row of j minus row of i).
* The remaining blocks use plain multi-head self-attention (``attn.qkv``, no bias by default).
* ``pos_embed`` covers the patches only; the class token joins (prepended) right before block
  ``local_up_to_layer``, so GPSA blocks see patch tokens alone.
* LayerNorm eps 1e-6, exact GELU, ``global_pool='token'`` (class token after the final norm)
  or ``'avg'`` (mean of every token but the first, after the final norm).
* Initialisation: Linear weights trunc-normal(0.02) with zero bias, LayerNorm ones/zeros,
  cls_token and pos_embed trunc-normal(0.02), the patch conv PyTorch's default; then each GPSA's
  locality init: ``v.weight = I`` and, with ``k = int(sqrt(H))`` and ``c = (k - 1) / 2``, the
  head ``h1 + k * h2`` gets ``pos_proj.weight = [2 (h2 - c), 2 (h1 - c), -1]``; the whole
  ``pos_proj.weight`` is then multiplied by ``locality_strength``. ``gating_param`` starts at 1.

Only torch and the standard library are used.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ConVit", "relative_positions", "locality_weights", "CONFIGS", "convit"]


def relative_positions(side):
    """[N, N, 3] float32 with N = side^2 (patches row-major): [dx, dy, dx^2 + dy^2] from query i to key j."""
    rows = torch.arange(side * side) // side
    cols = torch.arange(side * side) % side
    dx = (cols.view(1, -1) - cols.view(-1, 1)).float()
    dy = (rows.view(1, -1) - rows.view(-1, 1)).float()
    return torch.stack([dx, dy, dx * dx + dy * dy], dim=-1)


def locality_weights(num_heads, strength, base):
    """The locality init of pos_proj.weight [H, 3] over ``base`` (the rows outside the k x k heads keep it)."""
    w = base.clone()
    k = int(num_heads ** 0.5)
    c = (k - 1) / 2
    for h1 in range(k):
        for h2 in range(k):
            w[h1 + k * h2] = torch.tensor([2 * (h2 - c), 2 * (h1 - c), -1.0])
    return w * strength


class PatchEmbed(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, dim):
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, N, D]


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class GPSA(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias, locality_strength):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.locality_strength = locality_strength
        self.qk = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.pos_proj = nn.Linear(3, num_heads)
        self.gating_param = nn.Parameter(torch.ones(num_heads))

    def attention(self, x):
        B, N, C = x.shape
        H, hd = self.num_heads, self.head_dim
        q, k = self.qk(x).view(B, N, 2, H, hd).permute(2, 0, 3, 1, 4)  # each [B, H, N, hd]
        content = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5, dim=-1)  # [B, H, N, N]
        # the patch tokens form a square grid; N is an int in eager mode and a 0-d tensor when
        # torch.onnx.export traces, which isqrt takes too (the grid is fixed, so tracing it as a constant is right)
        rel = relative_positions(math.isqrt(N)).to(x.dtype)  # [N, N, 3]
        position = torch.softmax(self.pos_proj(rel).permute(2, 0, 1), dim=-1)  # [H, N, N]
        gate = torch.sigmoid(self.gating_param).view(1, H, 1, 1)
        mixed = (1 - gate) * content + gate * position
        return mixed / mixed.sum(dim=-1, keepdim=True)

    def forward(self, x):
        B, N, C = x.shape
        v = self.v(x).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # [B, H, N, hd]
        y = (self.attention(x) @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(y)

    @torch.no_grad()
    def local_init(self):
        self.v.weight.copy_(torch.eye(self.v.weight.shape[0]))
        self.pos_proj.weight.copy_(locality_weights(self.num_heads, self.locality_strength, self.pos_proj.weight))


class MHSA(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def qkv_heads(self, x):
        B, N, C = x.shape
        return self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x [B, H, N, hd]

    def attention(self, x):
        q, k, _ = self.qkv_heads(x)
        return torch.softmax(q @ k.transpose(-1, -2) * self.head_dim ** -0.5, dim=-1)  # [B, H, N, N]

    def forward(self, x):
        B, N, C = x.shape
        v = self.qkv_heads(x)[2]
        return self.proj((self.attention(x) @ v).transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, qkv_bias, use_gpsa, locality_strength):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = GPSA(dim, num_heads, qkv_bias, locality_strength) if use_gpsa else MHSA(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, scales=None):
        """``scales``: drop path's per-sample branch scales [B, 2] (keep mask / keep probability), or None."""
        a, m = (None, None) if scales is None else (scales[:, 0].view(-1, 1, 1), scales[:, 1].view(-1, 1, 1))
        y = self.attn(self.norm1(x))
        x = x + (y if a is None else y * a)
        y = self.mlp(self.norm2(x))
        return x + (y if m is None else y * m)


class ConVit(nn.Module):
    def __init__(self, img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=48, depth=12,
                 num_heads=12, mlp_ratio=4.0, qkv_bias=False, local_up_to_layer=10, locality_strength=1.0,
                 global_pool="token", use_pos_embed=True):
        super().__init__()
        assert global_pool in ("token", "avg"), global_pool
        assert 0 <= local_up_to_layer < depth, "the class token must join before some block"
        dim = embed_dim * num_heads
        self.local_up_to_layer = local_up_to_layer
        self.global_pool = global_pool
        # own parameters first: state_dict order cls_token, pos_embed, patch_embed.*, blocks.*, norm.*, head.*
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches, dim)) if use_pos_embed else None
        self.blocks = nn.ModuleList([
            Block(dim, num_heads, mlp_ratio, qkv_bias, i < local_up_to_layer, locality_strength) for i in range(depth)
        ])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

        with torch.no_grad():
            if self.pos_embed is not None:
                nn.init.trunc_normal_(self.pos_embed, std=0.02)
            nn.init.trunc_normal_(self.cls_token, std=0.02)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
            for m in self.modules():
                if isinstance(m, GPSA):
                    m.local_init()

    def forward_features(self, x, drop_scales=None):
        """``drop_scales``: [B, depth * 2], columns 2i / 2i + 1 scale block i's attention / MLP branch."""
        x = self.patch_embed(x)  # [B, N, D]
        if self.pos_embed is not None:
            x = x + self.pos_embed
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        for i, block in enumerate(self.blocks):
            if i == self.local_up_to_layer:
                x = torch.cat([cls, x], dim=1)  # [B, 1 + N, D]
            x = block(x, None if drop_scales is None else drop_scales[:, 2 * i:2 * i + 2])
        return self.norm(x)

    def forward_head(self, x):
        x = x[:, 1:].mean(dim=1) if self.global_pool == "avg" else x[:, 0]
        return self.head(x)

    def forward(self, x, drop_scales=None):
        return self.forward_head(self.forward_features(x, drop_scales))


# timm's registered entries (embed_dim per head)
CONFIGS = {
    "convit_tiny": dict(embed_dim=48, num_heads=4, local_up_to_layer=10, locality_strength=1.0),
    "convit_small": dict(embed_dim=48, num_heads=9, local_up_to_layer=10, locality_strength=1.0),
    "convit_base": dict(embed_dim=48, num_heads=16, local_up_to_layer=10, locality_strength=1.0),
}


def convit(name, **kw):
    return ConVit(**dict(CONFIGS[name], **kw))
