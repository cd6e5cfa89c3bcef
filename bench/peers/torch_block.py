"""timm's pre-norm ViT block written out in plain PyTorch, shared by the peers that time one block
(torch_engine.py, torch_attention_scaling.py): LayerNorm, fused qkv Linear, attention, proj,
LayerNorm, MLP with GELU. Attention is F.scaled_dot_product_attention where the release has it
(timm's fused_attn, its default on PyTorch >= 2.0), else softmax(q k^T / sqrt(D)) v.
"""
import torch

SDPA = hasattr(torch.nn.functional, "scaled_dot_product_attention")


class Block(torch.nn.Module):
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
        qkv = self.qkv(self.norm1(x)).reshape(B, N, 3, H, C // H).permute(2, 0, 3, 1, 4)  # [3, B, H, N, D]
        q, k, v = qkv.unbind(0)
        if SDPA:
            o = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        else:
            o = ((q * (C // H) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1) @ v
        x = x + self.proj(o.transpose(1, 2).reshape(B, N, C))  # [B, N, C]
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm2(x))))
