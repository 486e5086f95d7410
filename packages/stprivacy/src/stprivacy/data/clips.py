"""Clips for the anonymizer and the recognizers: 16 frames every ``stride`` (2 on HMDB51, 4 on UCF101) at 112 px.

One normalisation for everything: the anonymizer's input and output and every recognizer see ``(x - mean) / std``, so
0 is the mean colour, which is what a dropped tubelet holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from visioncore.video import read_video, video_info

from .labels import PrivacyLabels
from .splits import VideoItem

__all__ = ["ClipDataset", "Normalizer", "TensorClips", "load_all"]


class Normalizer:
    """uint8 [.., C, T, H, W] <-> normalised float; ``mean``/``std`` per channel in [0, 1] units."""

    def __init__(self, mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.5, 0.5, 0.5)):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1)

    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        return (video.float() / 255.0 - self.mean.to(video.device)) / self.std.to(video.device)

    def to_uint8(self, video: torch.Tensor) -> torch.Tensor:
        x = video.detach().float() * self.std.to(video.device) + self.mean.to(video.device)
        return (x.clamp(0, 1) * 255).round().to(torch.uint8)


class ClipDataset(Dataset):
    """Decodes one clip per video on demand: (uint8 video [C, T, H, W], action label, privacy labels [A] or [])."""

    def __init__(
        self,
        items: Sequence[VideoItem],
        privacy: PrivacyLabels | None,
        *,
        num_frames: int = 16,
        stride: int = 2,
        size: int = 112,
        train: bool = False,
        seed: int = 0,
    ):
        if privacy is not None:
            missing = [it for it in items if it not in privacy]
            if missing:
                raise ValueError(
                    f"{privacy.source}: {len(missing)} video(s) of the split have no privacy label, "
                    f"e.g. {missing[0].class_name}/{missing[0].stem}"
                )
        self.items, self.privacy = list(items), privacy
        self.num_frames, self.stride, self.size = num_frames, stride, size
        self.train, self.seed = train, seed

    def __len__(self) -> int:
        return len(self.items)

    def _indices(self, index: int, total: int) -> list[int]:
        span = (self.num_frames - 1) * self.stride + 1
        free = max(0, total - span)
        # train: one random start per (seed, video), drawn from its own generator so resumed runs see the same clip
        start = (
            int(
                torch.randint(
                    free + 1, (1,), generator=torch.Generator().manual_seed(self.seed * 1_000_003 + index)
                )
            )
            if self.train
            else free // 2
        )
        return [min(start + i * self.stride, total - 1) for i in range(self.num_frames)]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        item = self.items[index]
        total = video_info(item.path).frames
        frames = read_video(
            item.path, indices=self._indices(index, max(1, total)), size=(self.size, self.size)
        )
        privacy = (
            torch.from_numpy(self.privacy[item])
            if self.privacy is not None
            else torch.zeros(0, dtype=torch.int64)
        )
        return frames.permute(1, 0, 2, 3).contiguous(), item.label, privacy


class TensorClips(Dataset):
    """Clips already in memory (uint8 [N, C, T, H, W], actions [N], privacy [N, A])."""

    def __init__(self, videos: torch.Tensor, actions: torch.Tensor, privacy: torch.Tensor):
        self.videos, self.actions, self.privacy = videos, actions, privacy

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        return self.videos[index], int(self.actions[index]), self.privacy[index]


def load_all(dataset: Dataset) -> TensorClips:
    """Decode every clip once (small data sets: the synthetic experiment, tests)."""
    videos, actions, privacy = zip(*(dataset[i] for i in range(len(dataset))))  # type: ignore[arg-type]
    return TensorClips(torch.stack(videos), torch.tensor(actions), torch.stack(privacy))
