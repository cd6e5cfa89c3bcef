"""A plain-PyTorch CvT with Hugging Face's ``CvtForImageClassification`` state-dict layout.

CvT (Wu et al. 2021, https://arxiv.org/abs/2103.15808) as transformers' ``modeling_cvt.py`` computes
it, written from reading that file (no code taken from it), for tessera's goldens
(scripts/make_cvt_goldens.py):

* each stage starts with a convolutional token embedding (Conv2d, then LayerNorm over channels);
* each layer: x + attn(layernorm_before(x)), then layernorm_after, intermediate (Linear + exact
  GELU) and output (Linear) with the residual added inside ``output``;
* attention: the patch tokens as a map go through three depthwise conv + BatchNorm projections
  (query stride 1, key/value stride 2); the class token skips them and is prepended again before
  the linear q/k/v; scores are scaled by embed_dim ** -0.5 (HF's ``self.scale``, not head_dim);
* every LayerNorm is nn.LayerNorm's default eps 1e-5 (HF never reads config.layer_norm_eps);
* head: LayerNorm of the class token (or of every token, then their mean, without one), classifier.

Drop path is applied as HF does: with per-sample scales ``drop_path`` [B, 2 * layers], column 2i
scales the attention branch of layer i and column 2i + 1 the *whole* output of the layer (HF's
second drop_path comes after the MLP residual is added). Dropouts are left out (0 in HF's configs).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def hf_config(**kw):
    """CvtConfig's defaults (microsoft/cvt-13) overridden by kw, with HF's argument names."""
    cfg = dict(num_channels=3, num_labels=1000, patch_sizes=[7, 3, 3], patch_stride=[4, 2, 2], patch_padding=[2, 1, 1],
               embed_dim=[64, 192, 384], num_heads=[1, 3, 6], depth=[1, 2, 10], mlp_ratio=[4.0, 4.0, 4.0],
               qkv_bias=[True, True, True], cls_token=[False, False, True], kernel_qkv=[3, 3, 3], padding_kv=[1, 1, 1],
               stride_kv=[2, 2, 2], padding_q=[1, 1, 1], stride_q=[1, 1, 1])
    cfg.update(kw)
    return cfg


class ConvEmbeddings(nn.Module):
    def __init__(self, in_ch, dim, kernel, stride, padding):
        super().__init__()
        self.projection = nn.Conv2d(in_ch, dim, kernel, stride=stride, padding=padding)
        self.normalization = nn.LayerNorm(dim)

    def forward(self, x):
        x = self.projection(x)  # [B, D, H, W]
        b, d, h, w = x.shape
        return self.normalization(x.reshape(b, d, h * w).transpose(1, 2)), h, w  # [B, HW, D]


class Embedding(nn.Module):
    def __init__(self, *args):
        super().__init__()
        self.convolution_embeddings = ConvEmbeddings(*args)


class DepthwiseBn(nn.Module):
    def __init__(self, dim, kernel, padding, stride):
        super().__init__()
        self.convolution = nn.Conv2d(dim, dim, kernel, stride=stride, padding=padding, groups=dim, bias=False)
        self.normalization = nn.BatchNorm2d(dim)


class ConvProjection(nn.Module):
    def __init__(self, *args):
        super().__init__()
        self.convolution_projection = DepthwiseBn(*args)

    def forward(self, fmap):
        p = self.convolution_projection
        y = p.normalization(p.convolution(fmap))  # [B, D, H', W']
        return y.flatten(2).transpose(1, 2)  # [B, H'W', D]


class SelfAttention(nn.Module):
    def __init__(self, dim, heads, kernel, pad_q, pad_kv, stride_q, stride_kv, bias, with_cls):
        super().__init__()
        self.dim, self.heads, self.with_cls = dim, heads, with_cls
        self.convolution_projection_query = ConvProjection(dim, kernel, pad_q, stride_q)
        self.convolution_projection_key = ConvProjection(dim, kernel, pad_kv, stride_kv)
        self.convolution_projection_value = ConvProjection(dim, kernel, pad_kv, stride_kv)
        self.projection_query = nn.Linear(dim, dim, bias=bias)
        self.projection_key = nn.Linear(dim, dim, bias=bias)
        self.projection_value = nn.Linear(dim, dim, bias=bias)

    def forward(self, x, h, w):
        if self.with_cls:
            cls, x = x[:, :1], x[:, 1:]
        b, n, d = x.shape
        fmap = x.transpose(1, 2).reshape(b, d, h, w)  # [B, D, H, W]
        q, k, v = (m(fmap) for m in (self.convolution_projection_query, self.convolution_projection_key,
                                     self.convolution_projection_value))
        if self.with_cls:
            q, k, v = (torch.cat([cls, t], 1) for t in (q, k, v))

        def heads(t):
            return t.reshape(b, t.shape[1], self.heads, d // self.heads).transpose(1, 2)  # [B, h, T, d]

        q, k, v = heads(self.projection_query(q)), heads(self.projection_key(k)), heads(self.projection_value(v))
        attn = torch.softmax(q @ k.transpose(-1, -2) * self.dim ** -0.5, -1)  # [B, h, Tq, Tkv]
        return (attn @ v).transpose(1, 2).reshape(b, -1, d)  # [B, Tq, D]


class Dense(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.dense = nn.Linear(i, o)


class Attention(nn.Module):
    def __init__(self, dim, *args):
        super().__init__()
        self.attention = SelfAttention(dim, *args)
        self.output = Dense(dim, dim)


class Layer(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, kernel, pad_q, pad_kv, stride_q, stride_kv, bias, with_cls):
        super().__init__()
        self.attention = Attention(dim, heads, kernel, pad_q, pad_kv, stride_q, stride_kv, bias, with_cls)
        hidden = int(dim * mlp_ratio)
        self.intermediate = Dense(dim, hidden)
        self.output = Dense(hidden, dim)
        self.layernorm_before = nn.LayerNorm(dim)
        self.layernorm_after = nn.LayerNorm(dim)

    def forward(self, x, h, w, s_attn=None, s_out=None):
        a = self.attention.output.dense(self.attention.attention(self.layernorm_before(x), h, w))
        x = x + (a if s_attn is None else a * s_attn)
        y = self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x)))) + x
        return y if s_out is None else y * s_out


class Stage(nn.Module):
    def __init__(self, cfg, s):
        super().__init__()
        dim = cfg["embed_dim"][s]
        self.with_cls = cfg["cls_token"][s]
        if self.with_cls:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg["embed_dim"][-1]))
        in_ch = cfg["num_channels"] if s == 0 else cfg["embed_dim"][s - 1]
        self.embedding = Embedding(in_ch, dim, cfg["patch_sizes"][s], cfg["patch_stride"][s], cfg["patch_padding"][s])
        self.layers = nn.ModuleList([
            Layer(dim, cfg["num_heads"][s], cfg["mlp_ratio"][s], cfg["kernel_qkv"][s], cfg["padding_q"][s],
                  cfg["padding_kv"][s], cfg["stride_q"][s], cfg["stride_kv"][s], cfg["qkv_bias"][s], self.with_cls)
            for _ in range(cfg["depth"][s])])

    def forward(self, fmap, scales):
        x, h, w = self.embedding.convolution_embeddings(fmap)  # [B, HW, D]
        if self.with_cls:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)  # [B, 1 + HW, D]
        for layer in self.layers:
            s = next(scales) if scales is not None else (None, None)
            x = layer(x, h, w, *s)
        cls = x[:, :1] if self.with_cls else None
        patches = x[:, 1:] if self.with_cls else x
        return patches.transpose(1, 2).reshape(x.shape[0], -1, h, w), cls


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.stages = nn.ModuleList([Stage(cfg, s) for s in range(len(cfg["depth"]))])


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.encoder = Encoder(cfg)


class CvtForImageClassification(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.cvt = Backbone(cfg)
        self.layernorm = nn.LayerNorm(cfg["embed_dim"][-1])
        self.classifier = nn.Linear(cfg["embed_dim"][-1], cfg["num_labels"])

    def forward(self, x, drop_path=None):
        """drop_path: per-sample scales [B, 2 * layers] (see the module docstring), or None."""
        scales = None
        if drop_path is not None:
            cols = drop_path[:, :, None, None]  # [B, 2L, 1, 1]
            scales = iter([(cols[:, 2 * i], cols[:, 2 * i + 1]) for i in range(drop_path.shape[1] // 2)])
        cls = None
        for stage in self.cvt.encoder.stages:
            x, cls = stage(x, scales)
        if cls is not None:
            feats = self.layernorm(cls)  # [B, 1, D]
        else:
            feats = self.layernorm(x.flatten(2).transpose(1, 2))  # [B, HW, D]
        return self.classifier(feats.mean(1))
