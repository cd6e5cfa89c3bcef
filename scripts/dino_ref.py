"""Plain-PyTorch port of DINO's training computation and the goldens of test/train/dino.test.ts.

Checked against facebookresearch/dino at commit 7c446df5b9f45747937fb0d72314eb9f7b66930a
(main_dino.py: DINOLoss with update_center, train_one_epoch's teacher EMA; utils.py:
clip_gradients, cosine_scheduler; vision_transformer.py: prepare_tokens,
interpolate_pos_encoding, DINOHead; utils.MultiCropWrapper), read through the fetch tool
(/work/.mirror/facebookresearch+dino/repo, `git show HEAD:<file>`) and re-written here, not
copied: the blocks are scripts/timm_vit.py's timm-semantics Block (DINO's Block computes the
same), the rest is below.

Writes test/fixtures/dino_goldens.safetensors and test/fixtures/dino_official.pth:
- a tiny student (img 16, patch 4, 2 channels, dim 8, depth 2, heads 2, mlp 2; head 3 layers
  12-12-6 → 10 prototypes) with random weights under MultiCropWrapper's keys (`backbone.*`,
  `head.mlp.N.*`, `head.last_layer.weight_g/weight_v`), a perturbed teacher (`teacher.*`),
  2 global views [3, 2, 16, 16], 2 local views [3, 2, 2, 8, 8] (batch-major: image, view), a
  random centre, the teacher temperature 0.07;
- from the reference: the raw teacher outputs on the global views, the interpolated position
  table for the 8-px locals, the loss, every trainable student gradient (weight_g is frozen:
  norm_last_layer), the centre after update_center, the teacher after one EMA step at
  momentum 0.9 (the student unchanged), and clip_gradients(…, 0.05) of the gradients;
- dino_official.pth: torch.save of the checkpoint layout train_dino writes — `student` (the
  DDP-wrapped state dict: `module.` prefixes), `teacher` (no prefix), `epoch` and the DINOLoss
  state `dino_loss` (its centre) — of another small model (write_official), and
  dino_official.json: each teacher tensor's sum, first value and shape; dino_official_backbone.pth:
  the teacher's backbone alone, as the released backbone weights are saved.

Run from the repository root:  /usr/bin/python3 scripts/dino_ref.py   (Debian torch 1.13)
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
from timm_vit import Block, PatchEmbed  # noqa: E402
from make_vit_goldens import write_safetensors  # noqa: E402

DINO_COMMIT = "7c446df5b9f45747937fb0d72314eb9f7b66930a"
STUDENT_TEMP = 0.1
CENTER_MOMENTUM = 0.9


class Backbone(nn.Module):
    """DINO's ViT: class token, learnt positions resampled for other crop sizes, pre-norm blocks; returns the class token."""

    def __init__(self, img, patch, chans, dim, depth, heads, mlp_ratio):
        super().__init__()
        self.patch = patch
        self.patch_embed = PatchEmbed(img, patch, chans, dim)
        n = (img // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def positions(self, n_tokens, w, h):
        """interpolate_pos_encoding: bicubic with the scale factor (side + 0.1) / old side."""
        old = self.pos_embed.shape[1] - 1
        if n_tokens - 1 == old and w == h:
            return self.pos_embed
        dim = self.pos_embed.shape[-1]
        side = int(math.sqrt(old))
        w0, h0 = w // self.patch + 0.1, h // self.patch + 0.1
        grid = self.pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=(w0 / side, h0 / side), mode="bicubic")
        assert grid.shape[-2] == int(w0) and grid.shape[-1] == int(h0)
        return torch.cat([self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)

    def forward(self, x):
        _, _, w, h = x.shape
        t = self.patch_embed(x)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1)
        t = t + self.positions(t.shape[1], w, h)
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)[:, 0]


class Head(nn.Module):
    """DINOHead (no BN): Linear-GELU-Linear-GELU-Linear, L2 normalisation, weight-normed last layer with g frozen at 1."""

    def __init__(self, in_dim, out_dim, hidden, bottleneck):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, bottleneck))
        self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        self.last_layer.weight_g.requires_grad = False

    def forward(self, x):
        return self.last_layer(F.normalize(self.mlp(x), dim=-1, p=2))


class Wrapper(nn.Module):
    """MultiCropWrapper: the backbone on each run of equal-size crops, the head on all their class tokens."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, crops):
        feats = torch.cat([self.backbone(c) for c in crops])
        return self.head(feats)


def dino_loss(student_out, teacher_out, center, temp, ncrops):
    """DINOLoss.forward: cross-entropy of every student view to each teacher view but its own, over the pair count."""
    s = (student_out / STUDENT_TEMP).chunk(ncrops)
    q = F.softmax((teacher_out - center) / temp, dim=-1).detach().chunk(2)
    total, terms = 0, 0
    for iq, qq in enumerate(q):
        for v in range(ncrops):
            if v == iq:
                continue
            total = total + torch.sum(-qq * F.log_softmax(s[v], dim=-1), dim=-1).mean()
            terms += 1
    return total / terms


def new_center(center, teacher_out):
    return center * CENTER_MOMENTUM + teacher_out.mean(dim=0, keepdim=True) * (1 - CENTER_MOMENTUM)


def clip_gradients(grads, clip):
    """utils.clip_gradients on a dict of gradients: each scaled by clip / (norm + 1e-6) when that is < 1."""
    out = {}
    for k, g in grads.items():
        coef = clip / (g.norm(2) + 1e-6)
        out[k] = g * coef if coef < 1 else g.clone()
    return out


def build():
    return Wrapper(Backbone(img=16, patch=4, chans=2, dim=8, depth=2, heads=2, mlp_ratio=2), Head(8, 10, 12, 6))


def randomise(model, scale):
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k.endswith("weight_g"):
                continue
            norm_weight = k.endswith(("norm1.weight", "norm2.weight", "norm.weight"))
            p.copy_(torch.randn_like(p) * (scale if p.dim() > 1 else scale / 3) + (1.0 if norm_weight else 0.0))


def write_official(path):
    """train_dino's checkpoint layout: the DDP student (module.*), the bare teacher, the epoch and the loss's centre.

    A 28-px 1-channel model of head width 64 (DINO's ViTs all have 64-wide heads, which is how a
    loader tells the head count from the shapes), one block, head 32-32-16 → 64.
    """
    torch.manual_seed(1)
    student = Wrapper(Backbone(img=28, patch=4, chans=1, dim=64, depth=1, heads=1, mlp_ratio=2), Head(64, 64, 32, 16))
    teacher = Wrapper(Backbone(img=28, patch=4, chans=1, dim=64, depth=1, heads=1, mlp_ratio=2), Head(64, 64, 32, 16))
    randomise(student, 0.1)
    randomise(teacher, 0.1)
    ddp = {f"module.{k}": v.detach().clone() for k, v in student.state_dict().items()}
    torch.save({"student": ddp, "teacher": {k: v.detach().clone() for k, v in teacher.state_dict().items()}, "epoch": 1,
                "dino_loss": {"center": torch.randn(1, 64)}}, path)
    # the released backbone-only files (dino_deitsmall16_pretrain.pth…): the teacher's backbone as a plain state dict
    torch.save({k: v.detach().clone() for k, v in teacher.backbone.state_dict().items()}, path[: -len(".pth")] + "_backbone.pth")
    # what a loader must read: each teacher tensor's sum and first value (the teacher is what DINO evaluates)
    summary = {k: [float(v.double().sum()), float(v.reshape(-1)[0]), list(v.shape)] for k, v in teacher.state_dict().items()}
    with open(path[: -len(".pth")] + ".json", "w") as f:
        json.dump(summary, f)


def main():
    torch.manual_seed(0)
    student, teacher = build(), build()
    randomise(student, 0.3)
    teacher.load_state_dict(student.state_dict())
    with torch.no_grad():  # a teacher some steps behind: the student's weights, perturbed
        for k, p in teacher.named_parameters():
            if not k.endswith("weight_g"):
                p.add_(torch.randn_like(p) * 0.05)
    B, K = 3, 10
    g1, g2 = torch.randn(B, 2, 16, 16), torch.randn(B, 2, 16, 16)
    locals_ = torch.randn(B, 2, 2, 8, 8)  # [image, view, C, H, W]
    center = torch.randn(1, K) * 0.5
    temp = 0.07

    with torch.no_grad():
        t_out = teacher([g1, g2])  # [2B, K]: the first views, then the second
        pos_local = student.backbone.positions(1 + 4, 8, 8)
    s_out = student([g1, g2, locals_[:, 0], locals_[:, 1]])  # [4B, K]: crop-major, as the training loop's list of crops
    loss = dino_loss(s_out, t_out, center, temp, ncrops=4)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in student.named_parameters() if p.requires_grad}
    clipped = clip_gradients(grads, 0.05)
    center_after = new_center(center, t_out)
    m = 0.9
    teacher_after = {k: (tp.detach() * m + (1 - m) * sp.detach()) for (k, sp), (_, tp) in zip(student.named_parameters(), teacher.named_parameters())}

    out = {k: v.detach() for k, v in student.state_dict().items()}
    out.update({f"teacher.{k}": v.detach() for k, v in teacher.state_dict().items()})
    out.update({"input.global1": g1, "input.global2": g2, "input.locals": locals_, "input.center": center, "input.temp": torch.tensor([temp]),
                "ref.teacher_out": t_out, "ref.pos_local": pos_local, "ref.loss": loss.detach().reshape(1), "ref.center_after": center_after})
    for k, g in grads.items():
        out[f"grad.{k}"] = g
        out[f"clipped.{k}"] = clipped[k]
    for k, v in teacher_after.items():
        out[f"teacher_after.{k}"] = v
    fixtures = os.path.join(os.path.dirname(SCRIPTS), "test", "fixtures")
    path = os.path.join(fixtures, "dino_goldens.safetensors")
    write_safetensors(path, out, {"dino_commit": DINO_COMMIT, "config": "img 16 patch 4 chans 2 dim 8 depth 2 heads 2 mlp 2; head 12-12-6 -> 10; B 3, 2 global 16px + 2 local 8px; teacher temp 0.07"})
    write_official(os.path.join(fixtures, "dino_official.pth"))
    print(f"wrote {path} and dino_official.pth: loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
