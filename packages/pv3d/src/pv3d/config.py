"""Config schemas (dataclasses) for the generator, the two discriminators, data and training.

Shipped YAML files live in ``pv3d/configs/``: ``voxceleb`` (paper), ``voxceleb-res128``, ``celebvhq``,
``talkinghead``, ``tiny`` (tests) and ``repro`` (the acceptance experiment). Values that make no sense are refused
here with a one-line ``ConfigError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from visioncore.config import ConfigError, in_range, load_config, positive_fields

__all__ = [
    "Config",
    "DataConfig",
    "DiscriminatorConfig",
    "GeneratorConfig",
    "ReproConfig",
    "TrainConfig",
    "get_config",
]


def _power_of_two(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value < 4 or value & (value - 1):
            raise ConfigError(f"{type(obj).__name__}.{name} must be a power of two >= 4, got {value}")


@dataclass
class GeneratorConfig:
    """Tri-plane generator (EG3D + PV3D motion layers); defaults = the paper's VoxCeleb model."""

    z_dim: int = 512
    z_motion_dim: int = 512
    w_dim: int = 512
    c_dim: int = 25
    c_scale: float = 1.0
    mapping_layers: int = 2
    plane_resolution: int = 256
    plane_channels: int = 32
    channel_base: int = 32768
    channel_max: int = 512
    conv_clamp: float | None = None
    motion_layers: bool = True
    motion_max_res: int = 32
    motion_dim: int = 512
    decoder_hidden: int = 64
    renderer: str = "triplane"  # or "image2d" (the 2-D baseline)
    render_resolution: int = 64
    n_coarse: int = 48
    n_fine: int = 48
    ray_start: float = 2.25
    ray_end: float = 3.3
    box_warp: float = 1.0
    sr_in_resolution: int = 128
    sr_channels: list[int] = field(default_factory=lambda: [256, 128])
    image_resolution: int = 512

    def __post_init__(self) -> None:
        positive_fields(
            "GeneratorConfig",
            self,
            "z_dim",
            "z_motion_dim",
            "w_dim",
            "mapping_layers",
            "plane_channels",
            "channel_base",
        )
        positive_fields(
            "GeneratorConfig",
            self,
            "channel_max",
            "motion_dim",
            "decoder_hidden",
            "n_coarse",
            "ray_start",
            "box_warp",
        )
        _power_of_two(self, "plane_resolution", "render_resolution", "sr_in_resolution", "image_resolution")
        if self.c_dim != 25:
            raise ConfigError(f"GeneratorConfig.c_dim must be 25 (EG3D camera vectors), got {self.c_dim}")
        if self.renderer not in ("triplane", "image2d"):
            raise ConfigError(f"GeneratorConfig.renderer must be triplane or image2d, got {self.renderer!r}")
        if self.n_fine not in (0, self.n_coarse):
            raise ConfigError(
                "GeneratorConfig.n_fine must be 0 or equal to n_coarse (EG3D reshapes fine by coarse)"
            )
        if self.ray_end <= self.ray_start:
            raise ConfigError(
                f"GeneratorConfig.ray_end ({self.ray_end}) must exceed ray_start ({self.ray_start})"
            )
        n_sr = (
            int(math.log2(self.image_resolution // self.sr_in_resolution)) if self.image_resolution > 0 else 0
        )
        if self.sr_in_resolution * 2**n_sr != self.image_resolution or len(self.sr_channels) != n_sr:
            raise ConfigError(
                f"GeneratorConfig.sr_channels needs one entry per 2x step from {self.sr_in_resolution} to "
                f"{self.image_resolution} ({n_sr}), got {list(self.sr_channels)}"
            )
        if any(ch <= 0 for ch in self.sr_channels):
            raise ConfigError("GeneratorConfig.sr_channels must be positive")


@dataclass
class DiscriminatorConfig:
    """StyleGAN2 ResNet discriminator with camera projection (image D and video D share the schema)."""

    resolution: int = 512
    channel_base: int = 32768
    channel_max: int = 512
    cmap_dim: int = 512
    mapping_layers: int = 8
    mbstd_group: int = 4
    conv_clamp: float | None = 256.0

    def __post_init__(self) -> None:
        _power_of_two(self, "resolution")
        positive_fields(
            "DiscriminatorConfig",
            self,
            "channel_base",
            "channel_max",
            "cmap_dim",
            "mapping_layers",
            "mbstd_group",
        )


@dataclass
class DataConfig:
    """VoxCeleb layout: ``root/recrop_faces/*.mp4``, ``root/smoothed_camera2world/*.json``, ``root/<list_name>``."""

    root: str = "data/voxceleb"
    list_name: str = "voxceleb.list"
    num_frames: int = 16
    image_size: int = 512
    hflip: bool = True

    def __post_init__(self) -> None:
        positive_fields("DataConfig", self, "image_size")
        if self.num_frames < 2:
            raise ConfigError(f"DataConfig.num_frames must be >= 2, got {self.num_frames}")


@dataclass
class TrainConfig:
    """PV3D recipe (Sec. 4 and the official README run): four phases, lazy regularisation, EMA G."""

    batch_size: int = 16
    steps: int = 300_000
    g_lr: float = 0.0025  # x 4/5 lazy-regularisation correction = 0.002
    d_lr: float = 0.002  # x 16/17
    image_weight: float = 1.0
    video_weight: float = 0.65
    r1_gamma: float = 2.0
    r1_every: int = 16
    density_reg: float = 0.6
    density_every: int = 4
    density_points: int = 1000
    density_noise: float = 0.004
    blur_sigma: float = 10.0
    blur_fade_kimg: float = 100.0  # 200 * batch / 32
    swap_prob_start: float = 1.0
    swap_prob_end: float = 0.5
    swap_fade_kimg: float = 1000.0
    ema_kimg: float = 5.0  # batch * 10 / 32
    ema_rampup: float | None = 0.05
    log_every: int = 100
    save_every: int = 6000
    keep_last: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        positive_fields(
            "TrainConfig",
            self,
            "batch_size",
            "steps",
            "g_lr",
            "d_lr",
            "r1_every",
            "density_every",
            "density_points",
        )
        positive_fields("TrainConfig", self, "log_every", "save_every", "keep_last")
        positive_fields(
            "TrainConfig",
            self,
            "image_weight",
            "video_weight",
            "r1_gamma",
            "density_reg",
            "density_noise",
            "blur_sigma",
            allow_zero=True,
        )
        for name in ("swap_prob_start", "swap_prob_end"):
            in_range(f"TrainConfig.{name}", getattr(self, name), 0.0, 1.0)
        if self.ema_rampup is not None and self.ema_rampup <= 0:
            raise ConfigError(f"TrainConfig.ema_rampup must be positive or null, got {self.ema_rampup}")
        if self.batch_size % 2:
            raise ConfigError(
                f"TrainConfig.batch_size must be even (camera swap pairs), got {self.batch_size}"
            )


@dataclass
class ReproConfig:
    """The acceptance experiment (``pv3d repro``): toy-head data size, seeds and evaluation sizes."""

    clips: int = 512
    num_frames: int = 16
    resolution: int = 32
    data_seed: int = 0
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    fvd_clips: int = 256
    eval_samples: int = 64
    workers: int = 2

    def __post_init__(self) -> None:
        positive_fields(
            "ReproConfig", self, "clips", "num_frames", "resolution", "fvd_clips", "eval_samples", "workers"
        )
        if not self.seeds:
            raise ConfigError("ReproConfig.seeds must name at least one seed")
        if self.clips < 2 * self.fvd_clips:
            raise ConfigError(f"ReproConfig.clips ({self.clips}) must be >= 2 x fvd_clips (two real halves)")


@dataclass
class Config:
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    image_d: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    video_d: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    repro: ReproConfig = field(default_factory=ReproConfig)

    def __post_init__(self) -> None:
        g = self.generator
        for name in ("image_d", "video_d"):
            if getattr(self, name).resolution != g.image_resolution:
                raise ConfigError(
                    f"{name}.resolution ({getattr(self, name).resolution}) must equal generator.image_resolution "
                    f"({g.image_resolution})"
                )
        if self.data.image_size != g.image_resolution:
            raise ConfigError(
                f"data.image_size ({self.data.image_size}) must equal generator.image_resolution ({g.image_resolution})"
            )


def get_config(name_or_path: str = "tiny", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A shipped config by name or a YAML path, with ``key.sub=value`` overrides."""
    return load_config(Config, name_or_path, overrides, package="pv3d")
