"""A plain-PyTorch Swin Transformer (v1) with timm's module names, for tessera's goldens.

Written from the paper (Liu et al. 2021) and timm's documented behaviour (>= 0.9 layout: patch
merging at the start of stages 1..3, head.fc, non-persistent index/mask buffers): window
attention with a relative position bias, cyclic shift by -w//2 on odd blocks with the -100 mask,
roll first then zero-pad bottom/right to whole windows, a stage not larger than the window uses
one window and no shift (its resolution halved with floor per stage, as timm), LayerNorm eps 1e-5, mean over H, W before head.fc.

Checked against timm itself by scripts/make_swin_goldens.py --check-timm DIR (a timm source
checkout on PYTHONPATH), which loads this model's state dict into timm's SwinTransformer and
compares the logits.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

# Window attention through F.scaled_dot_product_attention, as timm computes it when its
# experimental fused attention is switched on (TIMM_FUSED_ATTN=2; off by default in timm, so off
# here). bench/peers/torch_family.py turns it on for its --attn sdpa rows.
FUSED_ATTN = False


def window_partition(x, w):
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def window_reverse(windows, w, h, wd):
    c = windows.shape[-1]
    x = windows.view(-1, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, wd, c)


def relative_position_index(w):
    ys, xs = torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # 2, N
    rel = coords[:, :, None] - coords[:, None, :]  # 2, N, N
    return (rel[0] + w - 1) * (2 * w - 1) + (rel[1] + w - 1)  # N, N


def shifted_mask(hp, wp, w, s):
    labels = torch.zeros(hp, wp)
    region = lambda i, size: 0 if i < size - w else (1 if i < size - s else 2)  # noqa: E731
    for y in range(hp):
        for x in range(wp):
            labels[y, x] = region(y, hp) * 3 + region(x, wp)
    win = window_partition(labels.view(1, hp, wp, 1), w).squeeze(-1)  # nW, N
    diff = win[:, None, :] - win[:, :, None]
    return torch.where(diff != 0, torch.tensor(-100.0), torch.tensor(0.0))  # nW, N, N


class WindowAttention(nn.Module):
    def __init__(self, dim, heads, w, qkv_bias=True):
        super().__init__()
        self.heads, self.w = heads, w
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * w - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(w), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        bw, n, c = x.shape
        d = c // self.heads
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        bias = bias.permute(2, 0, 1).unsqueeze(0)  # 1, heads, N, N
        if FUSED_ATTN:
            # timm's fused path (TIMM_FUSED_ATTN=2): bias and shift mask as SDPA's additive mask
            if mask is not None:
                nw = mask.shape[0]
                bias = (bias.unsqueeze(1) + mask[None, :, None]).expand(bw // nw, -1, -1, -1, -1).reshape(bw, self.heads, n, n)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            return self.proj(o.transpose(1, 2).reshape(bw, n, c))
        attn = (q * d ** -0.5) @ k.transpose(-2, -1) + bias
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(-1, nw, self.heads, n, n) + mask[None, :, None]).view(-1, self.heads, n, n)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, res, heads, window, shift, mlp_ratio, qkv_bias):
        super().__init__()
        self.w = res if res <= window else window
        self.s = 0 if res <= window else shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, self.w, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _attn(self, x):
        b, h, wd, c = x.shape
        w, s = self.w, self.s
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        ph, pw = (w - h % w) % w, (w - wd % w) % w
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, wd + pw
        mask = shifted_mask(hp, wp, w, s) if s else None  # of the padded map, as timm's dynamic mask
        y = window_reverse(self.attn(window_partition(x, w), mask), w, hp, wp)[:, :h, :wd]
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        return y

    def forward(self, x):
        x = x + self._attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim, out_dim):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x):
        b, h, w, c = x.shape
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        b, h, w, c = x.shape
        x = x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class Stage(nn.Module):
    def __init__(self, in_dim, dim, res, depth, heads, downsample, window, mlp_ratio, qkv_bias):
        super().__init__()
        self.downsample = PatchMerging(in_dim, dim) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[
            Block(dim, res, heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio, qkv_bias) for i in range(depth)])

    def forward(self, x):
        return self.blocks(self.downsample(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class Head(nn.Module):
    def __init__(self, dim, classes):
        super().__init__()
        self.fc = nn.Linear(dim, classes)

    def forward(self, x):
        return self.fc(x.mean(dim=(1, 2)))


class SwinTransformer(nn.Module):
    def __init__(self, img_size=224, patch_size=4, in_chans=3, num_classes=1000, embed_dim=96,
                 depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7, mlp_ratio=4.0, qkv_bias=True):
        super().__init__()
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        # the resolution that clamps each stage's window is timm's: halved with floor, although
        # patch merging pads an odd map (so the tensor is ceil-halved)
        res = img_size // patch_size
        stages, in_dim = [], embed_dim
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            if i > 0:
                res = res // 2
            dim = embed_dim * 2 ** i
            stages.append(Stage(in_dim, dim, res, depth, heads, i > 0, window_size, mlp_ratio, qkv_bias))
            in_dim = dim
        self.layers = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(in_dim)
        self.head = Head(in_dim, num_classes)

    def forward(self, x):
        return self.head(self.norm(self.layers(self.patch_embed(x))))
