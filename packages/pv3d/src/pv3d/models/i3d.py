"""Inflated Inception-v1 (I3D; Carreira & Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017), the Kinetics-400
network FVD is computed with (StyleGAN-V, VideoGPT and PV3D use the PyTorch port's ``i3d_pretrained_400.pt``).

Module names follow that port so its state dict loads strictly: ``Conv3d_1a_7x7.conv3d.weight``,
``Conv3d_1a_7x7.bn.running_mean``, ``Mixed_3b.b0.conv3d.weight``, ``Mixed_3b.b1a/b1b/b2a/b2b/b3b...``,
``logits.conv3d.weight``/``bias``. Every conv and max-pool pads TensorFlow-'same' style (the padding depends on the
input size and is asymmetric when odd), as the TF original the weights were trained in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["I3D_FRAMES_MIN", "I3D_RESOLUTION", "InceptionI3d", "i3d_input", "same_padding"]

I3D_RESOLUTION = 224
I3D_FRAMES_MIN = 9  # time strides 2 (conv), 2, 2 (pools) must leave >= 2 steps for the [2, 7, 7] average pool

# Mixed_* blocks: (input channels, [b0, b1a, b1b, b2a, b2b, b3b] output channels), in network order.
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


def same_padding(size: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> tuple[int, ...]:
    """TF 'same' padding of a [T, H, W] input as an ``F.pad`` tuple (w_front, w_back, h_front, h_back, t_f, t_b).

    Output size is ceil(n / s); the total padding max(k - s, 0) (n divisible by s) or max(k - n mod s, 0), the extra
    pixel of an odd total going to the back.
    """
    pads: list[int] = []
    for n, k, s in zip(reversed(size), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class Unit3D(nn.Module):
    """'same'-padded Conv3d (bias only without BN) -> BatchNorm3d (eps 1e-5, as the port) -> ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: Sequence[int] = (1, 1, 1),
        stride: Sequence[int] = (1, 1, 1),
        batch_norm: bool = True,
        relu: bool = True,
    ):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, bias=not batch_norm)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-5) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class SameMaxPool3d(nn.Module):
    """Max-pool with TF 'same' padding. The port pads with zeros, which equals -inf here: inputs are post-ReLU."""

    def __init__(self, kernel: Sequence[int], stride: Sequence[int]):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(
            F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride)), self.kernel, self.stride
        )


class InceptionModule(nn.Module):
    """Four branches concatenated: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max-pool -> 1x1."""

    def __init__(self, in_channels: int, out: Sequence[int]):
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0])
        self.b1a = Unit3D(in_channels, out[1])
        self.b1b = Unit3D(out[1], out[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, out[3])
        self.b2b = Unit3D(out[3], out[4], (3, 3, 3))
        self.b3a = SameMaxPool3d((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, out[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x)))
        return torch.cat(branches, dim=1)


class InceptionI3d(nn.Module):
    """I3D up to its logits: clips [N, 3, T, 224, 224] in [-1, 1] -> [N, num_classes] logits averaged over time.

    ``features(clips)`` takes clips [N, T, 3, H, W] in [-1, 1] at any size and applies ``i3d_input`` first.
    """

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = SameMaxPool3d((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = SameMaxPool3d((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(*_MIXED["Mixed_3b"])
        self.Mixed_3c = InceptionModule(*_MIXED["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = SameMaxPool3d((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            self.add_module(name, InceptionModule(*_MIXED[name]))
        self.MaxPool3d_5a_2x2 = SameMaxPool3d((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(*_MIXED["Mixed_5b"])
        self.Mixed_5c = InceptionModule(*_MIXED["Mixed_5c"])
        self.logits = Unit3D(1024, num_classes, batch_norm=False, relu=False)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Mixed_5c activations [N, 1024, ceil(T/8), ceil(H/32), ceil(W/32)]."""
        for module in self.children():
            if module is self.logits:
                break
            x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.trunk(x)
        if x.shape[2] < 2 or x.shape[3] < 7 or x.shape[4] < 7:
            raise ValueError(
                f"I3D needs clips of >= {I3D_FRAMES_MIN} frames at {I3D_RESOLUTION}x{I3D_RESOLUTION}, "
                f"got input leaving Mixed_5c at {tuple(x.shape[2:])}"
            )
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # dropout sits here in training; identity at eval
        return self.logits(x).mean(dim=(3, 4)).mean(dim=2)

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """FVD features [N, num_classes] of clips [N, T, 3, H, W] in [-1, 1] (the 400 logits, time-averaged)."""
        return self(i3d_input(clips))


def i3d_input(clips: torch.Tensor, resolution: int = I3D_RESOLUTION) -> torch.Tensor:
    """[N, T, 3, H, W] in [-1, 1] -> [N, 3, T, res, res] in [-1, 1], the VideoGPT/StyleGAN-V preprocessing: frames
    quantised to 8 bits (rounded), short side resized to ``resolution`` (bilinear, no antialiasing), centre crop."""
    if clips.dim() != 5 or clips.shape[2] != 3:
        raise ValueError(f"clips must be [N, T, 3, H, W], got shape {tuple(clips.shape)}")
    n, t, _, h, w = clips.shape
    frames = ((clips.float().clamp(-1, 1) + 1) * 127.5).round() / 255
    scale = resolution / min(h, w)
    size = (resolution, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), resolution)
    frames = F.interpolate(frames.reshape(n * t, 3, h, w), size=size, mode="bilinear", align_corners=False)
    top, left = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    frames = frames[..., top : top + resolution, left : left + resolution]
    return (frames.reshape(n, t, 3, resolution, resolution).transpose(1, 2) * 2 - 1).contiguous()
