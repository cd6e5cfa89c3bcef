"""PyTorch eager peer for bench/engine.ts: sgemm GFLOP/s and a ViT-Ti block's forward+backward.

Run by the TypeScript bench as `/usr/bin/python3 bench/peers/torch_engine.py THREADS REPEATS` (with
PYTHONPATH set to a PyTorch 2.x install for the 2.x column); prints JSON. Shapes must match
bench/engine.ts. The block's attention is F.scaled_dot_product_attention where the release has
it (as timm uses it), else the softmax(q k^T) v product.
"""
import json
import sys

import torch

from peer_timing import timed
from torch_block import SDPA, Block

threads, repeats = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)


MATMUL_SHAPES = [(6304, 192, 768), (6304, 768, 192), (1024, 1024, 1024)]
matmul = []
for m, k, n in MATMUL_SHAPES:
    a, b = torch.randn(m, k), torch.randn(k, n)
    matmul.append({"m": m, "k": k, "n": n, "seconds": timed(lambda: torch.matmul(a, b), repeats)})


block = Block(192, 3, 768)
x = torch.randn(32, 197, 192, requires_grad=True)
cot = torch.randn(32, 197, 192)


def fwd_bwd():
    block.zero_grad(set_to_none=True)
    x.grad = None
    block(x).backward(cot)


print(json.dumps({
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "attention": "sdpa" if SDPA else "math",
    "matmul": matmul,
    "block_fwd_bwd_seconds": timed(fwd_bwd, repeats),
}))
