"""Goldens for tessera's CLIP (src/models/clip.ts) from scripts/clip_ref.py, a plain-PyTorch port of
OpenAI's clip/model.py (openai/CLIP d05afc436d78f1c48dc0dbf8e5980a9d471f35f6).

Writes test/fixtures/:
  clip_tiny_openai.safetensors  random, perturbed weights of the tiny CLIP in OpenAI's bare layout
  clip_tiny_hf/                 the same weights as a Hugging Face CLIPModel directory (config.json +
                                model.safetensors), mapped by this script's HF_RULES (Hugging Face's
                                modeling_clip key names; transformers is not installed here, so the
                                mapping was checked by reading its source, not by loading it)
  clip_goldens.safetensors      inputs (images, token ids) and outputs (image / text embeddings,
                                logits per image)
  clip_goldens.json             the tiny config, key list and OpenAI's models' parameter counts

Run: /usr/bin/python3 scripts/make_clip_goldens.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from clip_ref import CLIP, CONFIGS, build_from_state_dict, openai_model  # noqa: E402
from make_vit_goldens import write_safetensors  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures")

# the tiny config: vision 128 wide (2 heads by width // 64), MLP ratio 2 (inferred from c_fc)
TINY = dict(embed_dim=32, image_size=32, patch=8, vw=128, vl=2, vheads=2, vmlp=256,
            context=16, vocab=768, tw=64, tl=2, theads=1, tmlp=128)


def perturbed(model, gen):
    sd = {}
    for k, v in model.state_dict().items():
        r = torch.randn(v.shape, generator=gen)
        if "ln" in k and k.endswith(".weight"):
            sd[k] = 1 + 0.1 * r
        elif k.endswith("bias"):
            sd[k] = 0.05 * r
        elif k == "logit_scale":
            sd[k] = torch.tensor(2.5)
        else:
            sd[k] = r * (0.2 if v.dim() >= 2 else 0.1)
    return sd


HF_RULES = [  # OpenAI key → Hugging Face CLIPModel key (per tower prefix)
    ("token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
    ("positional_embedding", "text_model.embeddings.position_embedding.weight"),
    ("ln_final", "text_model.final_layer_norm"),
    ("visual.class_embedding", "vision_model.embeddings.class_embedding"),
    ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"),
    ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"),
    ("visual.ln_pre", "vision_model.pre_layrnorm"),
    ("visual.ln_post", "vision_model.post_layernorm"),
]


def to_hf(sd):
    out = {}
    for k, v in sd.items():
        if k in ("text_projection", "visual.proj"):
            out["text_projection.weight" if k == "text_projection" else "visual_projection.weight"] = v.t().contiguous()
            continue
        if k == "logit_scale":
            out[k] = v
            continue
        m = None
        for prefix, hf in (("visual.transformer.resblocks.", "vision_model.encoder.layers."), ("transformer.resblocks.", "text_model.encoder.layers.")):
            if k.startswith(prefix):
                i, rest = k[len(prefix):].split(".", 1)
                base = f"{hf}{i}."
                if rest.startswith("attn.in_proj_"):
                    kind = "weight" if rest.endswith("weight") else "bias"
                    for name, part in zip(("q_proj", "k_proj", "v_proj"), v.chunk(3, dim=0)):
                        out[f"{base}self_attn.{name}.{kind}"] = part.contiguous()
                    m = True
                else:
                    rest = (rest.replace("attn.out_proj", "self_attn.out_proj").replace("ln_1", "layer_norm1")
                            .replace("ln_2", "layer_norm2").replace("mlp.c_fc", "mlp.fc1").replace("mlp.c_proj", "mlp.fc2"))
                    out[base + rest] = v
                    m = True
                break
        if m:
            continue
        for a, b in HF_RULES:
            if k == a or k.startswith(a + "."):
                out[b + k[len(a):]] = v
                m = True
                break
        assert m, k
    # older transformers releases saved these buffers; the loader must drop them
    out["text_model.embeddings.position_ids"] = torch.arange(TINY["context"]).unsqueeze(0).float()
    return out


def hf_config():
    t = TINY
    return {
        "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": t["embed_dim"], "logit_scale_init_value": 2.6592,
        "text_config": {"hidden_size": t["tw"], "intermediate_size": t["tmlp"], "num_attention_heads": t["theads"], "num_hidden_layers": t["tl"],
                        "max_position_embeddings": t["context"], "vocab_size": t["vocab"], "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
                        "bos_token_id": t["vocab"] - 2, "eos_token_id": t["vocab"] - 1},
        "vision_config": {"hidden_size": t["vw"], "intermediate_size": t["vmlp"], "num_attention_heads": t["vheads"], "num_hidden_layers": t["vl"],
                          "image_size": t["image_size"], "patch_size": t["patch"], "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "num_channels": 3},
    }


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(20)
    t = TINY
    model = CLIP(t["embed_dim"], t["image_size"], t["patch"], t["vw"], t["vl"], t["vheads"], t["vmlp"], t["context"], t["vocab"], t["tw"], t["tl"], t["theads"], t["tmlp"])
    sd = perturbed(model, gen)
    keys = list(model.state_dict().keys())
    # the architecture comes back from the shapes alone (build_model's rules; text heads 64 // 64 = 1)
    model = build_from_state_dict(sd).double()
    images = torch.randn(2, 3, t["image_size"], t["image_size"], generator=gen)
    # rows end at their largest id (the end-of-text token) in different places, zero padded after
    ids = torch.zeros(3, t["context"], dtype=torch.long)
    for r, n in enumerate((5, 16, 9)):
        ids[r, :n] = torch.randint(1, t["vocab"] - 2, (n,), generator=gen)
        ids[r, 0] = t["vocab"] - 2
        ids[r, n - 1] = t["vocab"] - 1
    with torch.no_grad():
        img = model.encode_image(images.double())
        txt = model.encode_text(ids)
        logits = model(images.double(), ids)
    write_safetensors(os.path.join(FIX, "clip_tiny_openai.safetensors"), {k: sd[k] for k in keys}, {})
    os.makedirs(os.path.join(FIX, "clip_tiny_hf"), exist_ok=True)
    write_safetensors(os.path.join(FIX, "clip_tiny_hf", "model.safetensors"), to_hf(sd), {"format": "pt"})
    with open(os.path.join(FIX, "clip_tiny_hf", "config.json"), "w") as f:
        json.dump(hf_config(), f, indent=1)
    write_safetensors(os.path.join(FIX, "clip_goldens.safetensors"), {
        "images": images, "ids": ids.float(), "image_embeds": img, "text_embeds": txt, "logits_per_image": logits}, {})
    counts = {}
    for name in CONFIGS:
        m = openai_model(name)
        counts[name] = {"clip": sum(p.numel() for p in m.parameters()), "visual": sum(p.numel() for p in m.visual.parameters())}
        del m
    meta = {"tiny": t, "keys": keys, "params": counts,
            "tiny_params": {"clip": sum(v.numel() for v in sd.values()), "visual": sum(v.numel() for k, v in sd.items() if k.startswith("visual."))}}
    with open(os.path.join(FIX, "clip_goldens.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(counts), meta["tiny_params"])


if __name__ == "__main__":
    main()
