"""PV3D networks: tri-plane generator with motion layers, image and video discriminators, the renderer."""

from __future__ import annotations

from pv3d.config import Config, DiscriminatorConfig, GeneratorConfig, get_config
from pv3d.models.discriminator import ImageDiscriminator, VideoDiscriminator, video_input
from pv3d.models.generator import (
    MotionLayer,
    OSGDecoder,
    SuperResolution,
    SynthesisNetwork,
    TriPlaneGenerator,
)

__all__ = [
    "ImageDiscriminator",
    "MotionLayer",
    "OSGDecoder",
    "SuperResolution",
    "SynthesisNetwork",
    "TriPlaneGenerator",
    "VideoDiscriminator",
    "build_discriminators",
    "build_generator",
    "video_input",
]


def _config(name_or_cfg: str | Config) -> Config:
    return get_config(name_or_cfg) if isinstance(name_or_cfg, str) else name_or_cfg


def build_generator(name_or_cfg: str | Config | GeneratorConfig) -> TriPlaneGenerator:
    """The generator of a shipped config name, a YAML path, a ``Config`` or a ``GeneratorConfig``."""
    if isinstance(name_or_cfg, GeneratorConfig):
        return TriPlaneGenerator(name_or_cfg)
    return TriPlaneGenerator(_config(name_or_cfg).generator)


def build_discriminators(
    name_or_cfg: str | Config | tuple[DiscriminatorConfig, DiscriminatorConfig],
) -> tuple[ImageDiscriminator, VideoDiscriminator]:
    """(image D, video D) of a shipped config name, a YAML path or a ``Config``."""
    if isinstance(name_or_cfg, tuple):
        return ImageDiscriminator(name_or_cfg[0]), VideoDiscriminator(name_or_cfg[1])
    cfg = _config(name_or_cfg)
    return ImageDiscriminator(cfg.image_d), VideoDiscriminator(cfg.video_d)
