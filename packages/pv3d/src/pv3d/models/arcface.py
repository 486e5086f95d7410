"""ArcFace IR-SE50 (Deng et al., "ArcFace", CVPR 2019; the IR-SE ResNet-50 of InsightFace_Pytorch), the face
recogniser of the multi-view identity (ID) metric of EG3D and PV3D (``model_ir_se50.pth``, as used by pSp).

Module names follow that file so it loads strictly: ``input_layer.{0,1,2}``, ``body.N.res_layer.{0..5}``,
``body.N.shortcut_layer.{0,1}``, ``output_layer.{0,3,4}``. Input: aligned faces [N, 3, 112, 112] in [-1, 1];
output: 512-d L2-normalised embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ARCFACE_RESOLUTION", "ArcFaceIRSE50", "arcface_input"]

ARCFACE_RESOLUTION = 112
# (output channels, units) of the four stages of IR-50; the first unit of each stage has stride 2.
_STAGES = ((64, 3), (128, 4), (256, 14), (512, 3))


class SEModule(nn.Module):
    """Squeeze-and-excitation: x * sigmoid(fc2(relu(fc1(avgpool(x))))), 1x1 convs without bias, reduction 16."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class BottleneckIRSE(nn.Module):
    """Improved residual unit: BN -> 3x3 conv -> PReLU -> 3x3 conv (stride) -> BN -> SE, plus the shortcut
    (subsampling when the width is unchanged, else 1x1 conv (stride) -> BN)."""

    def __init__(self, in_channels: int, depth: int, stride: int):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class ArcFaceIRSE50(nn.Module):
    """IR-SE50 at 112x112 (``Backbone(112, 50, 'ir_se', drop_ratio=0.6)``): [N, 3, 112, 112] -> [N, 512] unit vectors."""

    def __init__(self, embedding_dim: int = 512):
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        )
        units, in_channels = [], 64
        for depth, count in _STAGES:
            for i in range(count):
                units.append(BottleneckIRSE(in_channels, depth, 2 if i == 0 else 1))
                in_channels = depth
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(0.6),
            nn.Flatten(),
            nn.Linear(512 * 7 * 7, embedding_dim),
            nn.BatchNorm1d(embedding_dim),
        )

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        if faces.shape[-2:] != (ARCFACE_RESOLUTION, ARCFACE_RESOLUTION):
            raise ValueError(f"ArcFace takes 112x112 faces, got shape {tuple(faces.shape)}")
        return F.normalize(self.output_layer(self.body(self.input_layer(faces))), dim=1)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings [N, 512] of aligned face images [N, 3, H, W] in [-1, 1] (resized by ``arcface_input``)."""
        return self(arcface_input(images))


def arcface_input(images: torch.Tensor) -> torch.Tensor:
    """Aligned portraits [N, 3, H, W] -> [N, 3, 112, 112] in [-1, 1]: clamp, whole frame resized bilinearly
    (PV3D's ID preprocessing; no further crop)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [N, 3, H, W], got shape {tuple(images.shape)}")
    size = (ARCFACE_RESOLUTION, ARCFACE_RESOLUTION)
    return F.interpolate(images.float().clamp(-1, 1), size=size, mode="bilinear", align_corners=False)
