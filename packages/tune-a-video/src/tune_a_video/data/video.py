"""The one training video: frames start, start + rate, ... (the first n), resized straight to W x H (no crop)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from visioncore.video import read_video, video_info


class VideoTooShortError(ValueError):
    """The video has fewer frames than ``n_sample_frames`` at ``sample_frame_rate`` from ``sample_start_idx``."""


def load_training_video(
    path: str | Path, n_sample_frames: int, width: int, height: int, sample_start_idx: int = 0,
    sample_frame_rate: int = 1,
) -> torch.Tensor:  # fmt: skip
    """Float video (f, c, h, w) in [-1, 1] (x / 127.5 - 1), as upstream's dataset."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training video not found: {path}")
    if height % 8 or width % 8:
        raise ValueError(f"train_data.height/width must be divisible by 8, got {height}x{width}")
    total = video_info(path).frames
    indices = [sample_start_idx + i * sample_frame_rate for i in range(n_sample_frames)]
    if indices[-1] >= total:
        raise VideoTooShortError(
            f"{path}: {total} frames, but {n_sample_frames} frames every {sample_frame_rate} from "
            f"{sample_start_idx} need {indices[-1] + 1}"
        )
    frames = read_video(path, indices=indices, size=(height, width))
    return frames.float() / 127.5 - 1.0


class TuneAVideoDataset(Dataset):
    """A one-item dataset: the video (f, c, h, w) and its tokenised prompt (77,)."""

    def __init__(self, video: torch.Tensor, prompt_ids: torch.Tensor) -> None:
        self.video, self.prompt_ids = video, prompt_ids

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.video, "prompt_ids": self.prompt_ids}
