"""Config schemas. Field names follow the official Tune-A-Video YAML files (``configs/man-skiing.yaml``), so those
files load unchanged; defaults are the paper's / official code's."""

from __future__ import annotations

from dataclasses import dataclass, field

from visioncore.config import in_range, load_config, one_of, positive
from visioncore.devices import MIXED_PRECISION

PACKAGE = "tune_a_video"


@dataclass
class TrainData:
    video_path: str = "data/man-skiing.mp4"
    prompt: str = "a man is skiing"
    n_sample_frames: int = 24
    width: int = 512
    height: int = 512
    sample_start_idx: int = 0
    sample_frame_rate: int = 2

    def __post_init__(self) -> None:
        for name in ("n_sample_frames", "width", "height", "sample_frame_rate"):
            positive(f"train_data.{name}", getattr(self, name))
        positive("train_data.sample_start_idx", self.sample_start_idx, allow_zero=True)


@dataclass
class ValidationData:
    prompts: list[str] = field(
        default_factory=lambda: [
            "mickey mouse is skiing on the snow",
            "spider man is skiing on the beach, cartoon style",
            "wonder woman, wearing a cowboy hat, is skiing",
            "a man, wearing pink clothes, is skiing at sunset",
        ]
    )
    video_length: int = 24
    width: int = 512
    height: int = 512
    num_inference_steps: int = 50
    guidance_scale: float = 12.5
    use_inv_latent: bool = True
    num_inv_steps: int = 50

    def __post_init__(self) -> None:
        for name in ("video_length", "width", "height", "num_inference_steps", "num_inv_steps"):
            positive(f"validation_data.{name}", getattr(self, name))
        positive("validation_data.guidance_scale", self.guidance_scale, allow_zero=True)


@dataclass
class TrainConfig:
    """One-shot tuning run (paper Sec. 4.2): one video, one prompt, edited validation prompts."""

    pretrained_model_path: str = "./checkpoints/stable-diffusion-v1-4"
    output_dir: str = "./outputs/man-skiing"
    train_data: TrainData = field(default_factory=TrainData)
    validation_data: ValidationData = field(default_factory=ValidationData)
    validation_steps: int = 100
    trainable_modules: list[str] = field(default_factory=lambda: ["attn1.to_q", "attn2.to_q", "attn_temp"])
    train_batch_size: int = 1
    max_train_steps: int = 500
    # Loss logging, the non-finite check and its host sync happen every `logging_steps` optimizer steps (and at the end).
    logging_steps: int = 10
    learning_rate: float = 3e-5
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = True
    checkpointing_steps: int = 1000
    checkpoints_total_limit: int = 3
    mixed_precision: str = "fp16"
    use_8bit_adam: bool = False
    # Our UNet always uses PyTorch SDPA (memory-efficient kernels on GPU); xformers is not needed. The key is accepted
    # so official YAML files load; True only checks that xformers is importable, as upstream does.
    enable_xformers_memory_efficient_attention: bool = False
    seed: int = 33
    trackers: list[str] = field(default_factory=lambda: ["jsonl", "tensorboard"])

    def __post_init__(self) -> None:
        for name in (
            "validation_steps", "train_batch_size", "max_train_steps", "logging_steps", "learning_rate",
            "adam_epsilon", "max_grad_norm", "gradient_accumulation_steps", "checkpointing_steps",
            "checkpoints_total_limit",
        ):  # fmt: skip
            positive(name, getattr(self, name))
        positive("lr_warmup_steps", self.lr_warmup_steps, allow_zero=True)
        positive("adam_weight_decay", self.adam_weight_decay, allow_zero=True)
        in_range("adam_beta1", self.adam_beta1, 0.0, 1.0)
        in_range("adam_beta2", self.adam_beta2, 0.0, 1.0)
        one_of("mixed_precision", self.mixed_precision, MIXED_PRECISION)


def load_train_config(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """A shipped config by name (``man-skiing``, ``tiny``) or a YAML path, then ``key.sub=value`` overrides."""
    return load_config(TrainConfig, name_or_path, list(overrides), package=PACKAGE)
