"""Config schema (dataclasses); YAML files in ``configs/`` fill it, ``--set key.sub=value`` overrides it."""

from __future__ import annotations

from dataclasses import dataclass, field

from visioncore.config import ConfigError, in_range, load_config, one_of, positive_fields
from visioncore.devices import MIXED_PRECISION

PACKAGE = "darwinian_upgrades"


@dataclass
class ModelConfig:
    """An embedding model: backbone (tiny CNN 16-32-64 × width, resnet50/101, iresnet18/50), GeM, fc_emb, classifier."""

    backbone: str = "tiny"
    width: float = 1.0
    embed_dim: int = 32
    head: str = "linear"
    scale: float = 64.0
    margin: float = 0.5
    weights: str = ""  # local torchvision/timm ResNet file for the backbone ("" = random init)

    def __post_init__(self) -> None:
        one_of("model.backbone", self.backbone, ("tiny", "resnet50", "resnet101", "iresnet18", "iresnet50"))
        one_of("model.head", self.head, ("linear", "cosine", "arcface"))
        positive_fields("model", self, "width", "embed_dim", "scale")
        if not 0.0 <= self.margin < 3.14:
            raise ConfigError(f"model.margin must lie in [0, π), got {self.margin}")


@dataclass
class DataConfig:
    """Where the images and lists are (GLDv2 layout, relative to ``root``) and how images become tensors."""

    format: str = (
        "gldv2"  # "gldv2" (image lists) or "ms1m" (RecordIO folder; lists hold "<record key> <label>")
    )
    root: str = "data/gldv2"
    train_list: str = "annotation/gldv2/label_81313.txt"
    old_list: str = "annotation/gldv2/gldv2_train_old_30percent.txt"
    gallery_list: str = "annotation/gldv2/gldv2_gallery_list.txt"
    query_gt: str = "annotation/gldv2/gldv2_private_query_gt.txt"
    image_size: int = 16
    resize: str = "squash"  # "squash" (upstream: Resize((s, s))) or "aspect" (short side, centre crop)
    augment: bool = False  # RandomResizedCrop + flip (paper recipe), drawn from the global RNG (resumable)
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    cache: bool = False  # decode every image once and keep it in memory (small data sets)
    num_workers: int = 0

    def __post_init__(self) -> None:
        one_of("data.format", self.format, ("gldv2", "ms1m"))
        one_of("data.resize", self.resize, ("squash", "aspect"))
        positive_fields("data", self, "image_size")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("data.mean and data.std need 3 values, std positive")


@dataclass
class TrainConfig:
    """Optimisation of the embedding models (every role) on one accelerate loop."""

    steps: int = 400
    old_steps: int = 200
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "constant"  # "constant" or "cosine" (per-iteration cosine with linear warm-up)
    min_lr_ratio: float = 0.0
    mixed_precision: str = "no"
    save_every: int = 0  # 0 = only the final checkpoint
    log_every: int = 50
    keep_last: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        one_of("train.optimizer", self.optimizer, ("adam", "sgd"))
        one_of("train.schedule", self.schedule, ("constant", "cosine"))
        one_of("train.mixed_precision", self.mixed_precision, MIXED_PRECISION)
        positive_fields("train", self, "steps", "old_steps", "batch_size", "lr", "log_every", "keep_last")
        in_range("train.min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        if self.warmup_steps < 0 or self.save_every < 0 or self.weight_decay < 0:
            raise ConfigError("train.warmup_steps, train.save_every and train.weight_decay must be >= 0")


@dataclass
class LossConfig:
    """L = CE_new + λ_bc L_(s)bc + λ_fa L_fa (+ a comparison loss); DMU's τ, γ and ψ's L2 weight."""

    lambda_bc: float = 1.0
    lambda_fa: float = 1.0
    tau: float = 1.0
    gamma: float = 1.0
    l2_weight: float = 1.0
    adapter_mode: str = (
        "posthoc"  # "posthoc" (ψ on cached features) or "joint" (ψ trained with the new model)
    )
    comparison: str = "none"  # "none", "l2", "fd", "contra_ract": added with weight `comparison_weight`
    comparison_weight: float = 1.0
    ract_temperature: float = 0.01

    def __post_init__(self) -> None:
        one_of("loss.adapter_mode", self.adapter_mode, ("posthoc", "joint"))
        one_of("loss.comparison", self.comparison, ("none", "l2", "fd", "contra_ract"))
        positive_fields("loss", self, "tau", "ract_temperature")
        positive_fields(
            "loss", self, "lambda_bc", "lambda_fa", "gamma", "l2_weight", "comparison_weight", allow_zero=True
        )


@dataclass
class AdapterConfig:
    """ψ trained post hoc on cached (φ_o, φ_n, s, y) of the training set."""

    steps: int = 200
    batch_size: int = 256
    lr: float = 3e-3

    def __post_init__(self) -> None:
        positive_fields("adapter", self, "steps", "batch_size", "lr")


@dataclass
class ReproConfig:
    """The synthetic acceptance experiment (sizes of the data set, seeds, backfilling grid)."""

    landmarks: int = 240
    train_landmarks: int = 160
    images_per_landmark: int = 20
    old_fraction: float = 0.3
    queries: int = 3
    gallery: int = 8
    open_queries: int = 5
    open_gallery: int = 15
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    fractions: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0])
    random_draws: int = 5
    k: int = 100

    def __post_init__(self) -> None:
        in_range("repro.old_fraction", self.old_fraction, 0.0, 1.0)
        positive_fields(
            "repro",
            self,
            "landmarks",
            "train_landmarks",
            "images_per_landmark",
            "queries",
            "gallery",
            "open_queries",
            "open_gallery",
            "random_draws",
            "k",
        )
        if self.train_landmarks >= self.landmarks:
            raise ConfigError(
                "repro.train_landmarks must be below repro.landmarks (novel landmarks are needed)"
            )
        if not self.seeds:
            raise ConfigError("repro.seeds must not be empty")
        if any(not 0.0 <= f <= 1.0 for f in self.fractions) or self.fractions != sorted(self.fractions):
            raise ConfigError("repro.fractions must be increasing values in [0, 1]")
        if not self.fractions or self.fractions[0] != 0.0 or self.fractions[-1] != 1.0:
            raise ConfigError("repro.fractions must start at 0 and end at 1")


@dataclass
class Config:
    old: ModelConfig = field(default_factory=lambda: ModelConfig(width=0.5))
    new: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    repro: ReproConfig = field(default_factory=ReproConfig)


def load(name_or_path: str | None = "tiny", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The config ``name_or_path`` (a shipped name or a YAML path) with ``key.sub=value`` overrides."""
    return load_config(Config, name_or_path, list(overrides), package=PACKAGE)
