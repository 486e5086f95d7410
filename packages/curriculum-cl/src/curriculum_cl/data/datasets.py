"""Loaders for the datasets of the paper from a local root (no downloads).

| name | layout under ``--root`` |
|---|---|
| ``mnist`` / ``fashion-mnist`` | torchvision's ``MNIST/raw`` / ``FashionMNIST/raw`` IDX files (``.gz`` or not), or the files directly in root |
| ``cifar10`` | ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` (python pickles, read with a restricted unpickler) or the binary release ``cifar-10-batches-bin/*.bin`` |
| ``nod`` | ``[NovelNet/]{train,val}/<family>/<img>`` (RGBA renders converted to RGB), families sorted by name |
| ``folder`` | ``{train,test or val}/<class>/<img>``, classes sorted by name |
| ``digits`` | scikit-learn's bundled 8x8 digits (no root), a fixed stratified 70/30 split |
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from curriculum_cl.errors import DatasetError
from visioncore.safe_pickle import NUMPY_GLOBALS, restricted_load

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "nod", "folder", "structured")
# Feature-level synthetic data (no images, no extractor): see ``synthetic.structured_features``.
FEATURE_DATASETS = ("structured",)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass
class ImageSplit(torch.utils.data.Dataset):
    """One split: uint8 images held in memory ``[N, H, W(, C)]`` or image files decoded on access."""

    labels: torch.Tensor
    images: np.ndarray | None = None
    paths: list[Path] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        """``(uint8 [C, H, W], label)``."""
        if self.images is not None:
            img = torch.from_numpy(np.ascontiguousarray(self.images[i]))
            img = img[None] if img.ndim == 2 else img.permute(2, 0, 1)
        else:
            img = read_rgb(self.paths[i])
        return img, int(self.labels[i])

    def subset(self, keep: np.ndarray) -> ImageSplit:
        keep = np.asarray(keep)
        return ImageSplit(
            labels=self.labels[torch.from_numpy(keep)],
            images=None if self.images is None else self.images[keep],
            paths=None if self.paths is None else [self.paths[i] for i in keep],
        )


@dataclass
class ImageDataset:
    train: ImageSplit
    test: ImageSplit
    class_names: list[str]
    kind: str  # normalisation family: "mnist", "fashion-mnist", "imagenet", "digits"


def read_rgb(path: Path) -> torch.Tensor:
    """Decode an image as uint8 RGB ``[3, H, W]`` (RGBA renders lose their alpha channel)."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: cannot read image ({err})") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST format: magic 0x0801 labels, 0x0803 images; optionally gzip-compressed)."""
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype_code != 0x08:
            raise DatasetError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
        shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
        body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        if body.size != int(np.prod(shape)):
            raise DatasetError(f"{path}: truncated IDX file ({body.size} bytes for shape {shape})")
    except (OSError, EOFError, struct.error) as err:
        raise DatasetError(f"{path}: corrupt IDX file ({err})") from None
    return body.reshape(shape).copy()


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: missing {stem}[.gz]")


def load_mnist_like(root: Path, name: str) -> ImageDataset:
    """MNIST or FashionMNIST IDX files (torchvision layout ``<root>/<Name>/raw`` or the files directly in root)."""
    sub = "MNIST" if name == "mnist" else "FashionMNIST"
    candidates = [root / sub / "raw", root / "raw", root]
    folder = next(
        (
            c
            for c in candidates
            if (c / "train-images-idx3-ubyte").exists() or (c / "train-images-idx3-ubyte.gz").exists()
        ),
        None,
    )
    if folder is None:
        raise FileNotFoundError(
            f"no {sub} IDX files under {root} (looked in {', '.join(map(str, candidates))})"
        )
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_find_idx(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find_idx(folder, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetError(
                f"{folder}: {prefix} images {images.shape} and labels {labels.shape} do not match"
            )
        splits[split] = ImageSplit(labels=torch.from_numpy(labels.astype(np.int64)), images=images)
    names = [str(i) for i in range(10)]
    return ImageDataset(splits["train"], splits["test"], names, name)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # A restricted unpickler: numpy arrays and plain containers only; anything else (os.system, eval, ...) is refused
    # before it runs. Python-2 pickles (the official release) need bytes keys.
    batch = restricted_load(path, allowed=NUMPY_GLOBALS, encoding="bytes")
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: not a CIFAR batch (a {type(batch).__name__})")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DatasetError(f"{path}: CIFAR batch lacks 'data' or 'labels'")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise DatasetError(f"{path}: CIFAR batch has data {data.shape} {data.dtype} and {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise DatasetError(f"{path}: size {raw.size} is not a multiple of a 3073-byte CIFAR record")
    rec = raw.reshape(-1, 3073)
    return rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), rec[:, 0].astype(np.int64)


def load_cifar10(root: Path) -> ImageDataset:
    """CIFAR-10 python batches (restricted unpickler) or the binary release."""
    py = next((p for p in (root / "cifar-10-batches-py", root) if (p / "test_batch").is_file()), None)
    bin_dir = next(
        (p for p in (root / "cifar-10-batches-bin", root) if (p / "test_batch.bin").is_file()), None
    )
    if py is not None:
        reader, folder, train_files, test_file = (
            _cifar_batch,
            py,
            sorted(py.glob("data_batch_*")),
            py / "test_batch",
        )
    elif bin_dir is not None:
        reader, folder = _cifar_bin, bin_dir
        train_files, test_file = sorted(bin_dir.glob("data_batch_*.bin")), bin_dir / "test_batch.bin"
    else:
        raise FileNotFoundError(
            f"no CIFAR-10 batches under {root} (cifar-10-batches-py/ or cifar-10-batches-bin/)"
        )
    if not train_files:
        raise FileNotFoundError(f"{folder}: no data_batch_* files")
    parts = [reader(p) for p in train_files]
    train_x, train_y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    test_x, test_y = reader(test_file)
    return ImageDataset(
        ImageSplit(torch.from_numpy(train_y), images=train_x),
        ImageSplit(torch.from_numpy(test_y), images=test_x),
        list(CIFAR10_CLASSES),
        "imagenet",
    )


def _class_folders(split_dir: Path) -> list[Path]:
    return sorted(p for p in split_dir.iterdir() if p.is_dir())


def load_class_folders(root: Path, kind: str, test_names: tuple[str, ...]) -> ImageDataset:
    """``{train,<test>}/<class>/<img>``: classes are the sorted folder names of the train split."""
    train_dir = root / "train"
    test_dir = next((root / n for n in test_names if (root / n).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise FileNotFoundError(f"{root}: expected train/ and {' or '.join(test_names)}/ class folders")
    names = [p.name for p in _class_folders(train_dir)]
    if not names:
        raise DatasetError(f"{train_dir}: no class folders")
    splits = []
    for split_dir in (train_dir, test_dir):
        unknown = sorted({p.name for p in _class_folders(split_dir)} - set(names))
        if unknown:
            raise DatasetError(f"{split_dir}: class folders {unknown} are not in {train_dir}")
        paths, labels = [], []
        for label, name in enumerate(names):
            files = sorted(f for f in (split_dir / name).glob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            paths += files
            labels += [label] * len(files)
        if not paths:
            raise DatasetError(f"{split_dir}: no images")
        splits.append(ImageSplit(torch.tensor(labels, dtype=torch.long), paths=paths))
    return ImageDataset(splits[0], splits[1], names, kind)


def load_digits_dataset(test_fraction: float = 0.3, seed: int = 0) -> ImageDataset:
    """scikit-learn's bundled 8x8 digits (1,797 images), a fixed stratified split; pixels 0..16 -> 0..255."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.clip(np.round(digits.images * 255.0 / 16.0), 0, 255).astype(np.uint8)
    tr, te = train_test_split(
        np.arange(len(images)), test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return ImageDataset(
        ImageSplit(labels[tr], images=images[tr]),
        ImageSplit(labels[te], images=images[te]),
        [str(i) for i in range(10)],
        "digits",
    )


def load_dataset(name: str, root: str | Path = "") -> ImageDataset:
    """Load ``name`` (one of ``DATASETS``) from the local ``root``."""
    if name not in DATASETS:
        raise DatasetError(f"--dataset: unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name == "digits":
        return load_digits_dataset()
    if name in FEATURE_DATASETS:
        raise DatasetError(
            f"--dataset {name}: synthetic features, not images (the sweep and designer use it)"
        )
    root = Path(root)
    if not str(root) or not root.is_dir():
        raise FileNotFoundError(f"--root: dataset folder not found: {root!s}")
    if name in ("mnist", "fashion-mnist"):
        return load_mnist_like(root, name)
    if name == "cifar10":
        return load_cifar10(root)
    if name == "nod":
        base = root / "NovelNet" if (root / "NovelNet").is_dir() else root
        return load_class_folders(base, "imagenet", ("val", "test"))
    return load_class_folders(root, "imagenet", ("test", "val"))


def restrict_classes(dataset: ImageDataset, classes: list[int], max_per_class: int = 0) -> ImageDataset:
    """Keep only ``classes`` (original labels kept); optionally the first ``max_per_class`` train images each."""
    known = set(torch.unique(dataset.train.labels).tolist())
    missing = [c for c in classes if c not in known]
    if missing:
        raise DatasetError(
            f"--classes: class(es) {missing} not in the dataset (it has {len(dataset.class_names)} classes: "
            f"{sorted(known)})"
        )
    out = []
    for split in (dataset.train, dataset.test):
        keep = np.flatnonzero(np.isin(split.labels.numpy(), classes))
        if max_per_class and split is dataset.train:
            labels = split.labels.numpy()[keep]
            keep = np.concatenate([keep[labels == c][:max_per_class] for c in classes])
        out.append(split.subset(np.sort(keep)))
    return ImageDataset(out[0], out[1], dataset.class_names, dataset.kind)
