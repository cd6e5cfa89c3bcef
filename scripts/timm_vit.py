"""A plain-PyTorch Vision Transformer with timm's parameter names and semantics.

Used as the reference model for tessera's golden tests
(``scripts/make_vit_goldens.py``) and as the PyTorch peer of the model
benchmark (``bench/peers/torch_vit.py``).  It mirrors timm's
``vision_transformer.py`` (and DeiT's distilled variant) in eval mode:

* state-dict keys and their order match timm (``cls_token``, ``pos_embed``,
  [``dist_token``], ``patch_embed.proj.*``, ``blocks.N.{norm1,attn.qkv,
  attn.proj,norm2,mlp.fc1,mlp.fc2}.*``, ``norm.*`` or ``fc_norm.*``,
  ``head.*``, [``head_dist.*``]);
* the position embedding covers the prefix tokens and is added after the
  prefix tokens are concatenated (timm's default, ``no_embed_class=False``);
* LayerNorm eps 1e-6, exact (erf) GELU, pre-norm residual blocks;
* ``global_pool='avg'`` uses timm's fc_norm behaviour (``norm`` is Identity,
  mean over patch tokens only, then ``fc_norm``).

No dropout / drop-path / layer-scale: only what inference and a plain
training step need.  Only torch and the standard library are used.

Also provides ``resample_abs_pos_embed`` (timm semantics),
``fill_deterministic`` (closed-form weights that the TypeScript side can
reproduce) and ``det_input`` (closed-form inputs).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Attention through F.scaled_dot_product_attention, as timm's Attention does by default under
# PyTorch 2.x. Off here, so the goldens (Debian's PyTorch 1.13) compute it as written; the
# benchmark peers (bench/peers/torch_vit.py, scripts/mae_torch_step.py) set it from --attn.
FUSED_ATTN = False

__all__ = [
    "VisionTransformer",
    "resample_abs_pos_embed",
    "fill_deterministic",
    "det_input",
    "key_hash",
    "vit_tiny_patch16_224",
]


# ----------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------

class PatchEmbed(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        x = self.proj(x)  # [B, D, gh, gw]
        return x.flatten(2).transpose(1, 2)  # [B, gh*gw, D]


class ConvStemEmbed(nn.Module):
    """tessera's convolutional stem (Xiao et al. 2021, without BatchNorm): log2(patch) 3x3
    stride-2 convs with GELU, each doubling the channels from `width`, then a 1x1 conv to
    embed_dim; the same grid as PatchEmbed. norm="group": a bias-free conv, then GroupNorm(8)
    before each GELU. Keys: backbone.conv{i}.*, backbone.norm{i}.*, proj.*."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim, width=24, strides=None, norm="none"):
        super().__init__()
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.backbone = nn.Module()
        # one 3x3 conv per stride (1 or 2); channels double after each stride-2 conv
        strides = strides or [2] * (patch_size.bit_length() - 1)
        self.stages = len(strides)
        chans, out = in_chans, width
        for i, stride in enumerate(strides):
            setattr(self.backbone, f"conv{i}", nn.Conv2d(chans, out, kernel_size=3, stride=stride, padding=1, bias=norm == "none"))
            if norm == "group":
                setattr(self.backbone, f"norm{i}", nn.GroupNorm(8, out))
            chans = out
            out = out * 2 if stride == 2 else out
        self.proj = nn.Conv2d(chans, embed_dim, kernel_size=1)
        self.norm = norm

    def forward(self, x):
        for i in range(self.stages):
            x = getattr(self.backbone, f"conv{i}")(x)
            if self.norm == "group":
                x = getattr(self.backbone, f"norm{i}")(x)
            x = F.gelu(x)
        x = self.proj(x)  # [B, D, gh, gw]
        return x.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        assert dim % num_heads == 0, "dim must be divisible by num_heads"
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each [B, H, N, Dh]
        if FUSED_ATTN:
            # timm's fused_attn path (its default under PyTorch 2.x; no dropout, no q/k norm)
            x = F.scaled_dot_product_attention(q, k, v)
            return self.proj(x.transpose(1, 2).reshape(B, N, C))
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        x = attn @ v  # [B, H, N, Dh]
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact erf form
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class VisionTransformer(nn.Module):
    def __init__(
        self,
        img_size,
        patch_size,
        in_chans,
        num_classes,
        embed_dim,
        depth,
        num_heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        global_pool="token",
        class_token=True,
        distilled=False,
        embed_layer="patch",
        stem_width=24,
        stem_strides=None,
        stem_norm="none",
    ):
        super().__init__()
        assert global_pool in ("token", "avg"), global_pool
        if global_pool == "token":
            assert class_token, "global_pool='token' needs a class token"
        if distilled:
            assert class_token and global_pool == "token", "distilled models use token pooling"
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.embed_dim = embed_dim
        self.distilled = distilled
        self.num_prefix_tokens = (1 if class_token else 0) + (1 if distilled else 0)
        use_fc_norm = global_pool == "avg"

        # Direct parameters are registered first so that state_dict order is
        # cls_token, pos_embed, [dist_token], patch_embed.*, ... as in timm.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        num_patches = (img_size // patch_size) ** 2
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + self.num_prefix_tokens, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if distilled else None

        self.patch_embed = (ConvStemEmbed(img_size, patch_size, in_chans, embed_dim, stem_width, stem_strides, stem_norm) if embed_layer == "conv"
                            else PatchEmbed(img_size, patch_size, in_chans, embed_dim))
        self.blocks = nn.Sequential(
            *[Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias) for _ in range(depth)]
        )
        self.norm = nn.Identity() if use_fc_norm else nn.LayerNorm(embed_dim, eps=1e-6)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=1e-6) if use_fc_norm else nn.Identity()
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        if distilled:
            self.head_dist = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        else:
            self.head_dist = None

        # timm-like init (only matters for the benchmark peer; goldens overwrite
        # everything with fill_deterministic).
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        if self.dist_token is not None:
            nn.init.trunc_normal_(self.dist_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _pos_embed(self, x):
        B = x.shape[0]
        prefix = []
        if self.cls_token is not None:
            prefix.append(self.cls_token.expand(B, -1, -1))
        if self.dist_token is not None:
            prefix.append(self.dist_token.expand(B, -1, -1))
        if prefix:
            x = torch.cat(prefix + [x], dim=1)
        return x + self.pos_embed

    def forward_features(self, x):
        x = self.patch_embed(x)
        x = self._pos_embed(x)
        x = self.blocks(x)
        x = self.norm(x)
        return x

    def forward_head(self, x):
        if self.distilled:
            x, x_dist = self.head(x[:, 0]), self.head_dist(x[:, 1])
            return (x + x_dist) / 2
        if self.global_pool == "avg":
            x = x[:, self.num_prefix_tokens:].mean(dim=1)
        else:
            x = x[:, 0]
        x = self.fc_norm(x)
        return self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def vit_tiny_patch16_224(num_classes=1000, **kw):
    return VisionTransformer(
        img_size=224, patch_size=16, in_chans=3, num_classes=num_classes,
        embed_dim=192, depth=12, num_heads=3, mlp_ratio=4.0, **kw,
    )


# ----------------------------------------------------------------------------
# position-embedding resampling (timm semantics)
# ----------------------------------------------------------------------------

def resample_abs_pos_embed(posemb, new_size, old_size=None, num_prefix_tokens=1,
                           interpolation="bicubic", antialias=True):
    """Resample a [1, prefix + old_h*old_w, D] absolute position embedding to new_size (h, w).

    Prefix tokens are passed through untouched; the grid part is interpolated
    as a [1, D, h, w] image with F.interpolate(align_corners=False).
    Note: with antialias=True PyTorch's bicubic uses the PIL-style kernel
    (a=-0.5, taps renormalised at the border) even when upsampling.
    """
    num_pos_tokens = posemb.shape[1]
    new_size = tuple(int(s) for s in new_size)
    if old_size is None:
        hw = int(math.sqrt(num_pos_tokens - num_prefix_tokens))
        old_size = (hw, hw)
    old_size = tuple(int(s) for s in old_size)
    if new_size == old_size:
        return posemb
    if num_prefix_tokens:
        prefix, grid = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
    else:
        prefix, grid = None, posemb
    embed_dim = grid.shape[-1]
    orig_dtype = grid.dtype
    grid = grid.float()
    grid = grid.reshape(1, old_size[0], old_size[1], embed_dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new_size, mode=interpolation, antialias=antialias, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, embed_dim).to(orig_dtype)
    if prefix is not None:
        grid = torch.cat([prefix, grid], dim=1)
    return grid


# ----------------------------------------------------------------------------
# deterministic weights / inputs
# ----------------------------------------------------------------------------

_LN_SUFFIXES = ("norm", "norm1", "norm2", "fc_norm")


def key_hash(k):
    return sum((j + 1) * ord(c) for j, c in enumerate(k)) % 10007


def deterministic_values(k, numel):
    """Float64 values for the parameter with state-dict key k (flat row-major)."""
    i = torch.arange(numel, dtype=torch.float64)
    base = torch.sin(0.7 * i + 0.013 * key_hash(k))
    if k.endswith(".weight") and k[: -len(".weight")].endswith(_LN_SUFFIXES):
        return 1.0 + 0.1 * base
    if k.endswith(".bias"):
        return 0.02 * base
    return 0.05 * base


@torch.no_grad()
def fill_deterministic(model):
    """Overwrite every parameter of model with the closed-form values (see deterministic_values)."""
    for k, p in model.state_dict(keep_vars=True).items():
        if not isinstance(p, nn.Parameter):
            continue
        vals = deterministic_values(k, p.numel()).reshape(p.shape)
        p.copy_(vals.to(p.dtype))
    return model


def det_input(shape, dtype=torch.float32):
    """x[i] = sin(0.05 * i) over the flat row-major index, computed in float64."""
    n = 1
    for s in shape:
        n *= int(s)
    i = torch.arange(n, dtype=torch.float64)
    return torch.sin(0.05 * i).reshape(tuple(shape)).to(dtype)
