"""Frozen perceptual networks: named ReLU taps plus ``"logits"`` (the contract of ``seq_gan.losses``).

``VGG16Perceptual`` reads a local torchvision VGG16 state dict (``features`` taps 3/8/15/22/29 = relu1_2 ... relu5_3
and the ``classifier`` logits; Sec. 3.3 of the paper). ``SmallPerceptualNet`` is a 4-stage CNN stand-in (taps
``tap1``..``tap4``) used by the tiny configs and the acceptance experiment, where it is trained first and then frozen.

Every tap has a fixed scale (a buffer, default 1): ``calibrate`` sets it to make the tap unit-RMS on real images.
This is a property of the network (like LPIPS' channel normalisation, without learned weights), applied before the
plain mean-squared differences of the loss.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from visioncore.hub import CheckpointError, PretrainedMixin

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG16_TAPS = {3: "relu1_2", 8: "relu2_2", 15: "relu3_3", 22: "relu4_3", 29: "relu5_3"}


class PerceptualNet(nn.Module):
    """Base class: ``forward(x in [-1, 1]) -> {tap name: tensor, "logits": [B, C]}``; frozen after ``freeze()``."""

    tap_names: tuple[str, ...] = ()

    def _init_scales(self) -> None:
        names = (*self.tap_names, "logits")
        self.register_buffer("tap_scale", torch.ones(len(names)))
        self._scale_index = {name: i for i, name in enumerate(names)}

    def raw_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.raw_features(x)
        return {name: f * self.tap_scale[self._scale_index[name]] for name, f in feats.items()}

    def freeze(self) -> PerceptualNet:
        self.requires_grad_(False)
        return self.eval()

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor, batch_size: int = 64) -> dict[str, float]:
        """Scale every tap (and the logits) to unit RMS on ``images`` [N, 3, H, W] in [-1, 1]; returns the scales."""
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for i in range(0, len(images), batch_size):
            for name, f in self.raw_features(images[i : i + batch_size]).items():
                sums[name] = sums.get(name, 0.0) + float(f.double().pow(2).sum())
                counts[name] = counts.get(name, 0) + f.numel()
        for name, idx in self._scale_index.items():
            self.tap_scale[idx] = (counts[name] / max(sums[name], 1e-12)) ** 0.5
        return {name: float(self.tap_scale[idx]) for name, idx in self._scale_index.items()}


class VGG16Perceptual(PerceptualNet):
    """torchvision VGG16 from a local file: relu1_2..relu5_3 taps and the 1000-way classifier logits (eval mode)."""

    tap_names = tuple(VGG16_TAPS.values())

    def __init__(self, weights: str | os.PathLike | None = None):
        from torchvision.models import vgg16

        super().__init__()
        net = vgg16(weights=None)
        if weights is not None:
            load_vgg16_state(net, weights)
        for module in net.features:
            if isinstance(module, nn.ReLU):
                module.inplace = False
        self.features = net.features[:30]  # up to relu5_3
        self.pool = nn.Sequential(net.features[30], net.avgpool)
        self.classifier = net.classifier
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self._init_scales()
        self.freeze()

    def raw_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = ((x + 1.0) / 2.0 - self.mean) / self.std
        feats: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in VGG16_TAPS:
                feats[VGG16_TAPS[i]] = h
        feats["logits"] = self.classifier(torch.flatten(self.pool(h), 1))
        return feats


def load_vgg16_state(net: nn.Module, path: str | os.PathLike) -> None:
    """Load a torchvision VGG16 state dict (.pth/.safetensors) into ``net``; the classifier head is required."""
    from visioncore.backbones import load_weights

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: VGG16 weights file not found")
    report = load_weights(net, path, strict=False)
    missing_head = [k for k in report.missing if k.startswith("classifier.")]
    if missing_head:
        raise CheckpointError(
            f"{path}: VGG16 file has no classifier weights ({', '.join(missing_head[:2])} ...); the semantic loss "
            "needs the logits"
        )
    if report.missing or report.unexpected:
        raise CheckpointError(
            f"{path}: not a torchvision VGG16 state dict (missing {report.missing[:3]}, unexpected {report.unexpected[:3]})"
        )


class SmallPerceptualNet(PerceptualNet, PretrainedMixin):
    """A 4-stage CNN (widths e.g. 16-32-64-64, ReLU taps ``tap1``..``tap4``) with a linear classifier on tap4.

    Saved with ``save_pretrained`` (its calibrated tap scales included) and loaded with ``from_pretrained``.
    """

    tap_names = ("tap1", "tap2", "tap3", "tap4")

    def __init__(self, widths: list[int] | tuple[int, ...] = (16, 32, 64, 64), num_classes: int = 10):
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"SmallPerceptualNet needs 4 widths, got {widths}")
        stages, cin = [], 3
        for i, width in enumerate(widths):
            pool = [nn.MaxPool2d(2)] if 0 < i < 3 else []
            stages.append(nn.Sequential(*pool, nn.Conv2d(cin, width, 3, padding=1), nn.ReLU()))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(cin, num_classes)
        self._init_scales()

    def raw_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats: dict[str, torch.Tensor] = {}
        h = x
        for name, stage in zip(self.tap_names, self.stages):
            h = stage(h)
            feats[name] = h
        feats["logits"] = self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))
        return feats
