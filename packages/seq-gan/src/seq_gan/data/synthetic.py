"""Coloured digits on nuisance backgrounds, written as an ImageFolder (the acceptance experiment's data).

scikit-learn's shipped ``load_digits`` (1,797 8x8 digits) upsampled to ``digit_size``, given a random saturated colour
and pasted at a random offset on a ``canvas`` background of random stripes or coloured noise. The class is the digit;
colour, offset and background are nuisance "details", listed per image in ``nuisance.csv``.
Layout: ``out/{train,val}/<digit>/<index>.png`` (first ``num_train`` of a seeded permutation are train).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from visioncore.files import atomic_path


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated random colour (HSV with s, v high)."""
    h, s, v = rng.random(), rng.uniform(0.7, 1.0), rng.uniform(0.8, 1.0)
    i, f = int(h * 6) % 6, h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    if rng.random() < 0.5:
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, 8)
        yy, xx = np.mgrid[:size, :size]
        wave = (np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period) > 0).astype(np.float64)
        a, b = rng.uniform(0, 0.6, 3), rng.uniform(0, 0.6, 3)
        return wave[..., None] * a + (1 - wave[..., None]) * b, "stripes"
    base = rng.uniform(0, 0.5, 3)
    return np.clip(base + rng.normal(0, 0.12, (size, size, 3)), 0, 1), "noise"


def render_digit(
    digit: np.ndarray, rng: np.random.Generator, canvas: int, digit_size: int
) -> tuple[np.ndarray, dict[str, object]]:
    """One 8x8 sklearn digit (0-16) -> uint8 [canvas, canvas, 3] and its nuisance factors."""
    alpha = torch.from_numpy(digit.astype(np.float32) / 16.0)[None, None]
    alpha = F.interpolate(alpha, size=(digit_size, digit_size), mode="bilinear", align_corners=False)[
        0, 0
    ].numpy()
    bg, kind = _background(rng, canvas)
    colour = _colour(rng)
    y, x = rng.integers(0, canvas - digit_size + 1, 2)
    img = bg.copy()
    patch = img[y : y + digit_size, x : x + digit_size]
    img[y : y + digit_size, x : x + digit_size] = patch * (1 - alpha[..., None]) + colour * alpha[..., None]
    info = {"background": kind, "r": round(float(colour[0]), 3), "g": round(float(colour[1]), 3),
            "b": round(float(colour[2]), 3), "x": int(x), "y": int(y)}  # fmt: skip
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), info


def make_synthetic(
    out: str | os.PathLike,
    *,
    canvas: int = 16,
    digit_size: int = 12,
    num_train: int = 1500,
    seed: int = 0,
    limit: int | None = None,
) -> Path:
    """Write the dataset (all 1,797 digits, or the first ``limit`` of the permutation) and ``nuisance.csv``."""
    from sklearn.datasets import load_digits

    if not 8 <= digit_size <= canvas:
        raise ValueError(f"need 8 <= digit_size <= canvas, got digit_size={digit_size}, canvas={canvas}")
    out = Path(out)
    if (out / "nuisance.csv").exists():
        raise FileExistsError(f"{out}: already holds a dataset (nuisance.csv exists)")
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.images))
    if limit is not None:
        order = order[:limit]
    rows = []
    for rank, idx in enumerate(order):
        label = int(digits.target[idx])
        split = "train" if rank < num_train else "val"
        image, info = render_digit(digits.images[idx], rng, canvas, digit_size)
        rel = Path(split) / str(label) / f"{idx:05d}.png"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        with atomic_path(out / rel) as tmp:
            tmp.write_bytes(buffer.getvalue())
        rows.append({"split": split, "file": rel.as_posix(), "label": label, **info})
    with atomic_path(out / "nuisance.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def read_nuisance(root: str | os.PathLike) -> dict[str, dict[str, str]]:
    """``nuisance.csv`` rows keyed by relative file path."""
    path = Path(root) / "nuisance.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (write the data with `seq-gan make-synthetic`)")
    with path.open(newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f)}
