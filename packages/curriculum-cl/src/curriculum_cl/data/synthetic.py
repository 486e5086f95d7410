"""Synthetic class images written in the real on-disk layouts (``curriculum-cl make-synthetic``).

Class c is a grating whose orientation and frequency depend on c (random phase, contrast and noise per image), so
classes are separable but share low-level statistics, enough for the loaders, sweeps and tests to run end to end.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

SYNTHETIC_FORMATS = ("mnist", "fashion-mnist", "cifar10", "nod", "folder")
NOD_FAMILIES = ["fa1", "fa2", "fb1", "fb3", "fc1"]


def class_images(
    label: int, count: int, size: int, rng: np.random.Generator, channels: int = 1
) -> np.ndarray:
    """``count`` uint8 images ``[count, size, size(, channels)]`` of class ``label``."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = np.pi * label / 10.0
    freq = 2.0 + (label % 3) * 1.5
    u = np.cos(angle) * xx + np.sin(angle) * yy
    phase = rng.uniform(0, 2 * np.pi, size=(count, 1, 1))
    contrast = rng.uniform(0.6, 1.0, size=(count, 1, 1))
    img = 0.5 + 0.5 * contrast * np.sin(2 * np.pi * freq * u[None] + phase)
    img = np.clip(img + rng.normal(0, 0.08, size=img.shape), 0, 1)
    if channels == 3:
        tint = 0.5 + 0.5 * np.array([np.cos(label), np.sin(label), np.cos(2 * label)])
        img = img[..., None] * (0.4 + 0.6 * tint)
    return (img * 255).astype(np.uint8)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def _split_arrays(num_classes, n_train, n_test, size, channels, rng):
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        xs = [class_images(c, n, size, rng, channels) for c in range(num_classes)]
        ys = [np.full(n, c, dtype=np.uint8) for c in range(num_classes)]
        order = rng.permutation(num_classes * n)
        out[split] = (np.concatenate(xs)[order], np.concatenate(ys)[order])
    return out


def write_synthetic(
    out: str | Path, fmt: str, *, n_train: int = 60, n_test: int = 20, size: int = 0, seed: int = 0
) -> Path:
    """Write a synthetic dataset in the layout ``fmt``; returns the ``--root`` to pass to the loaders."""
    if fmt not in SYNTHETIC_FORMATS:
        raise ValueError(f"--format: unknown format {fmt!r}; choose one of {', '.join(SYNTHETIC_FORMATS)}")
    out, rng = Path(out), np.random.default_rng(seed)
    if fmt in ("mnist", "fashion-mnist"):
        raw = out / ("MNIST" if fmt == "mnist" else "FashionMNIST") / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        data = _split_arrays(10, n_train, n_test, size or 28, 1, rng)
        for split, prefix in (("train", "train"), ("test", "t10k")):
            _write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", data[split][0])
            _write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", data[split][1])
    elif fmt == "cifar10":
        folder = out / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        data = _split_arrays(10, n_train, n_test, 32, 3, rng)  # the CIFAR format is fixed at 32x32
        x, y = data["train"]
        for i, chunk in enumerate(np.array_split(np.arange(len(y)), 5), start=1):
            _dump_cifar(folder / f"data_batch_{i}", x[chunk], y[chunk])
        _dump_cifar(folder / "test_batch", *data["test"])
    else:
        base = out / "NovelNet" if fmt == "nod" else out
        names = NOD_FAMILIES if fmt == "nod" else [f"class_{c}" for c in range(4)]
        for split, n in (("train", n_train), ("val" if fmt == "nod" else "test", n_test)):
            for label, name in enumerate(names):
                folder = base / split / name
                folder.mkdir(parents=True, exist_ok=True)
                for i, img in enumerate(class_images(label, n, size or 32, rng, 3)):
                    alpha = np.full(img.shape[:2] + (1,), 255, dtype=np.uint8)
                    rgba = np.concatenate([img, alpha], -1) if fmt == "nod" else img
                    Image.fromarray(rgba).save(folder / f"{i:04d}.png")
    return out


def _dump_cifar(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    batch = {
        b"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1),
        b"labels": labels.astype(int).tolist(),
    }
    with path.open("wb") as fh:
        pickle.dump(batch, fh, protocol=2)


def structured_features(
    *,
    dim: int = 64,
    n_train: int = 100,
    n_test: int = 50,
    far: float = 6.0,
    near: float = 1.5,
    noise: float = 1.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Cached features with a declared similarity structure (issue 13, ``--dataset structured``): 5 Gaussian classes in
    ``dim`` dimensions, two pairs of near classes (0, 1) and (2, 3) and one far class 4.

    Pair and far centres sit on orthogonal directions at distance ``far`` from the origin; the two classes of a pair
    are ``near`` apart (each ``near / 2`` from the pair centre along its own orthogonal direction); samples add
    isotropic noise of std ``noise``. Returns train/test features and labels and ``similarity``, the true cosine
    similarity of the class means (what the designer should recover).
    """
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 6)))  # 6 orthonormal directions
    group_centre = [far * basis[:, 0], far * basis[:, 1], far * basis[:, 2]]
    means = np.stack(
        [
            group_centre[0] + near / 2 * basis[:, 3],
            group_centre[0] - near / 2 * basis[:, 3],
            group_centre[1] + near / 2 * basis[:, 4],
            group_centre[1] - near / 2 * basis[:, 4],
            group_centre[2],
        ]
    )
    out: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = np.concatenate([m + noise * rng.normal(size=(n, dim)) for m in means])
        out[split] = x.astype(np.float32)
        out[f"{split}_labels"] = np.repeat(np.arange(5), n)
    unit = means / np.linalg.norm(means, axis=1, keepdims=True)
    out["similarity"] = unit @ unit.T
    return out
