"""Configuration schema (dataclasses). Defaults are the paper's (SqueezeNet 1.1 learner, one pass per experience,
batch 64, Adam 1e-3, EWC lambda 0.4, LwF alpha schedule [0, 0.5, 1.333, 2.25, 3.2] and T = 1, 3 seeds); the YAML
files in ``configs/`` set the per-dataset inputs, ``digits`` the acceptance experiment and ``tiny`` the demo/tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from curriculum_cl.engine import LearnerSettings


@dataclass
class DataConfig:
    dataset: str = "mnist"  # digits | mnist | fashion-mnist | cifar10 | nod | folder
    root: str = ""
    classes: str = "0-4"
    setting: str = "single"  # single (one class per experience) | pairs | nod (5 classes in 4 experiences)
    image_size: int = 224  # 0 keeps the native size
    augment_views: int = 0  # > 0: cache K augmented views of each training image (CIFAR/NOD)
    max_per_class: int = 0  # > 0: keep only the first N training images per class (quick runs)


@dataclass
class ExtractorConfig:
    name: str = "squeezenet1_1"  # squeezenet1_1 | resnet18 | smallcnn
    weights: str = ""  # local file (smallcnn: a save_pretrained folder); empty = random init
    in_channels: int = 3
    batch_size: int = 64


@dataclass
class SweepConfig:
    algorithms: list[str] = field(default_factory=lambda: ["naive", "ewc", "lwf"])
    seeds: int = 3
    base_seed: int = 0
    curricula: str = "all"  # "all" or ids such as "0-9,47"
    chunk_size: int = 120  # curricula per resumable unit of work


@dataclass
class DesignerConfig:
    samples_per_class: int = 500  # 250 for NOD in the paper
    metric: str = "cosine"  # cosine | euclidean
    seed: int = 0


@dataclass
class AnalysisConfig:
    n_bins: int = 5
    official_bin_order: bool = True  # keep BinnedStringComparator's bin-order quirk (see analysis.bin_slices)
    top_k: list[int] = field(default_factory=lambda: [10, 20, 50])
    percentile: float = 75.0
    recall_k: int = 30
    random_strings: int = 100
    human_csv: str = ""  # curriculum_id,phase,accuracy


@dataclass
class TeacherConfig:
    """Pre-training of the small CNN extractor on disjoint classes (the ImageNet-100 analogue)."""

    classes: str = "5-9"
    epochs: int = 40
    lr: float = 1e-3
    batch_size: int = 32
    target_accuracy: float = 0.95
    seed: int = 0


@dataclass
class TrainConfig:
    """Full-backbone mode: one curriculum, features not cached, extractor trainable, accelerate loop."""

    curriculum: int = 0
    algorithm: str = "naive"
    seed: int = 0
    mixed_precision: str = "no"
    save_every: int = 50
    keep_last: int = 3


@dataclass
class ReproConfig:
    ewc_stress_lambda: float = 1000.0
    lwf_stress_alpha: float = 10.0
    null_shuffles: int = 200


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
    from visioncore.config import load_config

    return load_config(Config, name_or_path, list(overrides), package="curriculum_cl")
