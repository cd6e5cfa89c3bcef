"""Goldens for `tessera zero-shot` and `eval --zero-shot` (test/cli/zero_shot.test.ts): the tiny CLIP of
make_clip_goldens.py (clip_ref.py, OpenAI's model.py ported) with the toy BPE of
make_clip_tokenizer_goldens.py (its reference tokenizer, context 16), two 32×32 RGB images, and
zero-shot probabilities with prompt ensembling as OpenAI's Prompt_Engineering_for_ImageNet notebook
does: per class, the mean of the prompts' normalised text embeddings, renormalised; logits =
logit_scale.exp() · normalised image embedding · class embeddings.

Writes test/fixtures/clip_zero_shot/{a.png, b.png, goldens.json}.
Run after the two other CLIP scripts: /usr/bin/python3 scripts/make_clip_zero_shot_goldens.py
"""
import gzip
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from clip_ref import build_from_state_dict  # noqa: E402
from make_clip_tokenizer_goldens import Reference  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures")
OUT = os.path.join(ROOT, "clip_zero_shot")
MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])
LABELS = ["cat", "dog", "t-shirt"]
TEMPLATES = ["a photo of a {}.", "a drawing of the {}"]


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        blob = f.read()
    return {k: torch.from_numpy(np.frombuffer(blob[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4").reshape(v["shape"]).copy())
            for k, v in header.items() if k != "__metadata__"}


def main():
    os.makedirs(OUT, exist_ok=True)
    model = build_from_state_dict(read_safetensors(os.path.join(ROOT, "clip_tiny_openai.safetensors"))).double()
    merges = gzip.open(os.path.join(ROOT, "clip_tokenizer", "bpe_toy_vocab.txt.gz")).read().decode("utf-8").split("\n")[1:]
    tok = Reference([tuple(m.split()) for m in merges if m])
    rng = np.random.default_rng(20)
    images = []
    for name in ("a", "b"):
        pix = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pix).save(os.path.join(OUT, f"{name}.png"))
        images.append(((pix / 255.0 - MEAN) / STD).transpose(2, 0, 1))
    x = torch.tensor(np.stack(images))
    with torch.no_grad():
        img = model.encode_image(x)
        img = img / img.norm(dim=-1, keepdim=True)

        def classes(templates):
            rows = []
            for label in LABELS:
                ids = torch.tensor([tok.tokenize(t.replace("{}", label), 16, False) for t in templates])
                e = model.encode_text(ids)
                e = (e / e.norm(dim=-1, keepdim=True)).mean(dim=0)
                rows.append(e / e.norm())
            return torch.stack(rows)

        out = {"labels": LABELS, "templates": TEMPLATES}
        for key, templates in (("single", TEMPLATES[:1]), ("ensemble", TEMPLATES)):
            logits = model.logit_scale.exp() * img @ classes(templates).t()
            out[key] = {"logits": logits.tolist(), "probabilities": logits.softmax(dim=-1).tolist()}
    with open(os.path.join(OUT, "goldens.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out["ensemble"]))


if __name__ == "__main__":
    main()
