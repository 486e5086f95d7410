"""pv3d: 3D-aware portrait video GAN (PV3D, Xu et al., ICLR 2023) in pure PyTorch."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "TriPlaneGenerator": "pv3d.models.generator",
    "ImageDiscriminator": "pv3d.models.discriminator",
    "VideoDiscriminator": "pv3d.models.discriminator",
    "build_generator": "pv3d.models",
    "build_discriminators": "pv3d.models",
    "VoxCelebDataset": "pv3d.data.voxceleb",
    "Config": "pv3d.config",
    "get_config": "pv3d.config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:  # PEP 562: keep `import pv3d` light
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pv3d' has no attribute {name!r}")
