"""Config schema (dataclasses; YAML files in ``configs/``). Values marked "unverified" come from the spec sheet's
reading of the paper/official code, "ours" are our own choices."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from visioncore.config import ConfigError, in_range, one_of, positive_fields

from .losses import PRIVACY_LOSS_MODES

__all__ = ["Config", "DataConfig", "EvalConfig", "ModelConfig", "RecognizerConfig", "TrainConfig"]

_FAMILIES = ("vit", "cnn3d", "cnn2d", "mlp", "bag")


@dataclass
class ModelConfig:
    """The anonymizer. Paper size: ViT-S at 16x112x112, tubelet (2, 16, 16); pruning_loc and alpha unverified."""

    img_size: int = 112
    num_frames: int = 16
    tubelet: list[int] = field(default_factory=lambda: [2, 16, 16])
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    pruning_loc: list[int] = field(default_factory=lambda: [3, 6, 9])  # unverified (DynamicViT default)
    keep_ratio: float = 0.7  # alpha per stage, cumulative (unverified)
    residual: bool = False  # ours: output = input tubelet + PAB output, head zero-initialised
    pretrained: str = ""  # a local timm/DeiT ViT-S/16 file, inflated to 3-D ("" = random init)
    inflation: str = "average"  # average | central

    def __post_init__(self) -> None:
        positive_fields(
            "model", self, "img_size", "num_frames", "embed_dim", "depth", "num_heads", "mlp_ratio"
        )
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ConfigError(f"model.keep_ratio must be in (0, 1], got {self.keep_ratio}")
        if self.embed_dim % 12:
            raise ConfigError(f"model.embed_dim {self.embed_dim} must be divisible by 12 (token predictor)")
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"model.embed_dim {self.embed_dim} is not divisible by model.num_heads {self.num_heads}"
            )
        one_of("model.inflation", self.inflation, ("average", "central"))

    def kwargs(self) -> dict:
        """Arguments of ``STPrivacy``."""
        skip = {"pretrained", "inflation"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}


@dataclass
class RecognizerConfig:
    """A recognizer: ``family`` vit (the paper's), cnn3d, cnn2d, mlp or bag (ours); ViT sizes when family = vit."""

    family: str = "vit"
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6

    def __post_init__(self) -> None:
        one_of("action/privacy.family", self.family, _FAMILIES)
        positive_fields("action/privacy", self, "embed_dim", "depth", "num_heads")

    def vit(self) -> dict:
        return {"embed_dim": self.embed_dim, "depth": self.depth, "num_heads": self.num_heads}


@dataclass
class DataConfig:
    """Official layouts: ``dataset`` hmdb51 (stride 2) or ucf101 (stride 4); ``labels`` the official pickle."""

    dataset: str = "hmdb51"
    videos: str = ""
    splits: str = ""
    labels: str = ""
    split: int = 1
    num_frames: int = 16
    stride: int = 2
    size: int = 112
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    attribute_names: list[str] = field(
        default_factory=lambda: ["face", "skin_color", "gender", "nudity", "relationship"]
    )  # by position: the official order is undocumented
    in_memory: bool = False  # decode every clip once (small data sets)

    def __post_init__(self) -> None:
        one_of("data.dataset", self.dataset, ("hmdb51", "ucf101"))
        one_of("data.split", self.split, (1, 2, 3))
        positive_fields("data", self, "num_frames", "stride", "size")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("data.mean and data.std need 3 values, std > 0")


@dataclass
class TrainConfig:
    """Three phases (80 / 40 / 80 epochs in the paper, unverified; here in optimizer steps)."""

    batch_size: int = 8
    init_steps: int = 35760  # 80 epochs of HMDB51 split 1 (3570 videos) at batch 8
    privacy_steps: int = 17880
    adversarial_steps: int = 35760
    lr: float = 1e-3  # predictors' peak lr; the backbone gets min(backbone_lr_ratio * lr, cosine lr)
    min_lr: float = 1e-5
    backbone_lr_ratio: float = 0.1
    backbone_freeze_steps: int = 894  # backbone lr 0 for the first 2 epochs (unverified)
    warmup_steps: int = 0
    weight_decay: float = 0.05
    recognizer_lr: float = 1e-3
    ratio_weight: float = 2.0
    lambda_rec: float = 1.0  # ours: how the PAB starts is not known
    lambda_action: float = 0.5
    lambda_privacy: float = 0.5
    privacy_loss: str = "neg_bce"  # neg_bce (paper, clipped) | uniform
    privacy_clip: float = 0.6931
    adversaries: list[str] = field(
        default_factory=lambda: ["vit"]
    )  # K privacy recognizers (Wu et al.), by family
    restart_every: int = 0  # re-initialise the adversaries every N adversarial steps (0 = never)
    tau: float = 1.0
    log_every: int = 50
    save_every: int = 1000
    keep_last: int = 2

    def __post_init__(self) -> None:
        positive_fields(
            "train", self, "batch_size", "lr", "recognizer_lr", "tau", "log_every", "save_every", "keep_last"
        )
        positive_fields(
            "train",
            self,
            "init_steps",
            "privacy_steps",
            "adversarial_steps",
            "min_lr",
            "backbone_freeze_steps",
            "warmup_steps",
            "weight_decay",
            "ratio_weight",
            "lambda_rec",
            "lambda_action",
            "lambda_privacy",
            "restart_every",
            allow_zero=True,
        )
        in_range("train.backbone_lr_ratio", self.backbone_lr_ratio, 0.0, 1.0)
        one_of("train.privacy_loss", self.privacy_loss, PRIVACY_LOSS_MODES)
        if not self.adversaries or any(f not in _FAMILIES for f in self.adversaries):
            raise ConfigError(f"train.adversaries must be a non-empty list of {', '.join(_FAMILIES)}")


@dataclass
class EvalConfig:
    """The protocol: a fresh action model and a fresh attacker ensemble trained on anonymized videos."""

    action: str = "vit"
    attackers: list[str] = field(default_factory=lambda: ["vit", "cnn3d", "mlp"])
    steps: int = 2000
    lr: float = 1e-3
    batch_size: int = 16
    keep_ratio: float = 0.0  # 0 = the trained alpha

    def __post_init__(self) -> None:
        if (
            self.action not in _FAMILIES
            or not self.attackers
            or any(f not in _FAMILIES for f in self.attackers)
        ):
            raise ConfigError(f"eval.action / eval.attackers must be families of {', '.join(_FAMILIES)}")
        positive_fields("eval", self, "steps", "lr", "batch_size")
        in_range("eval.keep_ratio", self.keep_ratio, 0.0, 1.0)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    action: RecognizerConfig = field(default_factory=RecognizerConfig)  # the in-training action recognizer
    privacy: RecognizerConfig = field(default_factory=RecognizerConfig)  # the vit adversary's sizes
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
