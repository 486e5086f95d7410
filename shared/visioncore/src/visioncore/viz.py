"""Pictures of results: image grids, frame strips, segmentation overlays, videos and metric curves.

Inputs are float in [0, 1] or uint8. Single images and videos follow `visioncore.video`: tensors are channels-first
([C, H, W], [T, C, H, W]), numpy arrays channels-last ([H, W, C], [T, H, W, C]); one channel is shown as grey.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import ceil
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import hsv_to_rgb
from matplotlib.figure import Figure
from PIL import Image

from visioncore.video import PathLike, save_gif, write_video

_GOLDEN = 0.618033988749895


def _uint8(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """numpy uint8, scaling floats from [0, 1] (clipped) to [0, 255]."""
    array = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"expected float in [0, 1] or uint8 pixels, got {array.dtype}")
    return (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)


def _channels_last(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """uint8 [..., H, W, 3] from a channels-first tensor or a channels-last array, grey repeated to RGB."""
    array = _uint8(x)
    if isinstance(x, torch.Tensor):
        array = np.moveaxis(array, -3, -1)
    if array.shape[-1] == 1:
        array = array.repeat(3, axis=-1)
    if array.shape[-1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got shape {tuple(x.shape)}")
    return np.ascontiguousarray(array)


def save_image_grid(
    path: PathLike, images: torch.Tensor | np.ndarray, nrow: int = 8, pad: int = 2
) -> np.ndarray:
    """Tile images [N, C, H, W] (tensor or numpy, C = 1 or 3) row-major, `nrow` per row, into a PNG.

    The layout is torchvision's ``make_grid``: `pad` black pixels around every tile. Returns the uint8 [H, W, 3] grid.
    """
    tiles = _channels_last(torch.as_tensor(images))
    n, height, width, _ = tiles.shape
    cols = min(nrow, n)
    grid = np.zeros((ceil(n / cols) * (height + pad) + pad, cols * (width + pad) + pad, 3), np.uint8)
    for k, tile in enumerate(tiles):
        top, left = pad + k // cols * (height + pad), pad + k % cols * (width + pad)
        grid[top : top + height, left : left + width] = tile
    Image.fromarray(grid).save(path, format="PNG")
    return grid


def frame_strip(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """Frames side by side, left to right: uint8 [H, T * W, 3]."""
    return np.concatenate(list(_channels_last(frames)), axis=1)


def _label_colors(labels: np.ndarray) -> np.ndarray:
    """A distinct, stable colour per integer label: hues spaced by the golden ratio, so neighbours differ most."""
    hue = (labels * _GOLDEN) % 1.0
    hsv = np.stack([hue, np.full_like(hue, 0.75), np.full_like(hue, 0.95)], axis=-1)
    return (hsv_to_rgb(hsv) * 255).round().astype(np.uint8)


def overlay_segmentation(
    image: torch.Tensor | np.ndarray,
    seg: torch.Tensor | np.ndarray,
    alpha: float = 0.5,
    ignore_index: int = 255,
) -> np.ndarray:
    """Blend a colour per label over the image: ``(1 - alpha) * image + alpha * colour``, uint8 [H, W, 3].

    Every label is coloured, background 0 included (slot and instance masks have no privileged label); pixels equal
    to `ignore_index` keep the image unchanged.
    """
    rgb = _channels_last(image)
    labels = np.asarray(seg.detach().cpu() if isinstance(seg, torch.Tensor) else seg)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"seg shape {labels.shape} does not match image {rgb.shape[:2]}")
    keep = labels != ignore_index
    blended = (1 - alpha) * rgb[keep] + alpha * _label_colors(labels[keep].astype(np.int64))
    out = rgb.copy()
    out[keep] = blended.round().clip(0, 255).astype(np.uint8)
    return out


def save_video(path: PathLike, frames: torch.Tensor | np.ndarray, fps: float = 8) -> None:
    """Write frames as a GIF (.gif) or an H.264 MP4 (.mp4, odd sizes padded by one edge pixel)."""
    array = _channels_last(frames)
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        save_gif(path, array, fps)
    elif suffix == ".mp4":
        _, height, width, _ = array.shape
        array = np.pad(array, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        write_video(path, array, fps, codec="libx264")
    else:
        raise ValueError(f"save_video writes .gif or .mp4, got {path}")


def _xy(curve: Sequence[float] | tuple[Sequence[float], Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) from a pair of sequences, or from ys alone with xs = 0, 1, ..."""
    if isinstance(curve, tuple) and len(curve) == 2 and np.ndim(curve[0]) == 1:
        return np.asarray(curve[0]), np.asarray(curve[1])
    return np.arange(len(curve)), np.asarray(curve)


def plot_curves(
    path: PathLike,
    curves: Mapping[str, Sequence[float] | tuple[Sequence[float], Sequence[float]]],
    title: str | None = None,
    xlabel: str = "step",
) -> Figure:
    """Plot named curves (ys, or an (xs, ys) tuple) on one axis into a PNG; returns the figure.

    Draws on a bare `Figure` (Agg canvas), so pyplot's global state and backend are left alone.
    """
    figure = Figure(figsize=(6, 4), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for name, curve in curves.items():
        axes.plot(*_xy(curve), label=name)
    axes.set_xlabel(xlabel)
    if title is not None:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(path, format="png")
    return figure
