"""PyTorch peer of bench/mae_step.ts: the forward + backward of scripts/mae_ref.py's MAE (plain-PyTorch
port of facebookresearch/mae efb2a806) on random images, printed as images/s.

Usage (PyTorch 2.x):
  PYTHONPATH=/opt/torch2 /usr/bin/python3 scripts/mae_torch_step.py BATCH STEPS THREADS [--attn sdpa|math] [--compile]

--attn sdpa (the default where PyTorch has F.scaled_dot_product_attention) computes the blocks'
attention as timm >= 0.9 does by default; math writes it out as the official repo's timm 0.3 Block
does. --compile wraps the model in torch.compile (inductor, default mode); the first step, which
compiles, is the untimed warm-up step.
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timm_vit  # noqa: E402
from mae_ref import Mae  # noqa: E402


def main():
    positional = [a for a in sys.argv[1:] if not a.startswith("--") and a not in ("sdpa", "math")]
    batch, steps, threads = (int(v) for v in positional[:3])
    attn = sys.argv[sys.argv.index("--attn") + 1] if "--attn" in sys.argv else (
        "sdpa" if hasattr(F, "scaled_dot_product_attention") else "math")
    if attn not in ("sdpa", "math"):
        raise SystemExit(f"--attn must be sdpa or math, got {attn!r}")
    compiled = "--compile" in sys.argv
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    timm_vit.FUSED_ATTN = attn == "sdpa"
    model = Mae(img=32, patch=4, chans=3, dim=192, depth=9, heads=3, ddim=128, ddepth=2, dheads=4, mlp_ratio=2)
    run = torch.compile(model) if compiled else model
    x = torch.randn(batch, 3, 32, 32)

    def step():
        model.zero_grad(set_to_none=True)
        loss, _, _ = run(x, torch.rand(batch, model.n), 0.75)
        loss.backward()

    step()
    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    dt = time.perf_counter() - t
    print(json.dumps({"torch": torch.__version__, "threads": threads, "attention": attn, "compiled": compiled,
                      "images_per_second": batch * steps / dt}))


if __name__ == "__main__":
    main()
