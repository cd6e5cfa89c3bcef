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

threads, repeats = int(sys.argv[1]), int(sys.argv[2])
SDPA = hasattr(torch.nn.functional, "scaled_dot_product_attention")
torch.set_num_threads(threads)
torch.manual_seed(0)


MATMUL_SHAPES = [(6304, 192, 768), (6304, 768, 192), (1024, 1024, 1024)]
matmul = []
for m, k, n in MATMUL_SHAPES:
    a, b = torch.randn(m, k), torch.randn(k, n)
    matmul.append({"m": m, "k": k, "n": n, "seconds": timed(lambda: torch.matmul(a, b), repeats)})


class Block(torch.nn.Module):
    """timm's pre-norm ViT block, written out in plain PyTorch."""

    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.heads = heads
        self.norm1 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.qkv = torch.nn.Linear(dim, dim * 3)
        self.proj = torch.nn.Linear(dim, dim)
        self.norm2 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = torch.nn.Linear(dim, hidden)
        self.fc2 = torch.nn.Linear(hidden, dim)

    def forward(self, x):
        B, N, C = x.shape
        H = self.heads
        qkv = self.qkv(self.norm1(x)).reshape(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if SDPA:  # timm's fused_attn, its default where PyTorch has it (>= 2.0)
            o = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        else:
            o = ((q * (C // H) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1) @ v
        x = x + self.proj(o.transpose(1, 2).reshape(B, N, C))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm2(x))))


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
