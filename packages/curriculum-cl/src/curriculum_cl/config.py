"""Configuration schema (dataclasses). Defaults are the paper's (SqueezeNet 1.1 learner, one pass per experience,
batch 64, Adam 1e-3, EWC lambda 0.4, LwF alpha schedule [0, 0.5, 1.333, 2.25, 3.2] and T = 1, 3 seeds); the YAML
files in ``configs/`` set the per-dataset inputs, ``digits`` the acceptance experiment and ``tiny`` the demo/tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from curriculum_cl.curricula import SETTINGS
from curriculum_cl.data.datasets import DATASETS
from curriculum_cl.engine import LearnerSettings
from visioncore.config import ConfigError, in_range, load_config, one_of, positive
from visioncore.devices import MIXED_PRECISION

# Datasets that come with the package (no files): a --root for them would be silently ignored, so it is refused.
BUNDLED = ("digits", "structured")


@dataclass
class StructuredConfig:
    """``--dataset structured``: two near pairs (0, 1), (2, 3) and a far class 4, Gaussian features (issue 13)."""

    dim: int = 64
    n_train: int = 100  # per class
    n_test: int = 50
    far: float = 6.0  # distance of the group centres from the origin (orthogonal directions)
    near: float = 1.5  # distance between the two classes of a pair
    noise: float = 1.0  # isotropic std of the samples
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("dim", "n_train", "n_test", "far", "near", "noise"):
            positive(f"data.structured.{name}", getattr(self, name))
        if self.dim < 6:
            raise ConfigError(f"data.structured.dim must be >= 6 (6 orthogonal directions), got {self.dim}")


@dataclass
class DataConfig:
    dataset: str = "mnist"  # digits | mnist | fashion-mnist | cifar10 | nod | folder
    root: str = ""
    classes: str = "0-4"
    setting: str = "single"  # single (one class per experience) | pairs | nod (5 classes in 4 experiences)
    image_size: int = 224  # 0 keeps the native size
    augment_views: int = 0  # > 0: cache K augmented views of each training image (CIFAR/NOD)
    max_per_class: int = 0  # > 0: keep only the first N training images per class (quick runs)
    structured: StructuredConfig = field(default_factory=lambda: StructuredConfig())

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(
                f"data.dataset: unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}"
            )
        if self.dataset in BUNDLED and self.root:
            raise ConfigError(
                f"data.root: {self.dataset} is bundled and reads no files, but --root {self.root!r} was given"
            )
        if self.setting not in SETTINGS:
            raise ConfigError(
                f"data.setting: unknown setting {self.setting!r}; choose one of {', '.join(SETTINGS)}"
            )
        for name in ("image_size", "augment_views", "max_per_class"):
            positive(f"data.{name}", getattr(self, name), allow_zero=True)


@dataclass
class ExtractorConfig:
    name: str = "squeezenet1_1"  # squeezenet1_1 | resnet18 | smallcnn
    weights: str = ""  # local file (smallcnn: a save_pretrained folder); empty = random init
    in_channels: int = 3
    batch_size: int = 64

    def __post_init__(self) -> None:
        positive("extractor.batch_size", self.batch_size)
        if self.in_channels not in (1, 3):
            raise ConfigError(f"extractor.in_channels must be 1 or 3, got {self.in_channels}")


@dataclass
class SweepConfig:
    algorithms: list[str] = field(default_factory=lambda: ["naive", "ewc", "lwf"])
    seeds: int = 3
    base_seed: int = 0
    curricula: str = "all"  # "all" or ids such as "0-9,47"
    chunk_size: int = 120  # curricula per resumable unit of work

    def __post_init__(self) -> None:
        positive("sweep.seeds", self.seeds)
        positive("sweep.chunk_size", self.chunk_size)
        positive("sweep.base_seed", self.base_seed, allow_zero=True)
        if not self.algorithms:
            raise ConfigError("sweep.algorithms: name at least one algorithm")


@dataclass
class DesignerConfig:
    samples_per_class: int = 500  # 250 for NOD in the paper
    metric: str = "cosine"  # cosine | euclidean
    seed: int = 0

    def __post_init__(self) -> None:
        positive("designer.samples_per_class", self.samples_per_class)
        one_of("designer.metric", self.metric, ("cosine", "euclidean"))


@dataclass
class AnalysisConfig:
    n_bins: int = 5
    official_bin_order: bool = True  # keep BinnedStringComparator's bin-order quirk (see analysis.bin_slices)
    top_k: list[int] = field(default_factory=lambda: [10, 20, 50])
    percentile: float = 75.0
    recall_k: int = 30
    random_strings: int = 100
    human_csv: str = ""  # curriculum_id,phase,accuracy

    def __post_init__(self) -> None:
        for name in ("n_bins", "recall_k", "random_strings"):
            positive(f"analysis.{name}", getattr(self, name))
        for k in self.top_k:
            positive("analysis.top_k", k)
        in_range("analysis.percentile", self.percentile, 0.0, 100.0)


@dataclass
class TeacherConfig:
    """Pre-training of the small CNN extractor on disjoint classes (the ImageNet-100 analogue)."""

    classes: str = "5-9"
    epochs: int = 40
    lr: float = 1e-3
    batch_size: int = 32
    target_accuracy: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "lr", "batch_size"):
            positive(f"teacher.{name}", getattr(self, name))
        in_range("teacher.target_accuracy", self.target_accuracy, 0.0, 1.0)


@dataclass
class TrainConfig:
    """Full-backbone mode: one curriculum, features not cached, extractor trainable, accelerate loop."""

    curriculum: int = 0
    algorithm: str = "naive"
    seed: int = 0
    mixed_precision: str = "no"
    save_every: int = 50  # 0: only at the end
    keep_last: int = 3
    log_every: int = 10  # loss logging and the non-finite check (a host sync) every N steps

    def __post_init__(self) -> None:
        positive("train.curriculum", self.curriculum, allow_zero=True)
        positive("train.save_every", self.save_every, allow_zero=True)
        positive("train.keep_last", self.keep_last)
        positive("train.log_every", self.log_every)
        one_of("train.mixed_precision", self.mixed_precision, MIXED_PRECISION)


@dataclass
class ReproConfig:
    # EWC penalty curve (issue 13): first-experience beta at these lambdas, for both Fisher modes.
    ewc_curve_lambdas: list[float] = field(default_factory=lambda: [1.0, 1e2, 1e4, 1e6])
    lwf_stress_alpha: float = 10.0
    null_shuffles: int = 200
    structured_config: str = "structured"  # the config of the structured sweep (name or YAML path)

    def __post_init__(self) -> None:
        if not self.ewc_curve_lambdas:
            raise ConfigError("repro.ewc_curve_lambdas: name at least one lambda")
        for value in self.ewc_curve_lambdas:
            positive("repro.ewc_curve_lambdas", value, allow_zero=True)
        positive("repro.lwf_stress_alpha", self.lwf_stress_alpha, allow_zero=True)
        positive("repro.null_shuffles", self.null_shuffles)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    extractor: ExtractorConfig = field(default_factory=ExtractorConfig)
    learner: LearnerSettings = field(default_factory=LearnerSettings)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    designer: DesignerConfig = field(default_factory=DesignerConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    repro: ReproConfig = field(default_factory=ReproConfig)


def load(name_or_path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A shipped config by name (``digits``, ``tiny``, ``mnist``, ...) or a YAML path, then ``key=value`` overrides."""
    return load_config(Config, name_or_path, list(overrides), package="curriculum_cl")
