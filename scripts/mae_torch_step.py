"""PyTorch eager peer of bench/mae_step.ts: the forward + backward of scripts/mae_ref.py's MAE
(plain-PyTorch port of facebookresearch/mae efb2a806) on random images, printed as images/s.

Usage (PyTorch 2.x):  PYTHONPATH=/opt/torch2 /usr/bin/python3 scripts/mae_torch_step.py BATCH STEPS THREADS
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mae_ref import Mae  # noqa: E402


def main():
    batch, steps, threads = (int(v) for v in sys.argv[1:4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Mae(img=32, patch=4, chans=3, dim=192, depth=9, heads=3, ddim=128, ddepth=2, dheads=4, mlp_ratio=2)
    x = torch.randn(batch, 3, 32, 32)

    def step():
        model.zero_grad(set_to_none=True)
        loss, _, _ = model(x, torch.rand(batch, model.n), 0.75)
        loss.backward()

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    dt = time.perf_counter() - t
    print(json.dumps({"torch": torch.__version__, "threads": threads, "images_per_second": batch * steps / dt}))


if __name__ == "__main__":
    main()
