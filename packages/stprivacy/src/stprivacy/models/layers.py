"""Transformer parts shared by the anonymizer and the recognizers: tubelet embedding, masked-softmax attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Block", "TubeletEmbed", "masked_softmax", "tubelets_to_video", "video_to_tubelets"]


def masked_softmax(scores: torch.Tensor, keep: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Softmax of ``scores`` [B, H, N, N] over keys allowed by ``keep`` [B, N] (DynamicViT's attention with policy).

    Key j is allowed for query i iff keep_j = 1 or i = j (the diagonal keeps fully dropped rows finite). The row maximum
    is taken over ALL keys, the exponentials are computed in fp32, multiplied by the mask and normalised as
    (a + eps/N) / (sum a + eps).
    """
    n = scores.shape[-1]
    eye = torch.eye(n, dtype=torch.float32, device=scores.device)
    keep = keep.float().reshape(keep.shape[0], 1, 1, n)
    mask = keep + (1.0 - keep) * eye  # [B, 1, N, N]: keep_j, or 1 on the diagonal
    scores = scores.float()
    exp = torch.exp(scores - scores.amax(dim=-1, keepdim=True)) * mask
    return ((exp + eps / n) / (exp.sum(dim=-1, keepdim=True) + eps)).to(scores.dtype)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        if keep is None:  # all tokens present (or already gathered): the ordinary fused attention
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = masked_softmax((q @ k.transpose(-2, -1)) * self.scale, keep).to(v.dtype)
            out = attn @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (timm's parameter names, so image checkpoints map one to one)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm ViT block (LayerNorm eps 1e-6, MLP ratio 4) whose attention optionally takes a keep policy."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), keep)
        return x + self.mlp(self.norm2(x))


class TubeletEmbed(nn.Module):
    """Conv3d with kernel = stride = tubelet; tokens flattened in (t, h*w) order, no CLS token."""

    def __init__(self, tubelet: tuple[int, int, int], dim: int, in_chans: int = 3):
        super().__init__()
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=tubelet, stride=tubelet)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.proj(video).flatten(2).transpose(1, 2)


def video_to_tubelets(video: torch.Tensor, tubelet: tuple[int, int, int]) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, L*N, pt*ph*pw*C], each row one tubelet, values laid out channel last (p0 p1 p2 c)."""
    b, c, t, h, w = video.shape
    pt, ph, pw = tubelet
    x = video.reshape(b, c, t // pt, pt, h // ph, ph, w // pw, pw)
    return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, (t // pt) * (h // ph) * (w // pw), pt * ph * pw * c)


def tubelets_to_video(
    rows: torch.Tensor, tubelet: tuple[int, int, int], grid: tuple[int, int, int], chans: int = 3
) -> torch.Tensor:
    """Inverse of ``video_to_tubelets``: [B, L*N, pt*ph*pw*C] -> [B, C, T, H, W] for the token ``grid`` (L, h, w)."""
    b = rows.shape[0]
    pt, ph, pw = tubelet
    lt, gh, gw = grid
    x = rows.reshape(b, lt, gh, gw, pt, ph, pw, chans).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, chans, lt * pt, gh * ph, gw * pw)
