"""VoxCeleb / CelebV-HQ / TalkingHead-1KH in PV3D's preprocessed layout (validated at construction).

::

    root/recrop_faces/<clip>.mp4             # face-cropped clips
    root/smoothed_camera2world/<clip>.json   # [[frame_name, [25 floats]], ...], one entry per frame
    root/<list_name>                         # one mp4 file name per line

A training item: 16 consecutive frames from a random offset, two positions floor(16 Beta(2, 1)) and
floor(16 Beta(1, 2)) (sorted), t = position / 15, frames in [-1, 1]; horizontal flip with p = 0.5 mirrors the
cameras (PV3D Sec. 4, "bi-frame" training).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from pv3d.cameras import mirror_camera

__all__ = ["DatasetError", "VoxCelebDataset", "sample_times"]


class DatasetError(ValueError):
    """A dataset folder, list, video or camera file that does not fit the layout; the message names it."""


def sample_times(batch: int, generator: torch.Generator) -> torch.Tensor:
    """[batch, 2] sorted times: t_a ~ Beta(2, 1), t_b ~ Beta(1, 2) (as max / min of two uniforms)."""
    u = torch.rand(batch, 4, generator=generator)
    t = torch.stack([u[:, :2].max(dim=1).values, u[:, 2:].min(dim=1).values], dim=1)
    return t.sort(dim=1).values


def _read_cameras(path: Path) -> torch.Tensor:
    try:
        entries = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: unreadable camera file ({err})") from None
    if not isinstance(entries, list) or not entries:
        raise DatasetError(f"{path}: expected a non-empty list of [frame_name, [25 floats]]")
    cams = []
    for i, entry in enumerate(entries):
        vec = entry[1] if isinstance(entry, list) and len(entry) == 2 else None
        if not isinstance(vec, list) or len(vec) != 25 or not all(isinstance(v, int | float) for v in vec):
            raise DatasetError(f"{path}: entry {i} is not [frame_name, [25 floats]]")
        if not all(math.isfinite(v) for v in vec):
            raise DatasetError(f"{path}: entry {i} has a non-finite camera value")
        cams.append(vec)
    return torch.tensor(cams, dtype=torch.float32)


class VoxCelebDataset:
    """Clips of a VoxCeleb-layout folder; ``sample(index, generator)`` draws one training item."""

    def __init__(
        self,
        root: str | Path,
        list_name: str = "voxceleb.list",
        num_frames: int = 16,
        image_size: int = 512,
        hflip: bool = True,
        cache: bool = False,
    ):
        from visioncore.video import video_info

        self.root, self.num_frames, self.image_size, self.hflip = Path(root), num_frames, image_size, hflip
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: dataset folder not found")
        list_path = self.root / list_name
        if not list_path.is_file():
            raise DatasetError(f"{list_path}: clip list not found")
        names = [line.strip() for line in list_path.read_text().splitlines() if line.strip()]
        if not names:
            raise DatasetError(f"{list_path}: the clip list is empty")
        self.videos, cams = [], []
        for name in names:
            video = self.root / "recrop_faces" / name
            if not video.is_file():
                raise DatasetError(f"{list_path} names {name}, but {video} does not exist")
            cam_path = self.root / "smoothed_camera2world" / f"{Path(name).stem}.json"
            if not cam_path.is_file():
                raise DatasetError(f"{cam_path}: camera sequence missing for {name}")
            c = _read_cameras(cam_path)
            frames = video_info(video).frames
            if frames != len(c):
                raise DatasetError(f"{cam_path}: {len(c)} camera entries but {video} has {frames} frames")
            if frames < num_frames:
                raise DatasetError(f"{video}: {frames} frames, fewer than num_frames={num_frames}")
            self.videos.append(video)
            cams.append(c)
        self.cameras = cams
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.videos)

    def _frames(self, index: int, positions: list[int]) -> torch.Tensor:
        from visioncore.video import read_video

        if self._cache is not None:
            if index not in self._cache:
                self._cache[index] = read_video(self.videos[index])
            frames = self._cache[index][positions]
        else:
            frames = read_video(self.videos[index], indices=positions)
        frames = frames.float() / 127.5 - 1
        if frames.shape[-1] != self.image_size or frames.shape[-2] != self.image_size:
            frames = F.interpolate(frames, size=(self.image_size,) * 2, mode="bilinear", antialias=True)
        return frames

    def window(self, index: int, generator: torch.Generator) -> int:
        """A random start frame of a ``num_frames`` window of clip ``index``."""
        total = len(self.cameras[index])
        return int(torch.randint(total - self.num_frames + 1, (1,), generator=generator))

    def sample(self, index: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """frames [2, 3, S, S] in [-1, 1], t [2] (position / 15), c [2, 25]; flipped with the cameras mirrored."""
        start = self.window(index, generator)
        pos = (sample_times(1, generator)[0] * self.num_frames).floor().long().clamp_max(self.num_frames - 1)
        positions = (start + pos).tolist()
        frames = self._frames(index, positions)
        c = self.cameras[index][positions]
        if self.hflip and torch.rand(1, generator=generator).item() < 0.5:
            frames, c = frames.flip(-1), mirror_camera(c)
        return {"frames": frames, "t": pos.float() / (self.num_frames - 1), "c": c}

    def camera_pair(self, t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Real cameras [2, 25] for generated times ``t`` [2]: a random clip's trajectory at floor(16 t)."""
        index = int(torch.randint(len(self), (1,), generator=generator))
        start = self.window(index, generator)
        pos = (t * self.num_frames).floor().long().clamp(0, self.num_frames - 1)
        c = self.cameras[index][start + pos]
        if self.hflip and torch.rand(1, generator=generator).item() < 0.5:
            c = mirror_camera(c)
        return c

    def trajectory(self, index: int, start: int = 0) -> torch.Tensor:
        """Cameras [num_frames, 25] of clip ``index`` from ``start``."""
        return self.cameras[index][start : start + self.num_frames]

    def clip(self, index: int, start: int = 0) -> torch.Tensor:
        """Frames [num_frames, 3, S, S] in [-1, 1] of clip ``index`` from ``start`` (evaluation)."""
        return self._frames(index, list(range(start, start + self.num_frames)))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.sample(index, torch.Generator().manual_seed(index))
