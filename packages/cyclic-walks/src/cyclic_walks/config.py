"""The run configuration: dataclasses filled from ``configs/<name>.yaml`` and ``--set a.b=value`` overrides."""

from __future__ import annotations

from dataclasses import dataclass, field

from cyclic_walks.models.backbone import BackboneConfig
from visioncore.config import in_range, load_config, one_of, positive
from visioncore.devices import MIXED_PRECISION

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

    def __post_init__(self) -> None:
        positive("model.num_slots", self.num_slots)
        positive("model.iters", self.iters)
        positive("model.mlp_hidden", self.mlp_hidden, allow_zero=True)
        positive("model.tau", self.tau)
        in_range("model.affinity_threshold", self.affinity_threshold, -1.0, 1.0)
        positive("model.alpha", self.alpha, allow_zero=True)
        positive("model.beta", self.beta, allow_zero=True)


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

    def __post_init__(self) -> None:
        one_of("data.dataset", self.dataset, DATASETS)
        for name in ("image_size", "eval_crop", "eval_size", "frames_per_clip"):
            positive(f"data.{name}", getattr(self, name))
        positive("data.num_workers", self.num_workers, allow_zero=True)


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

    def __post_init__(self) -> None:
        positive("train.lr", self.lr)
        positive("train.warmup_steps", self.warmup_steps, allow_zero=True)
        positive("train.decay_half_life", self.decay_half_life)
        for name in ("batch_size", "max_steps", "log_every", "keep_last"):
            positive(f"train.{name}", getattr(self, name))
        positive("train.grad_clip_inf", self.grad_clip_inf, allow_zero=True)
        positive("train.save_every", self.save_every, allow_zero=True)
        one_of("train.mixed_precision", self.mixed_precision, MIXED_PRECISION)


@dataclass
class EvalConfig:
    task: str = "od"  # od (object discovery) | fe (foreground extraction) | ss (semantic segmentation)
    protocol: str = "official"  # official (the paper's conventions) | clean
    batch_size: int = 16
    seed: int = 0  # one fixed slot-noise draw
    num_classes: int = 21  # ss: k-means clusters and classes (VOC: 20 + background)
    max_images: int = 0  # 0: the whole split

    def __post_init__(self) -> None:
        one_of("eval.task", self.task, TASKS)
        one_of("eval.protocol", self.protocol, ("official", "clean"))
        positive("eval.batch_size", self.batch_size)
        positive("eval.num_classes", self.num_classes)
        positive("eval.max_images", self.max_images, allow_zero=True)


@dataclass
class Config:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def get_config(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load ``configs/<name>.yaml`` (or a YAML path) with dotted overrides; ConfigError on unknown keys/values."""
    return load_config(Config, name_or_path, list(overrides), package="cyclic_walks")
