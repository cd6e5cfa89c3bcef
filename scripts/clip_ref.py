"""A plain-PyTorch port of OpenAI CLIP's ViT model (clip/model.py), written for tessera's goldens.

Checked by reading openai/CLIP at commit d05afc436d78f1c48dc0dbf8e5980a9d471f35f6 (clip/model.py:
QuickGELU, ResidualAttentionBlock, Transformer, VisionTransformer, CLIP.encode_text / forward,
build_model). Only the ViT image tower is ported (not ModifiedResNet). Module names reproduce
OpenAI's state-dict keys; the attention is torch.nn.MultiheadAttention, as OpenAI's is, so its
packed in_proj_weight / in_proj_bias / out_proj keys and semantics come from PyTorch itself.
"""
from collections import OrderedDict

import torch
from torch import nn


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self, width, heads, mlp_width, act, mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width, eps=1e-5)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, mlp_width)),
            ("gelu", QuickGELU() if act == "quick_gelu" else nn.GELU()),
            ("c_proj", nn.Linear(mlp_width, width)),
        ]))
        self.ln_2 = nn.LayerNorm(width, eps=1e-5)
        self.mask = mask

    def forward(self, x):  # x: [L, B, W] (sequence first, as OpenAI's)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=self.mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, mlp_width, act, mask=None):
        super().__init__()
        self.resblocks = nn.Sequential(*[Block(width, heads, mlp_width, act, mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class Visual(nn.Module):
    def __init__(self, image_size, patch, width, layers, heads, mlp_width, out_dim, act):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, stride=patch, bias=False)
        n = (image_size // patch) ** 2
        self.class_embedding = nn.Parameter(torch.randn(width) * width ** -0.5)
        self.positional_embedding = nn.Parameter(torch.randn(n + 1, width) * width ** -0.5)
        self.ln_pre = nn.LayerNorm(width, eps=1e-5)
        self.transformer = Transformer(width, layers, heads, mlp_width, act)
        self.ln_post = nn.LayerNorm(width, eps=1e-5)
        self.proj = nn.Parameter(torch.randn(width, out_dim) * width ** -0.5)

    def forward(self, x):
        x = self.conv1(x)  # [B, W, g, g]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, N, W]
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x).permute(1, 0, 2)  # [N+1, B, W]
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    def __init__(self, embed_dim, image_size, patch, vw, vl, vheads, vmlp, context, vocab, tw, tl, theads, tmlp, act="quick_gelu"):
        super().__init__()
        self.context_length = context
        self.visual = Visual(image_size, patch, vw, vl, vheads, vmlp, embed_dim, act)
        mask = torch.full((context, context), float("-inf")).triu_(1)  # OpenAI's build_attention_mask
        self.transformer = Transformer(tw, tl, theads, tmlp, act, mask)
        self.vocab_size = vocab
        self.token_embedding = nn.Embedding(vocab, tw)
        self.positional_embedding = nn.Parameter(torch.randn(context, tw) * 0.01)
        self.ln_final = nn.LayerNorm(tw, eps=1e-5)
        self.text_projection = nn.Parameter(torch.randn(tw, embed_dim) * tw ** -0.5)
        self.logit_scale = nn.Parameter(torch.ones([]) * torch.log(torch.tensor(1 / 0.07)))

    def encode_image(self, x):
        return self.visual(x)

    def encode_text(self, ids):
        x = self.token_embedding(ids) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ self.text_projection

    def forward(self, image, ids):
        i = self.encode_image(image)
        t = self.encode_text(ids)
        i = i / i.norm(dim=-1, keepdim=True)
        t = t / t.norm(dim=-1, keepdim=True)
        return self.logit_scale.exp() * i @ t.t()


def build_from_state_dict(sd, act="quick_gelu"):
    """OpenAI's build_model for ViT towers: the architecture from the tensor shapes."""
    vw = sd["visual.conv1.weight"].shape[0]
    vl = len([k for k in sd if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")])
    patch = sd["visual.conv1.weight"].shape[-1]
    grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    tw = sd["ln_final.weight"].shape[0]
    tl = len(set(k.split(".")[2] for k in sd if k.startswith("transformer.resblocks")))
    m = CLIP(sd["text_projection"].shape[1], patch * grid, patch, vw, vl, vw // 64,
             sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
             sd["positional_embedding"].shape[0], sd["token_embedding.weight"].shape[0],
             tw, tl, tw // 64, sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0], act)
    m.load_state_dict(sd)
    return m.eval()


# OpenAI's released ViT architectures (build_model's inferred arguments).
CONFIGS = {
    "ViT-B-32": dict(embed_dim=512, image_size=224, patch=32, vw=768, vl=12, tw=512, tl=12),
    "ViT-B-16": dict(embed_dim=512, image_size=224, patch=16, vw=768, vl=12, tw=512, tl=12),
    "ViT-L-14": dict(embed_dim=768, image_size=224, patch=14, vw=1024, vl=24, tw=768, tl=12),
}


def openai_model(name):
    c = CONFIGS[name]
    return CLIP(c["embed_dim"], c["image_size"], c["patch"], c["vw"], c["vl"], c["vw"] // 64, 4 * c["vw"],
                77, 49408, c["tw"], c["tl"], c["tw"] // 64, 4 * c["tw"])
