"""Config schemas (dataclasses) for the tokenizer, the transformers and the acceptance experiment.

Values the paper does not state carry an ``# assumed`` comment in the YAML files under ``configs/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from visioncore.config import ConfigError, in_range, load_config, one_of, positive_fields
from visioncore.devices import MIXED_PRECISION


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass
class TokenizerModelConfig:
    resolution: int = 256
    ch: int = 128
    ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    num_res_blocks: int = 2
    z_channels: int = 256
    num_codes: int = 1024
    code_dim: int = 256
    beta: float = 0.25
    norm_groups: int = 32
    hit_window: int = 8  # assumed: window / dilation grid of the phase-2 attention blocks

    def __post_init__(self) -> None:
        positive_fields(
            "model", self, "resolution", "ch", "z_channels", "code_dim", "norm_groups", "hit_window"
        )
        _check(self.num_codes >= 2, f"model.num_codes must be >= 2, got {self.num_codes}")
        _check(self.num_res_blocks >= 0, f"model.num_res_blocks must be >= 0, got {self.num_res_blocks}")
        _check(
            bool(self.ch_mult) and min(self.ch_mult) > 0,
            f"model.ch_mult must be positive, got {self.ch_mult}",
        )
        _check(self.beta >= 0, f"model.beta must be >= 0, got {self.beta}")
        factor = 2 ** (len(self.ch_mult) - 1)
        _check(
            self.resolution % factor == 0, f"model.resolution {self.resolution} not divisible by f={factor}"
        )

    def kwargs(self) -> dict:
        return dict(vars(self)) | {"ch_mult": list(self.ch_mult)}


@dataclass
class PerceptualConfig:
    kind: str = "vgg16"  # vgg16 (a local torchvision file) | small (a 4-stage CNN trained first, then frozen)
    weights: str | None = (
        None  # vgg16: path to the torchvision state dict; small: a saved SmallPerceptualNet folder
    )
    low_layers: list[str] = field(
        default_factory=lambda: ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    )
    sem_layers: list[str] = field(default_factory=lambda: ["relu5_3", "logits"])
    calibrate: bool = False  # scale every tap to unit RMS on the first training batches

    def __post_init__(self) -> None:
        _check(self.kind in ("vgg16", "small"), f"perceptual.kind must be vgg16 or small, got {self.kind!r}")


@dataclass
class LossConfig:
    alpha: float = 1.0  # semantic ratio: 1 in phase 1, 0 in phase 2
    gamma: float = 0.01  # codebook entropy weight
    l1_weight: float = 1.0
    perceptual_weight: float = 1.0

    def __post_init__(self) -> None:
        in_range("loss.alpha", self.alpha, 0.0, 1.0)
        _check(
            self.gamma >= 0 and self.l1_weight >= 0 and self.perceptual_weight >= 0,
            "loss weights must be >= 0",
        )


@dataclass
class GanConfig:
    enabled: bool = True
    start: int = 0  # assumed: first step the discriminator trains
    warmup: int = 0  # steps of discriminator-only training before its loss reaches the decoder
    weight: float = 0.8  # taming's disc_weight
    max_adaptive_weight: float = 1e4
    ndf: int = 64
    n_layers: int = 3
    lr: float = 1e-4  # assumed

    def __post_init__(self) -> None:
        _check(self.start >= 0 and self.warmup >= 0, "gan.start and gan.warmup must be >= 0")
        positive_fields("gan", self, "ndf", "n_layers", "lr")
        _check(self.weight >= 0 and self.max_adaptive_weight >= 0, "gan weights must be >= 0")


@dataclass
class DataConfig:
    root: str | None = None
    split: str = "train"
    val_split: str = "val"
    labels: str = "auto"  # auto | folders | none (FFHQ, LSUN)
    batch_size: int = 8
    num_workers: int = 0

    def __post_init__(self) -> None:
        _check(
            self.labels in ("auto", "folders", "none"),
            f"data.labels must be auto, folders or none, got {self.labels!r}",
        )
        positive_fields("data", self, "batch_size")
        _check(self.num_workers >= 0, "data.num_workers must be >= 0")


@dataclass
class OptimConfig:
    steps: int = 500_000
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])  # assumed (taming)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    min_lr_ratio: float = 1.0  # 1.0 = constant lr after warm-up
    grad_accum: int = 1
    log_every: int = 50
    save_every: int = 5000
    keep_last: int = 3
    seed: int = 0
    mixed_precision: str = "no"

    def __post_init__(self) -> None:
        positive_fields("train", self, "steps", "lr", "grad_accum", "log_every", "save_every", "keep_last")
        _check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"train.betas must be 2 values in [0, 1), got {self.betas}",
        )
        _check(
            self.warmup_steps >= 0 and self.weight_decay >= 0,
            "train.warmup_steps and weight_decay must be >= 0",
        )
        in_range("train.min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        one_of("train.mixed_precision", self.mixed_precision, MIXED_PRECISION)


@dataclass
class TokenizerConfig:
    model: TokenizerModelConfig = field(default_factory=TokenizerModelConfig)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    init_codes_from_data: bool = False  # codebook = encoder outputs of the first batch (phase 1)


@dataclass
class TransformerModelConfig:
    dim: int = 768  # assumed (MaskGIT-base; paper gives only 171M in total)
    depth: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    num_classes: int = 1000

    def __post_init__(self) -> None:
        positive_fields("model", self, "dim", "depth", "heads", "mlp_ratio")
        _check(self.dim % self.heads == 0, f"transformer.dim {self.dim} not divisible by heads {self.heads}")
        in_range("model.dropout", self.dropout, 0.0, 1.0)
        _check(self.num_classes >= 1, f"transformer.num_classes must be >= 1, got {self.num_classes}")


@dataclass
class SamplerConfig:
    steps: int = 12  # MaskGIT rounds (the AR model always takes one step per token)
    temperature: float = 1.0
    confidence_noise: float = 4.5  # assumed (MaskGIT-pytorch's randomised confidence)
    top_k: int = 0  # AR only; 0 = off

    def __post_init__(self) -> None:
        positive_fields("sampler", self, "steps", "temperature")
        _check(
            self.confidence_noise >= 0 and self.top_k >= 0, "sampler.confidence_noise and top_k must be >= 0"
        )


@dataclass
class TransformerConfig:
    kind: str = "maskgit"
    model: TransformerModelConfig = field(default_factory=TransformerModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train: OptimConfig = field(default_factory=lambda: OptimConfig(betas=[0.9, 0.96], weight_decay=0.045))
    batch_size: int = 64  # assumed
    class_conditional: bool = True

    def __post_init__(self) -> None:
        _check(self.kind in ("maskgit", "ar"), f"kind must be maskgit or ar, got {self.kind!r}")
        positive_fields("", self, "batch_size")


@dataclass
class ReproConfig:
    """The acceptance experiment (issue 18): one setting for every seed and tokenizer."""

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    workers: int = 3
    data_seed: int = 0
    canvas: int = 16
    digit_size: int = 12
    num_train: int = 1500
    semantic_widths: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    semantic_steps: int = 300
    eval_steps: int = 600
    classifier_lr: float = 2e-3
    classifier_weight_decay: float = 1e-4
    min_classifier_acc: float = 0.9  # the run stops if a fixed classifier is below this on val
    tokenizer: TokenizerModelConfig = field(default_factory=TokenizerModelConfig)
    tokenizer_steps: int = 2000
    tokenizer_lr: float = 1e-3
    batch_size: int = 32
    gamma: float = 0.01
    phase2_steps: int = 600
    phase2_lr: float = 5e-4
    maskgit: TransformerModelConfig = field(default_factory=TransformerModelConfig)
    maskgit_steps: int = 2000
    maskgit_lr: float = 1e-3
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    samples_per_class: int = 30

    def __post_init__(self) -> None:
        _check(len(self.seeds) >= 1, "seeds must not be empty")
        positive_fields(
            "",
            self,
            "workers",
            "tokenizer_steps",
            "maskgit_steps",
            "batch_size",
            "samples_per_class",
            "semantic_steps",
            "eval_steps",
        )
        _check(self.phase2_steps >= 0 and self.gamma >= 0, "phase2_steps and gamma must be >= 0")
        _check(self.classifier_weight_decay >= 0, "classifier_weight_decay must be >= 0")
        in_range("min_classifier_acc", self.min_classifier_acc, 0.0, 1.0)
        _check(8 <= self.digit_size <= self.canvas, "need 8 <= digit_size <= canvas")
        _check(0 < self.num_train < 1797, "num_train must lie in (0, 1797)")
        _check(self.tokenizer.resolution == self.canvas, "tokenizer.resolution must equal canvas")


def load(schema, name: str | None, overrides=()):  # noqa: ANN001, ANN201
    """A config of ``schema`` from a shipped name or YAML path plus ``key=value`` overrides."""
    return load_config(schema, name, list(overrides), package="seq_gan")
