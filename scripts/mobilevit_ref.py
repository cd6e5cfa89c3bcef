"""A plain-PyTorch MobileViT (v1 and v2) with timm's module names, for tessera's goldens.

Written from the papers (Mehta & Rastegari 2022, arXiv 2110.02178 and 2206.02680) and the
layout timm builds on ByobNet: stem conv-BN-SiLU 3x3/2; per stage inverted residuals
(1x1 expand of the input width -> depthwise 3x3 with the stride -> linear 1x1, a residual only
when width and stride stay; drop path on the branch either way), then a MobileViT block:
- v1: conv_kxk (full 3x3) -> conv_1x1 (no bias) -> unfold to [B*P, N, D] -> ViT blocks (SiLU MLP,
  LayerNorm eps 1e-5) -> norm -> fold -> conv_proj (SiLU) -> conv_fusion over cat(input, proj);
  sizes that are not multiples of the patch are resized bilinearly (align_corners False) before
  the unfold and back after the fold. final_conv 1x1, average pool, head.fc.
- v2: optional resize (align_corners True, kept), conv_kxk (depthwise) -> conv_1x1 -> [B, D, P, N]
  -> linear-attention blocks (GroupNorm(1)) -> norm -> fold -> conv_proj (no activation).

Checked against timm by scripts/make_mobilevit_goldens.py --check-timm DIR (loads this model's
state dict into timm's ByobNet and compares eval and train-mode outputs and updated statistics).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Transformer-block attention through F.scaled_dot_product_attention where PyTorch has it, as
# timm's Attention takes that path under PyTorch 2.x; bench/peers/torch_family.py sets it from
# its --attn flag.
FUSED_ATTN = hasattr(F, "scaled_dot_product_attention")


def make_divisible(v, divisor=8):
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


class ConvNormAct(nn.Module):
    def __init__(self, cin, cout, k, stride=1, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, ((stride - 1) + (k - 1)) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.silu(x) if self.act else x


def drop(x, scale):
    return x if scale is None else x * scale


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, ratio):
        super().__init__()
        mid = make_divisible(cin * ratio)
        self.conv1_1x1 = ConvNormAct(cin, mid, 1)
        self.conv2_kxk = ConvNormAct(mid, mid, 3, stride, groups=mid)
        self.conv3_1x1 = ConvNormAct(mid, cout, 1, act=False)
        self.residual = cin == cout and stride == 1
        self.slots = 1

    def forward(self, x, scales=None):
        y = drop(self.conv3_1x1(self.conv2_kxk(self.conv1_1x1(x))), None if scales is None else scales[0].view(-1, 1, 1, 1))
        return y + x if self.residual else y


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if FUSED_ATTN:
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            a = ((q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
            o = a @ v
        return self.proj(o.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden, conv=False):
        super().__init__()
        lin = (lambda i, o: nn.Conv2d(i, o, 1)) if conv else nn.Linear
        self.fc1 = lin(dim, hidden)
        self.fc2 = lin(hidden, dim)

    def forward(self, x):
        return self.fc2(F.silu(self.fc1(x)))


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, s1=None, s2=None):
        x = x + drop(self.attn(self.norm1(x)), s1)
        return x + drop(self.mlp(self.norm2(x)), s2)


class MobileVitBlock(nn.Module):
    def __init__(self, c, dim, depth, patch, heads, mlp_ratio):
        super().__init__()
        self.conv_kxk = ConvNormAct(c, c, 3)
        self.conv_1x1 = nn.Conv2d(c, dim, 1, bias=False)
        self.transformer = nn.Sequential(*[TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.conv_proj = ConvNormAct(dim, c, 1)
        self.conv_fusion = ConvNormAct(2 * c, c, 3)
        self.patch = patch
        self.slots = 2 * depth

    def forward(self, x, scales=None):
        p = self.patch
        y = self.conv_1x1(self.conv_kxk(x))
        b, d, h, w = y.shape
        nh, nw = math.ceil(h / p), math.ceil(w / p)
        resized = nh * p != h or nw * p != w
        if resized:
            y = F.interpolate(y, size=(nh * p, nw * p), mode="bilinear", align_corners=False)
        # sequence b*P + (py*p + px) holds patch ih*nw + iw
        t = y.reshape(b, d, nh, p, nw, p).permute(0, 3, 5, 2, 4, 1).reshape(b * p * p, nh * nw, d)
        for k, blk in enumerate(self.transformer):
            s = None if scales is None else [scales[2 * k + i].repeat_interleave(p * p).view(-1, 1, 1) for i in (0, 1)]
            t = blk(t, *(s or [None, None]))
        t = self.norm(t)
        y = t.reshape(b, p, p, nh, nw, d).permute(0, 5, 3, 1, 4, 2).reshape(b, d, nh * p, nw * p)
        if resized:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        return self.conv_fusion(torch.cat([x, self.conv_proj(y)], 1))


class LinearSelfAttention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.qkv_proj = nn.Conv2d(dim, 1 + 2 * dim, 1)
        self.out_proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        q, k, v = self.qkv_proj(x).split([1, self.dim, self.dim], dim=1)
        context = (k * q.softmax(-1)).sum(-1, keepdim=True)  # [B, D, P, 1]
        return self.out_proj(F.relu(v) * context)


class LinearTransformerBlock(nn.Module):
    def __init__(self, dim, mlp_ratio):
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.attn = LinearSelfAttention(dim)
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), conv=True)

    def forward(self, x, s1=None, s2=None):
        x = x + drop(self.attn(self.norm1(x)), s1)
        return x + drop(self.mlp(self.norm2(x)), s2)


class MobileVitV2Block(nn.Module):
    def __init__(self, c, dim, depth, patch, mlp_ratio):
        super().__init__()
        self.conv_kxk = ConvNormAct(c, c, 3, groups=c)
        self.conv_1x1 = nn.Conv2d(c, dim, 1, bias=False)
        self.transformer = nn.Sequential(*[LinearTransformerBlock(dim, mlp_ratio) for _ in range(depth)])
        self.norm = nn.GroupNorm(1, dim)
        self.conv_proj = ConvNormAct(dim, c, 1, act=False)
        self.patch = patch
        self.slots = 2 * depth

    def forward(self, x, scales=None):
        p = self.patch
        b, _, h, w = x.shape
        nh, nw = math.ceil(h / p), math.ceil(w / p)
        if nh * p != h or nw * p != w:
            x = F.interpolate(x, size=(nh * p, nw * p), mode="bilinear", align_corners=True)
        y = self.conv_1x1(self.conv_kxk(x))
        d = y.shape[1]
        t = y.reshape(b, d, nh, p, nw, p).permute(0, 1, 3, 5, 2, 4).reshape(b, d, p * p, nh * nw)
        for k, blk in enumerate(self.transformer):
            s = None if scales is None else [scales[2 * k + i].view(-1, 1, 1, 1) for i in (0, 1)]
            t = blk(t, *(s or [None, None]))
        t = self.norm(t)
        y = t.reshape(b, d, p, p, nh, nw).permute(0, 1, 4, 2, 5, 3).reshape(b, d, nh * p, nw * p)
        return self.conv_proj(y)


class MobileVit(nn.Module):
    """cfg keys as tessera's MobileVitConfig (snake_case): version, stem_chs, channels, strides, depths,
    bottle_ratios, transformer_depths, transformer_dims, transformer_ratio, patch_size, num_heads,
    mlp_ratio, num_features, in_chans, num_classes."""

    def __init__(self, version=1, stem_chs=16, channels=(), strides=(), depths=(), bottle_ratios=(), transformer_depths=(),
                 transformer_dims=(), transformer_ratio=0.5, patch_size=2, num_heads=4, mlp_ratio=2.0, num_features=0,
                 in_chans=3, num_classes=1000, img_size=None):
        super().__init__()
        self.stem = ConvNormAct(in_chans, stem_chs, 3, 2)
        prev = stem_chs
        stages = []
        for s, c in enumerate(channels):
            c = make_divisible(c)
            blocks = []
            for j in range(depths[s]):
                blocks.append(InvertedResidual(prev, c, strides[s] if j == 0 else 1, bottle_ratios[s]))
                prev = c
            if transformer_depths[s]:
                if version == 1:
                    blocks.append(MobileVitBlock(c, transformer_dims[s], transformer_depths[s], patch_size, num_heads, mlp_ratio))
                else:
                    blocks.append(MobileVitV2Block(c, make_divisible(transformer_ratio * c), transformer_depths[s], patch_size, mlp_ratio))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.final_conv = ConvNormAct(prev, num_features, 1) if num_features else nn.Identity()
        self.head = nn.Module()
        self.head.fc = nn.Linear(num_features or prev, num_classes)
        self.slots = sum(b.slots for st in self.stages for b in st)

    def forward(self, x, drop_path=None):
        """drop_path: per-sample keep scales [B, slots] (tessera's drop_path input), or None."""
        x = self.stem(x)
        slot = 0
        for st in self.stages:
            for blk in st:
                x = blk(x, None if drop_path is None else [drop_path[:, slot + i] for i in range(blk.slots)])
                slot += blk.slots
        return self.head.fc(self.final_conv(x).mean((2, 3)))
