"""Goldens for `pretrain --method clip` (src/train/objectives/clip.ts): CLIP's symmetric InfoNCE loss
and its gradients for every parameter of a small CLIP, from scripts/clip_ref.py (a plain-PyTorch
port of OpenAI's clip/model.py, openai/CLIP d05afc436d78f1c48dc0dbf8e5980a9d471f35f6).

The loss is written here from the paper's pseudo-code (Radford et al. 2021, figure 3) and
open_clip's ClipLoss as read at mlfoundations/open_clip (src/open_clip/loss.py: logits_per_image =
logit_scale · image_features @ text_features.T, labels = arange(B), (CE(per image) + CE(per
text)) / 2), and its train.py's clamp of logit_scale to [0, ln 100] after each optimiser step.
Computed in float64 with random, perturbed weights; one caption appears twice in the batch (CLIP
treats the copy as a negative, as tessera does).

Writes test/fixtures/clip_contrastive/goldens.safetensors (weights under their OpenAI keys,
`in.images`, `in.ids`, `out.loss`, `grad.<key>`) and goldens.json (the config).

Run: /usr/bin/python3 scripts/make_clip_contrastive_goldens.py
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from clip_ref import CLIP  # noqa: E402
from make_vit_goldens import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "clip_contrastive")
SMALL = dict(embed_dim=16, image_size=16, patch=4, vw=32, vl=2, vheads=2, vmlp=64,
             context=8, vocab=50, tw=32, tl=2, theads=2, tmlp=64)


def perturbed(model, gen):
    sd = {}
    for k, v in model.state_dict().items():
        r = torch.randn(v.shape, generator=gen, dtype=torch.float64)
        if "ln" in k and k.endswith(".weight"):
            sd[k] = 1 + 0.1 * r
        elif k.endswith("bias"):
            sd[k] = 0.05 * r
        elif k == "logit_scale":
            sd[k] = torch.tensor(2.3, dtype=torch.float64)
        else:
            sd[k] = r * (0.3 if v.dim() >= 2 else 0.1)
    # the fixture stores float32: the reference runs on exactly those values
    return {k: v.float().double() for k, v in sd.items()}


def clip_loss(model, images, ids):
    img = model.encode_image(images)
    txt = model.encode_text(ids)
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    logits_per_image = model.logit_scale.exp() * img @ txt.t()
    labels = torch.arange(images.shape[0])
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_image.t(), labels)) / 2


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(21)
    s = SMALL
    model = CLIP(s["embed_dim"], s["image_size"], s["patch"], s["vw"], s["vl"], s["vheads"], s["vmlp"], s["context"], s["vocab"],
                 s["tw"], s["tl"], s["theads"], s["tmlp"]).double()
    sd = perturbed(model, gen)
    model.load_state_dict(sd)
    batch = 5
    images = torch.randn(batch, 3, s["image_size"], s["image_size"], generator=gen, dtype=torch.float64).float().double()
    ids = torch.zeros(batch, s["context"], dtype=torch.long)
    for r, n in enumerate((4, 8, 6, 3, 6)):
        ids[r, :n] = torch.randint(1, s["vocab"] - 2, (n,), generator=gen)
        ids[r, 0] = s["vocab"] - 2  # <|startoftext|>
        ids[r, n - 1] = s["vocab"] - 1  # <|endoftext|>: the largest id, where the text is pooled
    ids[4] = ids[2]  # the same caption twice
    loss = clip_loss(model, images, ids)
    loss.backward()
    tensors = {k: v for k, v in sd.items()}
    tensors["in.images"] = images
    tensors["in.ids"] = ids.double()
    tensors["out.loss"] = loss.detach().reshape(1)
    for k, p in model.named_parameters():
        tensors[f"grad.{k}"] = p.grad
    os.makedirs(OUT, exist_ok=True)
    write_safetensors(os.path.join(OUT, "goldens.safetensors"), tensors, {})
    with open(os.path.join(OUT, "goldens.json"), "w") as f:
        json.dump({"config": s, "batch": batch, "loss": loss.item(), "keys": [k for k, _ in model.named_parameters()]}, f, indent=1)
    print("loss", loss.item())


if __name__ == "__main__":
    main()
