"""Procedural data: a source video in the real on-disk layout (an mp4 + an official-style config) and coloured-shape
images for pretraining the tiny text-to-image model of the CPU experiments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from visioncore.config import save_config
from visioncore.synthetic import COLORS, ObjectSpec, describe, render_objects, render_video
from visioncore.video import write_video


def source_video(
    num_frames: int, size: int, color: str = "red", shape: str = "square", speed: float | None = None
) -> tuple[np.ndarray, str]:
    """A ``color`` ``shape`` moving right across a black frame: uint8 (f, h, w, 3) and its caption."""
    obj_size = max(3.0, 0.3 * size)
    speed = speed if speed is not None else (size - 1.6 * obj_size) / max(num_frames - 1, 1)
    obj = ObjectSpec(shape, color, center=(0.8 * obj_size, size / 2), size=obj_size, velocity=(speed, 0.0))
    scene = render_video(num_frames, size, size, [obj], background=(0, 0, 0), border="clamp")
    return scene.frames, describe(obj)


def make_synthetic(out: str | Path, num_frames: int = 24, size: int = 64) -> Path:
    """Write ``out/red-square.mp4`` and ``out/config.yaml`` (official Tune-A-Video keys) pointing to it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames, caption = source_video(num_frames, size)
    write_video(out / "red-square.mp4", frames, fps=8)
    config = {
        "pretrained_model_path": "./runs/tiny-sd",
        "output_dir": str(out / "tuned"),
        "train_data": {
            "video_path": str(out / "red-square.mp4"), "prompt": caption, "n_sample_frames": num_frames // 2,
            "width": size, "height": size, "sample_start_idx": 0, "sample_frame_rate": 2,
        },
        "validation_data": {
            "prompts": [caption.replace("red", "blue"), caption.replace("square", "circle")],
            "video_length": num_frames // 2, "width": size, "height": size,
        },
    }  # fmt: skip
    return save_config(config, out / "config.yaml")


class ShapeImages:
    """Coloured shapes at random positions on black, with captions "a red square" (optionally "... moving right").

    Colour jitter (each channel +-``jitter``) keeps the tiny model from memorising exact RGB values. Randomness
    comes from the generator passed in, so a seed fixes the stream.
    """

    def __init__(
        self, size: int, colors: list[str], shapes: list[str], jitter: int = 25, motion_words: bool = True,
        caption_dropout: float = 0.1,
    ) -> None:  # fmt: skip
        self.size, self.colors, self.shapes, self.jitter, self.motion_words = (
            size,
            colors,
            shapes,
            jitter,
            motion_words,
        )
        self.caption_dropout = caption_dropout  # empty captions teach the unconditional model CFG needs

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, list[str]]:
        """Images (batch, 3, h, w) in [-1, 1] and their captions."""
        images, captions = [], []
        directions = ["", " moving right", " moving left", " moving up", " moving down"]
        for _ in range(batch):
            color, shape = (
                self.colors[rng.integers(len(self.colors))],
                self.shapes[rng.integers(len(self.shapes))],
            )
            obj_size = 0.3 * self.size * rng.uniform(0.85, 1.15)
            half = obj_size / 2
            center = (rng.uniform(half, self.size - half), rng.uniform(half, self.size - half))
            rgb = np.clip(np.array(COLORS[color]) + rng.integers(-self.jitter, self.jitter + 1, 3), 0, 255)
            obj = ObjectSpec(shape, tuple(int(c) for c in rgb), center=center, size=obj_size)
            images.append(render_objects(self.size, self.size, [obj]).image)
            suffix = directions[rng.integers(len(directions))] if self.motion_words else ""
            captions.append("" if rng.random() < self.caption_dropout else f"a {color} {shape}{suffix}")
        array = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
        return array / 127.5 - 1.0, captions
