"""Pictures of what MIST looked at: one tile per frame, its 4x4 crop grid, chosen segments and regions marked."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from visioncore.files import atomic_path

__all__ = ["save_selection_strip", "selection_tiles"]

CELL = 12


def selection_tiles(
    num_frames: int,
    num_regions: int,
    frames_per_segment: int,
    segments: Sequence[int],
    regions: np.ndarray,
    *,
    event_segment: int = -1,
    key_regions: Sequence[int] = (),
    frames: np.ndarray | None = None,
) -> np.ndarray:
    """[T, 3, H, W] float tiles in [0, 1]: dark = not looked at, grey = frame of a chosen segment, white = chosen
    region; a red border marks the frames of the event segment and a green dot the key's region (synthetic data).

    ``regions`` [len(segments) * F, topj] are region indices per chosen frame; ``frames`` (optional, [T, H, W, 3] in
    [0, 1]) draws the real frames under the grid instead of flat cells.
    """
    side = math.isqrt(num_regions)
    rows, cols = (side, side) if side * side == num_regions else (1, num_regions)
    h, w = rows * CELL, cols * CELL
    tiles = np.full((num_frames, h, w, 3), 0.1)
    if frames is not None:
        tiles = 0.35 * frames
    for slot, seg in enumerate(segments):
        for f in range(frames_per_segment):
            t = seg * frames_per_segment + f
            base = frames[t] if frames is not None else np.full((h, w, 3), 0.45)
            tiles[t] = 0.6 * base if frames is not None else base
            for r in regions[slot * frames_per_segment + f]:
                if r >= num_regions:  # the whole frame as an extra region (released NExT-QA variant)
                    continue
                y, x = divmod(int(r), cols)
                cell = tiles[t, y * CELL : (y + 1) * CELL, x * CELL : (x + 1) * CELL]
                cell[:] = (
                    frames[t, y * CELL : (y + 1) * CELL, x * CELL : (x + 1) * CELL]
                    if frames is not None
                    else 1.0
                )
    if event_segment >= 0:
        for f in range(frames_per_segment):
            t = event_segment * frames_per_segment + f
            tiles[t, :2], tiles[t, -2:], tiles[t, :, :2], tiles[t, :, -2:] = (
                (1, 0, 0),
                (1, 0, 0),
                (1, 0, 0),
                (1, 0, 0),
            )
            if f < len(key_regions):
                y, x = divmod(int(key_regions[f]), cols)
                cy, cx = y * CELL + CELL // 2, x * CELL + CELL // 2
                tiles[t, cy - 2 : cy + 2, cx - 2 : cx + 2] = (0, 0.8, 0)
    return np.ascontiguousarray(tiles.transpose(0, 3, 1, 2))


def save_selection_strip(path: str | os.PathLike, rows: Sequence[np.ndarray]) -> None:
    """One row of frame tiles per question, written atomically as a PNG."""
    from visioncore.viz import save_image_grid

    tiles = np.concatenate(list(rows))
    with atomic_path(path) as tmp:
        save_image_grid(tmp, tiles, nrow=len(rows[0]))
