"""pv3d: 3D-aware portrait video GAN (PV3D, Xu et al., ICLR 2023) in pure PyTorch."""

from __future__ import annotations

import lazy_loader

__version__ = "0.1.0"

# Public names import their module on first use, so `import pv3d` and the CLI's --help stay light.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "models.generator": ["TriPlaneGenerator"],
        "models.discriminator": ["ImageDiscriminator", "VideoDiscriminator"],
        "models": ["build_discriminators", "build_generator"],
        "data.voxceleb": ["VoxCelebDataset"],
        "config": ["Config", "get_config"],
    },
)
