"""The run configuration: dataclasses filled from ``configs/<name>.yaml`` and ``--set a.b=value`` overrides."""

from __future__ import annotations

from dataclasses import dataclass, field

from cyclic_walks.models.backbone import BackboneConfig
from visioncore.config import load_config

DATASETS = ("voc", "coco", "movi", "birds", "dogs", "cars", "flowers")
TASKS = ("od", "fe", "ss")


@dataclass
class ModelConfig:
    num_slots: int = 4
    iters: int = 3
    mlp_hidden: int = 0  # 0: the feature dim (the paper's 384 for ViT-S)
    tau: float = 0.1
    affinity_threshold: float = 0.7
    alpha: float = 1.0  # weight of whole-parts-whole
    beta: float = 100.0  # weight of parts-whole-parts
    position_prior: bool = False  # MOVi only


@dataclass
class DataConfig:
    dataset: str = "voc"
    root: str = ""
    train_split: str = "trainaug"
    val_split: str = "val"
    image_size: int = 224  # training crop
    eval_crop: int = 224  # official val: CenterCrop(eval_crop) then Resize(eval_size)
    eval_size: int = 320
    movi_variant: str = "C"
    frames_per_clip: int = 9
    shuffle: bool = False  # the official VOC/COCO/MOVi train loaders do not shuffle
    augment: bool = True
    num_workers: int = 2


@dataclass
class TrainConfig:
    lr: float = 4e-4
    warmup_steps: int = 5000
    decay_half_life: int = 50000  # lr factor 0.5^(step / half_life), from step 0
    batch_size: int = 128
    max_steps: int = 250000
    grad_clip_inf: float = 1.0  # inf-norm clipping
    mixed_precision: str = "fp16"
    seed: int = 42
    log_every: int = 50
    save_every: int = 5000
    keep_last: int = 3


@dataclass
class EvalConfig:
    task: str = "od"  # od (object discovery) | fe (foreground extraction) | ss (semantic segmentation)
    protocol: str = "official"  # official (the paper's conventions) | clean
    batch_size: int = 16
    seed: int = 0  # one fixed slot-noise draw
    num_classes: int = 21  # ss: k-means clusters and classes (VOC: 20 + background)
    max_images: int = 0  # 0: the whole split


@dataclass
class Config:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def get_config(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load ``configs/<name>.yaml`` (or a YAML path) with dotted overrides; ConfigError on unknown keys/values."""
    from visioncore.config import ConfigError

    cfg = load_config(Config, name_or_path, list(overrides), package="cyclic_walks")
    if cfg.data.dataset not in DATASETS:
        raise ConfigError(f"data.dataset: unknown dataset {cfg.data.dataset!r}; expected one of {DATASETS}")
    if cfg.eval.task not in TASKS:
        raise ConfigError(f"eval.task: unknown task {cfg.eval.task!r}; expected one of {TASKS}")
    if cfg.eval.protocol not in ("official", "clean"):
        raise ConfigError(f"eval.protocol: expected 'official' or 'clean', got {cfg.eval.protocol!r}")
    return cfg
