"""PyTorch peer for the ViT model benchmark (vit_tiny_patch16_224 by default).

Usage:

    python3 bench/peers/torch_vit.py MODE THREADS BATCH REPEATS [PATH|-] [CONFIG_JSON] [FLAGS]

Run with Debian's /usr/bin/python3 (PyTorch 1.13), or with PYTHONPATH set to a PyTorch 2.x
install (scripts/install_torch2.sh; src/bench/peers.ts sets it from TESSERA_TORCH2_PATH).

CONFIG_JSON is a tessera model config (camelCase keys: imgSize, patchSize, inChans, numClasses,
embedDim, depth, numHeads, mlpRatio, qkvBias, globalPool, classToken, distilled); missing keys
take vit_tiny_patch16_224's values.

MODE:
  infer   eval + inference_mode forward of a [BATCH,3,224,224] batch; median seconds
          per forward after 3 warmups.
  train   forward + mean cross-entropy + backward + AdamW(lr=1e-3,
          weight_decay=0.05).step() + zero_grad(set_to_none=True); median
          seconds per step after 3 warmups.
  export  torch.onnx.export (TorchScript exporter) of the eval model to PATH (opset 17, input
          "input", output "logits", dynamic batch axis), checked with onnx.checker.

FLAGS (each the peer at its fast paths, as a user of that release would run it):
  --attn sdpa|math  attention as timm writes it: sdpa = F.scaled_dot_product_attention (timm's
                    fused_attn, its default where the function exists, i.e. PyTorch >= 2.0);
                    math = softmax(q k^T * scale) v. Default: sdpa where available.
  --compile         torch.compile(model) (inductor, default mode); for inference with
                    inductor's freezing (weights folded and prepacked, its CPU inference path).
  --bf16            torch.autocast('cpu', dtype=torch.bfloat16) around the forward (and the
                    loss); backward and AdamW outside it, on fp32 master weights.
AdamW is fused=True where the release has a fused CPU kernel (PyTorch >= 2.4), else foreach.

Prints exactly one JSON line on stdout:
  infer/train: {"mode","seconds","images_per_second","peak_rss_mb","torch","threads",
                "attention","compiled","bf16","optimizer","warmup_seconds"}
  export:      {"mode":"export","path":PATH,"torch"}
The model is scripts/timm_vit.py (timm parameter layout), randomly initialised.
"""
import contextlib
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..", "scripts")))

import timm_vit  # noqa: E402
from timm_vit import VisionTransformer  # noqa: E402
from peer_timing import timed  # noqa: E402


TINY = dict(imgSize=224, patchSize=16, inChans=3, numClasses=1000, embedDim=192, depth=12,
            numHeads=3, mlpRatio=4.0, qkvBias=True, globalPool="token", classToken=True, distilled=False)

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


def build_model(config_json, attention="math"):
    timm_vit.FUSED_ATTN = attention == "sdpa"
    c = dict(TINY, **(json.loads(config_json) if config_json else {}))
    model = VisionTransformer(
        img_size=c["imgSize"], patch_size=c["patchSize"], in_chans=c["inChans"], num_classes=c["numClasses"],
        embed_dim=c["embedDim"], depth=c["depth"], num_heads=c["numHeads"], mlp_ratio=c["mlpRatio"],
        qkv_bias=c["qkvBias"], global_pool=c["globalPool"], class_token=c["classToken"], distilled=c["distilled"],
    )
    return model, (c["inChans"], c["imgSize"], c["imgSize"]), c["numClasses"]


def make_adamw(params):
    try:
        return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05, fused=True), "AdamW(fused)"
    except (TypeError, RuntimeError, ValueError):
        return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05), "AdamW(foreach)" if hasattr(torch, "_foreach_add") else "AdamW"


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def parse_flags(rest):
    flags = {"attn": "sdpa" if HAS_SDPA else "math", "compile": False, "bf16": False}
    positional = []
    i = 0
    while i < len(rest):
        a = rest[i]
        if a == "--attn":
            flags["attn"] = rest[i + 1]
            i += 2
            continue
        if a == "--compile":
            flags["compile"] = True
        elif a == "--bf16":
            flags["bf16"] = True
        elif a.startswith("--"):
            raise SystemExit(f"unknown flag {a}")
        else:
            positional.append(a)
        i += 1
    if flags["attn"] not in ("sdpa", "math"):
        raise SystemExit(f"--attn must be sdpa or math, got {flags['attn']!r}")
    if flags["attn"] == "sdpa" and not HAS_SDPA:
        raise SystemExit(f"--attn sdpa needs PyTorch >= 2.0 (this is {torch.__version__})")
    if flags["compile"] and not hasattr(torch, "compile"):
        raise SystemExit(f"--compile needs PyTorch >= 2.0 (this is {torch.__version__})")
    return positional, flags


def measure(model, mode, path, batch, repeats, image_shape, num_classes, flags, attention, extra=None):
    """Times MODE (infer, train) of MODEL on a random batch, or exports it to PATH (export), and
    prints one JSON line; EXTRA is added to that line (torch_family.py's source and params)."""
    extra = extra or {}
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if flags["bf16"] else contextlib.nullcontext
    optimizer = None

    x = torch.randn(batch, *image_shape)

    if mode == "infer":
        model.eval()
        if flags["compile"]:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True
            run = torch.compile(model)
        else:
            run = model

        def step():
            with torch.inference_mode(), autocast():
                run(x)

    elif mode == "train":
        model.train()
        y = torch.randint(0, num_classes, (batch,))
        opt, optimizer = make_adamw(model.parameters())
        run = torch.compile(model) if flags["compile"] else model

        def step():
            with autocast():
                loss = F.cross_entropy(run(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    elif mode == "export":
        if path == "-":
            sys.stderr.write("export needs PATH\n")
            return 2
        model.eval()
        major_minor = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
        kwargs = {"dynamo": False} if major_minor >= (2, 5) else {}
        torch.onnx.export(
            model, (x,), path,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            do_constant_folding=True,
            **kwargs,
        )
        import onnx

        onnx.checker.check_model(onnx.load(path))
        print(json.dumps({"mode": "export", "path": path, "torch": torch.__version__, **extra}))
        return 0
    else:
        sys.stderr.write(f"unknown mode {mode!r}\n")
        return 2

    t0 = time.perf_counter()
    step()  # the first call compiles, when compiling
    warmup_seconds = time.perf_counter() - t0
    seconds = timed(step, repeats)
    print(json.dumps({
        "mode": mode,
        "seconds": seconds,
        "images_per_second": batch / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "attention": attention,
        "compiled": flags["compile"],
        "bf16": flags["bf16"],
        "optimizer": optimizer,
        "warmup_seconds": warmup_seconds,
        **extra,
    }))
    return 0


def main(argv):
    positional, flags = parse_flags(argv[1:])
    if len(positional) < 4:
        sys.stderr.write(__doc__)
        return 2
    mode, threads, batch, repeats = positional[0], int(positional[1]), int(positional[2]), int(positional[3])
    path = positional[4] if len(positional) > 4 else "-"
    config = positional[5] if len(positional) > 5 else None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, image_shape, num_classes = build_model(config, flags["attn"])
    return measure(model, mode, path, batch, repeats, image_shape, num_classes, flags, flags["attn"])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
