"""Clip datasets over face-crop videos: non-overlapping clips of the first `max_frames` frames (RealForensics /
LipForensics evaluation protocol), each with its facial-part boxes mapped to the model's input size."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from deepfake_mae.data.layout import VideoRecord, load_landmarks
from deepfake_mae.models.masking import part_boxes
from visioncore.video import read_video, video_info


def clip_starts(num_frames: int, clip_len: int, max_frames: int) -> list[int]:
    """Starts of the non-overlapping clips within the first `max_frames` frames; a short video gives one clip
    (its last frame repeated by the reader)."""
    usable = min(num_frames, max_frames)
    starts = list(range(0, usable - clip_len + 1, clip_len))
    return starts or [0]


def resize_clip(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (T, 3, H, W) -> uint8 (T, 3, size, size)."""
    if frames.shape[-2:] == (size, size):
        return frames
    out = F.interpolate(
        frames.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return out.round().clamp(0, 255).to(torch.uint8)


class FaceClipDataset(Dataset):
    """Items: {"frames": uint8 (T, 3, S, S), "boxes": (T, 3, 4) part boxes in S-pixel coordinates, "label": int,
    "video": index into `records`}. With `preload`, every video is decoded once and kept in memory."""

    def __init__(
        self,
        records: Sequence[VideoRecord],
        clip_len: int,
        image_size: int,
        max_frames: int = 110,
        part_scheme: str = "parts",
        preload: bool = False,
    ):
        self.records = list(records)
        self.clip_len, self.image_size, self.part_scheme = clip_len, image_size, part_scheme
        self.items: list[tuple[int, int]] = []
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._totals: list[int] = []
        for idx, rec in enumerate(self.records):
            if preload:
                self._cache[idx] = self._load(idx, None)
                total = self._cache[idx][0].shape[0]
            else:
                total = video_info(rec.face_path).frames
            self._totals.append(total)
            self.items += [(idx, s) for s in clip_starts(total, clip_len, max_frames)]

    def subset(self, keep: Sequence[int]) -> FaceClipDataset:
        """A dataset over the records at `keep` (indices into `records`), sharing the decoded videos."""
        new = copy.copy(self)
        remap = {old: new_idx for new_idx, old in enumerate(keep)}
        new.records = [self.records[i] for i in keep]
        new.items = [(remap[v], s) for v, s in self.items if v in remap]
        new._cache = {remap[v]: c for v, c in self._cache.items() if v in remap}
        new._totals = [self._totals[i] for i in keep]
        return new

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, idx: int, indices: list[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
        rec = self.records[idx]
        frames = read_video(rec.face_path, indices=indices)
        height, width = frames.shape[-2:]
        if rec.landmark_path is None:
            raise FileNotFoundError(f"{rec.face_path}: no landmarks file for this video")
        landmarks = torch.from_numpy(load_landmarks(rec.landmark_path))
        if indices is None:
            if landmarks.shape[0] < frames.shape[0]:
                raise ValueError(
                    f"{rec.landmark_path}: {landmarks.shape[0]} landmark frames for {frames.shape[0]} video frames"
                )
            landmarks = landmarks[: frames.shape[0]]
        else:
            landmarks = landmarks[torch.tensor(indices).clamp(max=landmarks.shape[0] - 1)]
        scale = torch.tensor([self.image_size / width, self.image_size / height])
        boxes = part_boxes(landmarks * scale, self.part_scheme)
        return resize_clip(frames, self.image_size), boxes

    def __getitem__(self, i: int) -> dict:
        idx, start = self.items[i]
        if idx in self._cache:
            frames, boxes = self._cache[idx]
            pick = torch.arange(start, start + self.clip_len).clamp(max=frames.shape[0] - 1)
            frames, boxes = frames[pick], boxes[pick]
        else:
            last = self._totals[idx] - 1
            frames, boxes = self._load(idx, [min(k, last) for k in range(start, start + self.clip_len)])
        return {
            "frames": frames,
            "boxes": boxes,
            "label": self.records[idx].label,
            "video": idx,
            "start": start,
        }
