"""Inflated convolutional parts (paper Sec. 4.1): 2-D kernels applied frame by frame on (b, c, f, h, w) tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class InflatedConv3d(nn.Conv2d):
    """A ``Conv2d`` run on every frame: a 1x3x3 pseudo-3-D convolution whose weights are the 2-D ones, unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x.shape[2]
        x = super().forward(rearrange(x, "b c f h w -> (b f) c h w"))
        return rearrange(x, "(b f) c h w -> b c f h w", f=f)


class ResnetBlock3D(nn.Module):
    """SD's resnet block on videos. Its GroupNorms run on the 5-D tensor, so statistics pool over all frames
    (this couples the frames, exactly as upstream; normalising per frame would be a different model)."""

    def __init__(
        self, in_channels: int, out_channels: int, temb_channels: int, groups: int = 32, eps: float = 1e-5
    ):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = InflatedConv3d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = InflatedConv3d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = (
            InflatedConv3d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return shortcut + h


class Downsample3D(nn.Module):
    """Stride-2 inflated convolution (space only)."""

    def __init__(self, channels: int, padding: int = 1) -> None:
        super().__init__()
        self.conv = InflatedConv3d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample3D(nn.Module):
    """Nearest upsampling by (1, 2, 2), i.e. over space only, followed by an inflated 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = InflatedConv3d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, output_size: tuple[int, int] | None = None) -> torch.Tensor:
        if output_size is None:
            x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        else:
            x = F.interpolate(x, size=(x.shape[2], *output_size), mode="nearest")
        return self.conv(x)
