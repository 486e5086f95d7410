"""Synthetic privacy/action videos for the acceptance experiment, written in the official HMDB51 layouts.

8 frames of 32x32 (tubelets 2x8x8: 4 slices x 16) on a static dim noise background. Action (4 classes): direction of
a 12x12 square moving 2 px/frame inside the middle two token rows (horizontal motion) or columns (vertical), never in a
corner tubelet. Five attributes, independent of each other and of the action, each p = 0.5:
(0) side (left/right) of a static 6x6 blob inside a corner tubelet, (1) the blob's colour, (2) actor hue, (3) actor
brightness, (4) a random label that is not rendered (a null control). Static cues sit only on tubelets the action does
not need, actor cues only on those it does: sparsification can remove (0, 1) but not (2, 3).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np

from visioncore.files import atomic_path, atomic_write_bytes
from visioncore.video import write_video

__all__ = ["ACTIONS", "ATTRIBUTES", "SyntheticSet", "render_set", "write_synthetic"]

ACTIONS = ("move_right", "move_left", "move_down", "move_up")
ATTRIBUTES = ("blob_side", "blob_colour", "actor_hue", "actor_brightness", "null")
_HUES = (np.array([1.0, 0.45, 0.1]), np.array([0.1, 0.45, 1.0]))
_BRIGHTNESS = (0.6, 1.0)
_BLOB_COLOURS = (np.array([230, 40, 200]), np.array([40, 220, 60]))
SIZE, FRAMES, CELL, SQUARE, STEP, BLOB = 32, 8, 8, 12, 2, 6


class SyntheticSet(NamedTuple):
    """videos uint8 [N, T, H, W, 3]; actions [N]; privacy int64 [N, 5]; actor/static tubelet masks bool [N, 4, 16]."""

    videos: np.ndarray
    actions: np.ndarray
    privacy: np.ndarray
    actor_mask: np.ndarray
    static_mask: np.ndarray


def _tubelet_mask(boxes: list[tuple[int, int]], size: int) -> np.ndarray:
    """Which 8x8 cells of each 2-frame slice a size x size box at (y, x) per frame touches -> bool [4, 16]."""
    grid = SIZE // CELL
    mask = np.zeros((FRAMES // 2, grid, grid), bool)
    for t, (y, x) in enumerate(boxes):
        mask[t // 2, y // CELL : (y + size - 1) // CELL + 1, x // CELL : (x + size - 1) // CELL + 1] = True
    return mask.reshape(FRAMES // 2, grid * grid)


def _render_one(
    rng: np.random.Generator, action: int, attrs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    background = rng.integers(0, 40, size=(SIZE, SIZE, 3))
    video = np.repeat(background[None], FRAMES, axis=0).astype(np.float64)
    # static blob: side = attribute 0, colour = attribute 1, top/bottom a nuisance; 1 px inside its corner cell
    row = int(rng.integers(2)) * (SIZE - CELL)
    col = int(attrs[0]) * (SIZE - CELL)
    by, bx = row + 1, col + 1
    video[:, by : by + BLOB, bx : bx + BLOB] = _BLOB_COLOURS[int(attrs[1])]
    # actor: 12x12 square in the middle two token rows/columns, moving 2 px/frame
    travel = STEP * (FRAMES - 1)
    across = int(rng.integers(CELL, 2 * CELL - SQUARE + CELL + 1))  # 8..12: inside the middle band
    first = int(rng.integers(0, SIZE - SQUARE - travel + 1))
    forward = action in (0, 2)
    along = [first + STEP * t if forward else SIZE - SQUARE - first - STEP * t for t in range(FRAMES)]
    boxes = [(across, a) if action < 2 else (a, across) for a in along]
    colour = 255.0 * _BRIGHTNESS[int(attrs[3])] * _HUES[int(attrs[2])]
    for t, (y, x) in enumerate(boxes):
        video[t, y : y + SQUARE, x : x + SQUARE] = colour
    static = _tubelet_mask([(by, bx)] * FRAMES, BLOB)
    return video.round().clip(0, 255).astype(np.uint8), _tubelet_mask(boxes, SQUARE), static


def render_set(num_videos: int, seed: int) -> SyntheticSet:
    """Render ``num_videos`` videos with balanced random actions and independent p = 0.5 attributes."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, len(ACTIONS), size=num_videos)
    privacy = rng.integers(0, 2, size=(num_videos, len(ATTRIBUTES))).astype(np.int64)
    out = [_render_one(rng, int(a), p) for a, p in zip(actions, privacy)]
    videos, actor, static = (np.stack(parts) for parts in zip(*out))
    return SyntheticSet(videos, actions, privacy, actor, static)


def write_synthetic(
    out: str | Path, num_train: int = 1200, num_test: int = 400, seed: int = 0
) -> dict[str, str]:
    """Write ``videos/<class>/<name>.avi`` (ffv1, lossless), HMDB51 split lists ``splits/<class>_test_split1.txt``
    (1 = train, 2 = test), the label pickle ``privacy_labels.pickle`` in the official format (``"<class>/<stem>.mp4"``
    -> int64 (1, 5)) and the renderer's tubelet masks ``render_masks.npz`` (by name). Returns the paths."""
    out = Path(out)
    data = render_set(num_train + num_test, seed)
    lines: dict[str, list[str]] = {name: [] for name in ACTIONS}
    labels: dict[str, np.ndarray] = {}
    names = []
    for i, (video, action, privacy) in enumerate(zip(data.videos, data.actions, data.privacy)):
        cls = ACTIONS[int(action)]
        stem = f"{cls}_{i:05d}"
        with atomic_path(out / "videos" / cls / f"{stem}.avi") as tmp:
            write_video(tmp, video, fps=8, codec="ffv1")
        lines[cls].append(f"{stem}.avi {1 if i < num_train else 2}")
        labels[f"{cls}/{stem}.mp4"] = privacy.reshape(1, -1).astype(np.int64)
        names.append(f"{cls}/{stem}")
    for cls, rows in lines.items():
        atomic_write_bytes(out / "splits" / f"{cls}_test_split1.txt", ("\n".join(rows) + "\n").encode())
    atomic_write_bytes(out / "privacy_labels.pickle", pickle.dumps(labels))
    with atomic_path(out / "render_masks.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, names=np.array(names), actor=data.actor_mask, static=data.static_mask)
    return {
        "videos": str(out / "videos"),
        "splits": str(out / "splits"),
        "labels": str(out / "privacy_labels.pickle"),
        "masks": str(out / "render_masks.npz"),
    }
