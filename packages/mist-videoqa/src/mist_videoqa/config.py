"""Run configuration: dataclass schemas filled from ``configs/<name>.yaml`` and ``--set key.sub=value``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mist_videoqa.models.config import MISTConfig
from visioncore.config import ConfigError, load_config, one_of

__all__ = ["DATASETS", "DataConfig", "RunConfig", "TrainSection", "load_train_config"]

DATASETS = ("agqa", "nextqa", "star", "envqa")


@dataclass
class DataConfig:
    """``root`` holds ``datasets/<dataset>/`` (annotations) and ``feats/<dataset>/`` (h5 features)."""

    dataset: str = "agqa"
    root: str = "data"
    features: str = ""  # "" -> feats/<dataset>/frame_feat/clip_patch_feat_all.h5 under root
    text_features: str = ""  # "" -> feats/<dataset>/text_feat/clip_text_feat.h5 under root
    vocab_file: str = ""  # BERT WordPiece vocab.txt (or a BERT folder); "" -> the packaged tiny vocab
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    preload: bool = False  # read the whole feature file into memory once
    max_items: int = 0  # 0: every QA of a split
    # multiplies the frame/crop features as read: 1 for real CLIP features (OpenAI CLIP's encode_image output is not
    # normalised, its norm is of order 10); the repro's synthetic unit vectors are brought to that scale
    feature_scale: float = 1.0

    def __post_init__(self) -> None:
        one_of("data.dataset", self.dataset, DATASETS)
        if self.max_items < 0:
            raise ConfigError(f"data.max_items must be >= 0, got {self.max_items}")
        if not self.feature_scale > 0:
            raise ConfigError(f"data.feature_scale must be > 0, got {self.feature_scale}")


@dataclass
class TrainSection:
    steps: int = 375000  # 30 epochs of 1.6M QAs at batch 128
    batch_size: int = 128
    lr: float = 3e-5
    warmup_steps: int = 0
    # cosine decays to min_lr_ratio x lr at ``steps``; 1.0 holds the lr constant (the official 300-epoch cosine is
    # nearly constant over the epochs that are actually used)
    min_lr_ratio: float = 0.0
    # the selectors' learning rate as a fraction of lr: until the reader reads the selected regions, any distinctive
    # token only perturbs its near-uniform answer logits and raises the loss, so full-speed Adam steps first teach
    # the selectors to AVOID the salient, queried regions (measured: segment hit below chance); 1.0 = one lr
    selector_lr_ratio: float = 1.0
    grad_clip: float = 12.0
    eval_every: int = 1250
    save_every: int = 1250
    log_every: int = 50
    keep_last: int = 2
    seed: int = 100
    eval_batch_size: int = 128

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "eval_every",
            "save_every",
            "log_every",
            "keep_last",
            "eval_batch_size",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.grad_clip <= 0 or self.warmup_steps < 0:
            raise ConfigError("train.lr and train.grad_clip must be > 0 and train.warmup_steps >= 0")
        if not 0.0 < self.selector_lr_ratio <= 1.0:
            raise ConfigError(f"train.selector_lr_ratio must be in (0, 1], got {self.selector_lr_ratio}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class RunConfig:
    model: MISTConfig = field(default_factory=MISTConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainSection = field(default_factory=TrainSection)


def load_train_config(name_or_path: str = "tiny", overrides: Sequence[str] = ()) -> RunConfig:
    """A shipped config by name (``agqa``, ``tiny``, ``repro``, ...) or a YAML path, then overrides."""
    return load_config(RunConfig, name_or_path, list(overrides), package="mist_videoqa")
