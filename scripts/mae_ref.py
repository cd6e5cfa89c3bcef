"""Plain-PyTorch port of MAE's loss computation and the goldens of test/train/mae.test.ts.

Checked against facebookresearch/mae at commit efb2a8062c206524e35e47d04501ed4f544c0ae8
(models_mae.py: random_masking, forward_encoder, forward_decoder, forward_loss, patchify;
util/pos_embed.py: get_2d_sincos_pos_embed), read through the fetch tool and re-written here
(not copied): encoder blocks are scripts/timm_vit.py's timm-semantics Block, the rest is below.

Writes test/fixtures/mae_goldens.safetensors: a tiny MAE (img 8, patch 2, 2 channels, 16
patches, dim 8, depth 2, decoder dim 8 depth 1) with random weights under the official key names,
an input, per-sample noise, and from the reference: ids_shuffle, ids_restore, ids_keep, mask,
pred, the loss (norm_pix_loss on, mask ratio 0.75) and the gradient of every trainable parameter.

Run from the repository root:  /usr/bin/python3 scripts/mae_ref.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPTS)
from timm_vit import Block, PatchEmbed  # noqa: E402
from make_vit_goldens import write_safetensors  # noqa: E402

MAE_COMMIT = "efb2a8062c206524e35e47d04501ed4f544c0ae8"


def sincos_1d(dim, pos):
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.outer(pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim, g):
    cols, rows = np.meshgrid(np.arange(g, dtype=np.float32), np.arange(g, dtype=np.float32))  # w first
    emb = np.concatenate([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], axis=1)
    return torch.from_numpy(np.concatenate([np.zeros([1, dim]), emb], axis=0)).float().unsqueeze(0)


class Mae(nn.Module):
    def __init__(self, img, patch, chans, dim, depth, heads, ddim, ddepth, dheads, mlp_ratio):
        super().__init__()
        self.p, self.c = patch, chans
        self.patch_embed = PatchEmbed(img, patch, chans, dim)
        n = (img // patch) ** 2
        g = img // patch
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(sincos_2d(dim, g), requires_grad=False)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.decoder_embed = nn.Linear(dim, ddim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, ddim) * 0.02)
        self.decoder_pos_embed = nn.Parameter(sincos_2d(ddim, g), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([Block(ddim, dheads, mlp_ratio) for _ in range(ddepth)])
        self.decoder_norm = nn.LayerNorm(ddim, eps=1e-6)
        self.decoder_pred = nn.Linear(ddim, patch * patch * chans)
        self.n = n

    def patchify(self, imgs):
        b, c, h, _ = imgs.shape
        g = h // self.p
        x = imgs.reshape(b, c, g, self.p, g, self.p).permute(0, 2, 4, 3, 5, 1)  # n h w p q c
        return x.reshape(b, g * g, self.p * self.p * c)

    @staticmethod
    def masking(noise, ratio):
        n, L = noise.shape
        keep = int(L * (1 - ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        mask = torch.ones(n, L)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        return ids_shuffle, ids_restore, ids_shuffle[:, :keep], mask

    def forward(self, imgs, noise, ratio):
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
        ids_shuffle, ids_restore, ids_keep, mask = self.masking(noise, ratio)
        d = x.shape[2]
        x = torch.gather(x, 1, ids_keep.unsqueeze(-1).repeat(1, 1, d))
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], 1)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        x = self.decoder_embed(x)
        m = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], m], 1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], 1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        pred = self.decoder_pred(self.decoder_norm(x))[:, 1:, :]
        target = self.patchify(imgs)
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)  # unbiased
        target = (target - mean) / (var + 1.e-6) ** .5
        loss = ((pred - target) ** 2).mean(dim=-1)
        loss = (loss * mask).sum() / mask.sum()
        return loss, pred, (ids_shuffle, ids_restore, ids_keep, mask)


def main():
    torch.manual_seed(0)
    model = Mae(img=8, patch=2, chans=2, dim=8, depth=2, heads=2, ddim=8, ddepth=1, dheads=2, mlp_ratio=2)
    with torch.no_grad():  # random, non-trivial weights everywhere (norms included)
        for k, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.1) + (1.0 if k.endswith("norm1.weight") or k.endswith("norm2.weight") or k.endswith("norm.weight") else 0.0))
    imgs = torch.randn(3, 2, 8, 8)
    noise = torch.rand(3, model.n)
    loss, pred, (shuffle, restore, keep, mask) = model(imgs, noise, 0.75)
    loss.backward()
    out = {k: v.detach() for k, v in model.state_dict().items()}
    out.update({"input.x": imgs, "input.noise": noise, "ref.ids_shuffle": shuffle.float(), "ref.ids_restore": restore.float(),
                "ref.ids_keep": keep.float(), "ref.mask": mask, "ref.pred": pred.detach(), "ref.loss": loss.detach().reshape(1)})
    for k, p in model.named_parameters():
        if p.requires_grad:
            out[f"grad.{k}"] = p.grad
    path = os.path.join(os.path.dirname(SCRIPTS), "test", "fixtures", "mae_goldens.safetensors")
    write_safetensors(path, out, {"mae_commit": MAE_COMMIT, "config": "img 8 patch 2 chans 2 dim 8 depth 2 heads 2 ddim 8 ddepth 1 dheads 2 mlp 2 ratio 0.75 norm_pix"})
    print(f"wrote {path}: loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
