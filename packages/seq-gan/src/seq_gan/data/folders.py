"""ImageFolder roots ``root/<split>/[<class>/]*.{jpg,jpeg,png}``: shorter side to ``resolution``, centre crop, [-1, 1].

Layouts:
- class folders (ImageNet train/val, the synthetic digits): label = index of the sorted class-folder name;
- ImageNet's flat ``val/`` with ``LOC_val_solution.csv`` (in the root or the split folder): label from the first
  synset of each row, indexed among the sorted synsets of ``train/`` (or of the CSV when there is no train folder);
- unlabelled (FFHQ ``images1024x1024/<00000>/*.png``, LSUN image exports, any flat folder): ``labels="none"``, every
  image below the split folder, label -1.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

EXTENSIONS = (".jpg", ".jpeg", ".png")


def _images(folder: Path, recursive: bool) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in pattern if p.suffix.lower() in EXTENSIONS and p.is_file())


def load_image(path: str | os.PathLike, resolution: int) -> torch.Tensor:
    """One image -> [3, resolution, resolution] in [-1, 1] (bicubic resize of the shorter side, centre crop)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path}: cannot read image ({err})") from None
    w, h = img.size
    scale = resolution / min(w, h)
    if scale != 1:
        img = img.resize(
            (max(resolution, round(w * scale)), max(resolution, round(h * scale))), Image.BICUBIC
        )
    w, h = img.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    img = img.crop((left, top, left + resolution, top + resolution))
    array = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _loc_val_labels(root: Path, split_dir: Path) -> dict[str, str] | None:
    for candidate in (split_dir / "LOC_val_solution.csv", root / "LOC_val_solution.csv"):
        if candidate.is_file():
            with candidate.open(newline="") as f:
                rows = list(csv.DictReader(f))
            if not rows or "ImageId" not in rows[0] or "PredictionString" not in rows[0]:
                raise ValueError(f"{candidate}: expected columns ImageId,PredictionString")
            return {r["ImageId"]: r["PredictionString"].split()[0] for r in rows}
    return None


class ImageFolderDataset(Dataset):
    """``(image [3, R, R] in [-1, 1], label)`` pairs of one split; ``labels``: "auto", "folders" or "none"."""

    def __init__(
        self, root: str | os.PathLike, split: str = "train", resolution: int = 256, labels: str = "auto"
    ):
        if labels not in ("auto", "folders", "none"):
            raise ValueError(f"labels must be auto, folders or none, got {labels!r}")
        self.root, self.resolution = Path(root), resolution
        split_dir = self.root / split
        if not split_dir.is_dir():
            raise FileNotFoundError(
                f"{split_dir}: split folder not found (expected root/<split>/[<class>/]*.png)"
            )
        class_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir())
        loc = _loc_val_labels(self.root, split_dir) if labels == "auto" else None
        if labels == "none" or (labels == "auto" and not class_dirs and loc is None):
            self.classes: list[str] = []
            self.samples = [(p, -1) for p in _images(split_dir, recursive=True)]
        elif loc is not None and not class_dirs:
            train = self.root / "train"
            synsets = (
                sorted(p.name for p in train.iterdir() if p.is_dir())
                if train.is_dir()
                else sorted(set(loc.values()))
            )
            index = {s: i for i, s in enumerate(synsets)}
            self.classes = synsets
            self.samples = [
                (p, index.get(loc.get(p.stem, ""), -1)) for p in _images(split_dir, recursive=False)
            ]
            unknown = [p.name for p, y in self.samples if y < 0]
            if unknown:
                raise ValueError(
                    f"{split_dir}: {len(unknown)} image(s) without a known label in LOC_val_solution.csv, e.g. {unknown[0]}"
                )
        else:
            if labels == "folders" and not class_dirs:
                raise ValueError(f"{split_dir}: no class folders")
            self.classes = [p.name for p in class_dirs]
            self.samples = [(p, i) for i, d in enumerate(class_dirs) for p in _images(d, recursive=True)]
        if not self.samples:
            raise ValueError(f"{split_dir}: no .jpg/.jpeg/.png images found")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return load_image(path, self.resolution), label

    def load_all(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image and label of the split in memory (small datasets: the synthetic digits)."""
        images = torch.stack([load_image(p, self.resolution) for p, _ in self.samples])
        return images, torch.tensor([y for _, y in self.samples], dtype=torch.long)
