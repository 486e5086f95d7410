"""Config schema of every verb (``--config NAME|PATH``, ``--set key.sub=value``); shipped YAMLs in ``configs/``."""

from __future__ import annotations

from dataclasses import dataclass, field

from visioncore.config import ConfigError, in_range, one_of, positive
from visioncore.devices import MIXED_PRECISION

__all__ = [
    "Config",
    "DataConfig",
    "FinetuneConfig",
    "InitConfig",
    "ModelConfig",
    "PTPConfig",
    "ReproConfig",
    "TrainConfig",
]


@dataclass
class ModelConfig:
    """Model shape (``BLIPConfig`` without the token ids, which come from the tokenizer folder)."""

    vit: str = "base"
    image_size: int = 224
    patch_size: int = 16
    vision_width: int = 0
    vision_depth: int = 0
    vision_heads: int = 0
    pos_embed: str = "learn"
    pos_embed_temperature: float = 10000.0
    drop_path_rate: float = 0.0
    text_width: int = 768
    text_depth: int = 12
    text_heads: int = 12
    text_intermediate: int = 3072
    max_text_positions: int = 512
    text_dropout: float = 0.1
    embed_dim: int = 256
    queue_size: int = 57600
    momentum: float = 0.995
    temp: float = 0.07

    def __post_init__(self) -> None:
        one_of("model.vit", self.vit, ("tiny", "small", "base", "large"))
        one_of("model.pos_embed", self.pos_embed, ("learn", "sincos"))
        positive("model.pos_embed_temperature", self.pos_embed_temperature)
        for name in (
            "image_size",
            "patch_size",
            "text_width",
            "text_depth",
            "text_heads",
            "embed_dim",
            "queue_size",
        ):
            positive(f"model.{name}", getattr(self, name))
        for name in ("vision_width", "vision_depth", "vision_heads"):
            positive(f"model.{name}", getattr(self, name), allow_zero=True)
        in_range("model.momentum", self.momentum, 0.0, 1.0)
        in_range("model.temp", self.temp, 0.001, 0.5)
        in_range("model.text_dropout", self.text_dropout, 0.0, 1.0)
        in_range("model.drop_path_rate", self.drop_path_rate, 0.0, 1.0)


@dataclass
class DataConfig:
    """Pretraining corpus (``corpus``, images under ``image_root``), fine-tuning annotations, tokenizer folder."""

    corpus: str = ""
    image_root: str = ""
    annotation: str = ""
    tokenizer: str = ""
    max_words: int = 30
    max_tokens: int = 30
    augment: str = "blip"
    crop_min_scale: float = 0.2
    num_workers: int = 0

    def __post_init__(self) -> None:
        one_of("data.augment", self.augment, ("none", "blip"))
        positive("data.max_words", self.max_words)
        positive("data.max_tokens", self.max_tokens)
        in_range("data.crop_min_scale", self.crop_min_scale, 0.0, 1.0)
        positive("data.num_workers", self.num_workers, allow_zero=True)


@dataclass
class PTPConfig:
    """``enabled=false``: plain BLIP on the same data; ``shuffle_blocks=true``: the random-block control."""

    enabled: bool = True
    variant: str = "tsv"
    grid: int = 3
    shuffle_blocks: bool = False

    def __post_init__(self) -> None:
        one_of("ptp.variant", self.variant, ("tsv", "refined"))
        positive("ptp.grid", self.grid)


@dataclass
class TrainConfig:
    """Optimisation: AdamW; ``schedule=step`` is BLIP pretraining (linear warm-up from ``warmup_lr``, then
    ``lr * decay ** epoch`` floored at ``min_lr``), ``cosine`` the fine-tuning one (warm-up, cosine to 0)."""

    steps: int = 1000
    batch_size: int = 75
    lr: float = 3e-4
    weight_decay: float = 0.05
    schedule: str = "step"
    warmup_steps: int = 3000
    warmup_lr: float = 1e-6
    min_lr: float = 1e-6
    decay: float = 0.9
    alpha: float = 0.4
    alpha_ramp_epochs: float = 2.0
    seed: int = 0
    log_every: int = 50
    save_every: int = 1000
    keep_last: int = 2
    mixed_precision: str = "no"

    def __post_init__(self) -> None:
        positive("train.steps", self.steps)
        positive("train.batch_size", self.batch_size)
        positive("train.lr", self.lr)
        positive("train.weight_decay", self.weight_decay, allow_zero=True)
        positive("train.warmup_steps", self.warmup_steps, allow_zero=True)
        positive("train.log_every", self.log_every)
        positive("train.save_every", self.save_every, allow_zero=True)
        positive("train.keep_last", self.keep_last)
        positive("train.alpha_ramp_epochs", self.alpha_ramp_epochs, allow_zero=True)
        in_range("train.alpha", self.alpha, 0.0, 1.0)
        in_range("train.decay", self.decay, 0.0, 1.0)
        one_of("train.schedule", self.schedule, ("step", "cosine"))
        one_of("train.mixed_precision", self.mixed_precision, MIXED_PRECISION)


@dataclass
class FinetuneConfig:
    """Downstream settings: retrieval re-ranks ``k_test`` candidates; captioning uses ``prompt`` and greedy
    decoding between ``min_length`` and ``max_length`` tokens."""

    task: str = "retrieval_coco"
    k_test: int = 256
    prompt: str = "a picture of "
    max_length: int = 20
    min_length: int = 5

    def __post_init__(self) -> None:
        if self.task not in ("retrieval_coco", "retrieval_flickr", "caption_coco"):
            raise ConfigError(
                f"finetune.task must be retrieval_coco, retrieval_flickr or caption_coco, got {self.task!r}"
            )
        positive("finetune.k_test", self.k_test)
        positive("finetune.max_length", self.max_length)
        positive("finetune.min_length", self.min_length, allow_zero=True)


@dataclass
class InitConfig:
    """Local weights: a DeiT/ViT ``.pth``/``.safetensors`` and a ``bert-base-uncased`` folder (pretraining), or
    an official BLIP/PTP checkpoint (``{"model": ...}``)."""

    vit: str = ""
    bert: str = ""
    checkpoint: str = ""


@dataclass
class ReproConfig:
    """The acceptance experiment: ShapesGrid size, seeds and worker processes (one thread each)."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    n_train: int = 4000
    n_test: int = 900
    data_seed: int = 0
    position_rate: float = 0.2
    workers: int = 2

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("repro.seeds must not be empty")
        positive("repro.n_train", self.n_train)
        positive("repro.n_test", self.n_test)
        positive("repro.workers", self.workers)
        in_range("repro.position_rate", self.position_rate, 0.0, 1.0)
        if self.n_test % 9:
            raise ConfigError(
                f"repro.n_test must be a multiple of 9 (the same count per block), got {self.n_test}"
            )


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    ptp: PTPConfig = field(default_factory=PTPConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    init: InitConfig = field(default_factory=InitConfig)
    repro: ReproConfig = field(default_factory=ReproConfig)
