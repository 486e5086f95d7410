"""Config schema (dataclasses) for every stage; YAML files in `configs/` fill it (visioncore.config.load_config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from visioncore.config import ConfigError, in_range, load_config, one_of, positive
from visioncore.devices import MIXED_PRECISION

FFPP_FAKES = ["Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures"]
BRANCHES = ("both", "encoder", "decoder")


def _check_schedule(cfg, stage: str) -> None:
    """Counts, sizes and rates of a training stage (pretrain or train) that must be positive."""
    for name in ("steps", "batch_size", "keep_last", "log_every"):
        positive(f"{stage}.{name}", getattr(cfg, name))
    positive(f"{stage}.lr", cfg.lr)
    positive(f"{stage}.weight_decay", cfg.weight_decay, allow_zero=True)
    positive(f"{stage}.warmup_steps", cfg.warmup_steps, allow_zero=True)
    positive(f"{stage}.save_every", cfg.save_every, allow_zero=True)
    one_of(f"{stage}.mixed_precision", cfg.mixed_precision, MIXED_PRECISION)


@dataclass
class ModelConfig:
    """FacePartMAE shape; paper default MAE ViT-B/16 at 224 with a 512-wide, 8-deep decoder (unverified vs paper)."""

    img_size: int = 224
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    norm_pix_loss: bool = True

    def __post_init__(self) -> None:
        for name in ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "decoder_embed_dim"):
            positive(f"model.{name}", getattr(self, name))
        positive("model.decoder_depth", self.decoder_depth, allow_zero=True)
        positive("model.decoder_num_heads", self.decoder_num_heads)
        positive("model.mlp_ratio", self.mlp_ratio)
        if self.img_size % self.patch_size:
            raise ConfigError(
                f"model.patch_size {self.patch_size} must divide model.img_size {self.img_size}"
            )


@dataclass
class MaskingConfig:
    strategy: str = "parts"  # parts (the paper) | random (MAE ablation)
    part_scheme: str = "parts"  # parts: eyes+brows / nose / mouth ; thirds: horizontal thirds (v2 reading)
    mask_ratio: float = 0.75  # every sample is topped up to at least this fraction
    parts_per_sample: list[int] = field(default_factory=lambda: [1, 2])
    part_margin: float = 8.0  # dilation of the part boxes in pixels (at img_size)
    part_loss_weight: float = 1.0  # weight of the part-only loss term (0 = off)
    eval_mask_ratio: float = 0.0  # top-up ratio when masking one part at test time / in network 2

    def __post_init__(self) -> None:
        one_of("masking.strategy", self.strategy, ("parts", "random"))
        one_of("masking.part_scheme", self.part_scheme, ("parts", "thirds"))
        in_range("masking.mask_ratio", self.mask_ratio, 0.0, 1.0)
        in_range("masking.eval_mask_ratio", self.eval_mask_ratio, 0.0, 1.0)
        if not self.parts_per_sample or any(not 1 <= k <= 3 for k in self.parts_per_sample):
            raise ConfigError(
                f"masking.parts_per_sample must list counts in 1..3, got {self.parts_per_sample}"
            )
        positive("masking.part_margin", self.part_margin, allow_zero=True)
        positive("masking.part_loss_weight", self.part_loss_weight, allow_zero=True)


@dataclass
class DataConfig:
    root: str = "data/Forensics"
    train_methods: list[str] = field(default_factory=lambda: list(FFPP_FAKES))
    test_methods: list[str] = field(default_factory=lambda: list(FFPP_FAKES))
    clip_len: int = 25
    max_frames: int = 110  # evaluation: non-overlapping clips of the first 110 frames
    train_max_frames: int = 270  # RealForensics' cap per training video
    preload: bool = False  # decode every video once into memory (small datasets)
    num_workers: int = 0

    def __post_init__(self) -> None:
        for name in ("clip_len", "max_frames", "train_max_frames"):
            positive(f"data.{name}", getattr(self, name))
        positive("data.num_workers", self.num_workers, allow_zero=True)


@dataclass
class PretrainConfig:
    """Stage A (facebookresearch/mae defaults): AdamW (0.9, 0.95), wd 0.05, lr = 1.5e-4 x batch / 256, cosine."""

    steps: int = 100000
    batch_size: int = 64
    lr: float = 3.75e-5
    weight_decay: float = 0.05
    warmup_steps: int = 5000
    save_every: int = 5000
    keep_last: int = 3
    log_every: int = 50
    mixed_precision: str = "no"

    def __post_init__(self) -> None:
        _check_schedule(self, "pretrain")


@dataclass
class DetectorConfig:
    pool: str = "cls"  # per-frame feature: cls | mean
    temporal: str = "mean"  # mean | transformer
    temporal_depth: int = 1
    drop_path: float = 0.1
    head_hidden: int = 64
    branches: str = "both"  # both (the paper) | encoder | decoder (ablations)
    freeze_net2: bool = False  # then network 2's discrepancies are computed once and cached
    margin: float = 1.0  # discrepancy margin m (normalised-pixel MSE; predicting the patch mean scores ~1)
    disc_weight: float = 1.0  # lambda in L = BCE + lambda L_disc
    # which discrepancy the margin loss acts on: part (per part: a fake's most discrepant part is pushed beyond the
    # margin, every real part pulled down) | mean (the average over the three parts)
    margin_loss: str = "part"

    def __post_init__(self) -> None:
        choices = {"pool": ("cls", "mean"), "temporal": ("mean", "transformer"), "branches": BRANCHES}
        choices["margin_loss"] = ("part", "mean")
        for name, allowed in choices.items():
            one_of(f"detector.{name}", getattr(self, name), allowed)
        positive("detector.temporal_depth", self.temporal_depth)
        in_range("detector.drop_path", self.drop_path, 0.0, 1.0)
        positive("detector.head_hidden", self.head_hidden, allow_zero=True)
        positive("detector.margin", self.margin)
        positive("detector.disc_weight", self.disc_weight, allow_zero=True)


@dataclass
class TrainConfig:
    """Stage B: AdamW, lr 1e-4..5e-4, layer decay 0.75, drop-path 0.1 (peer defaults, unverified vs paper)."""

    steps: int = 20000
    batch_size: int = 8
    lr: float = 2.5e-4
    weight_decay: float = 0.05
    layer_decay: float = 0.75
    warmup_steps: int = 1000
    save_every: int = 2000
    keep_last: int = 3
    log_every: int = 50
    balance: bool = True  # oversample reals to the fakes' count (FF++ has 4 fakes per real)
    mixed_precision: str = "no"

    def __post_init__(self) -> None:
        _check_schedule(self, "train")
        in_range("train.layer_decay", self.layer_decay, 0.0, 1.0)


@dataclass
class EvalConfig:
    batch_size: int = 8
    mask_seed: int = 0  # the test masks of network 2 / label-free scoring are fixed by this seed

    def __post_init__(self) -> None:
        positive("eval.batch_size", self.batch_size)


@dataclass
class ReproConfig:
    """The acceptance experiment's synthetic data (pairs of identities per split) and seeds."""

    train_pairs: int = 300
    val_pairs: int = 50  # their real videos only: the separate reals that z-score the label-free scores
    test_pairs: int = 150  # 300 test videos per class
    num_frames: int = 6
    data_seed: int = 1234
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    # Pretrain the three MAEs and score them; skip the detectors (a time-boxed run).
    label_free_only: bool = False
    # Processes running (seed, task) pairs side by side; the threads are split between them.
    workers: int = 1

    def __post_init__(self) -> None:
        for name in ("train_pairs", "val_pairs", "test_pairs", "num_frames", "workers"):
            positive(f"repro.{name}", getattr(self, name))
        if not self.seeds:
            raise ConfigError("repro.seeds must name at least one seed")


@dataclass
class Config:
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    repro: ReproConfig = field(default_factory=ReproConfig)


def get_config(name_or_path: str = "paper", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A shipped config by name (or a YAML path) with dotted overrides; ConfigError on unknown keys or bad values."""
    return load_config(Config, name_or_path, list(overrides), package="deepfake_mae")


def mae_kwargs(model: ModelConfig) -> dict:
    return {
        "img_size": model.img_size,
        "patch_size": model.patch_size,
        "embed_dim": model.embed_dim,
        "depth": model.depth,
        "num_heads": model.num_heads,
        "decoder_embed_dim": model.decoder_embed_dim,
        "decoder_depth": model.decoder_depth,
        "decoder_num_heads": model.decoder_num_heads,
        "mlp_ratio": model.mlp_ratio,
        "norm_pix_loss": model.norm_pix_loss,
    }


def detector_kwargs(cfg: Config) -> dict:
    det = cfg.detector
    return {
        "mae": mae_kwargs(cfg.model),
        "drop_path": det.drop_path,
        "pool": det.pool,
        "temporal": det.temporal,
        "temporal_depth": det.temporal_depth,
        "max_frames": max(cfg.data.clip_len, 1),
        "num_parts": 3,
        "mask_ratio": cfg.masking.eval_mask_ratio,
        "part_margin": cfg.masking.part_margin,
        "head_hidden": det.head_hidden,
        "branches": det.branches,
        "freeze_net2": det.freeze_net2,
    }
