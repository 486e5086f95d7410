"""Google Landmarks v2 in OpenCompatible's list layout (official folder and file names kept literally).

- ``annotation/gldv2/label_81313.txt`` and the splits ``gldv2_train_old_30percent[_class].txt``: ``<path> <label>``
- ``gldv2_gallery_list.txt``: ``index/f/d/f/<id>.jpg 0``
- ``gldv2_{public,private}_query_gt.txt``: ``test/e/8/e/<id>.jpg <n> <i1>,<i2>,...``, the ground truth as rows of
  the gallery list (our reading of upstream's files; ``prepare-gldv2`` writes them so).
Images are read relative to the data root (``data/gldv2/{train,index,test}/a/b/c/<id>.jpg``).
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from darwinian_upgrades.config import DataConfig


def _lines(path: str | Path) -> list[tuple[int, str]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: list file not found")
    with path.open(encoding="utf-8") as fh:
        return [(n, line.strip()) for n, line in enumerate(fh, 1) if line.strip()]


def read_label_list(path: str | Path) -> list[tuple[str, int]]:
    """``<path> <int>`` lines; a malformed line is a ``ValueError`` naming ``file:line``."""
    entries = []
    for n, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or int(parts[1]) < 0:
            raise ValueError(f"{path}:{n}: expected '<path> <non-negative int>', got {line[:80]!r}")
        entries.append((parts[0], int(parts[1])))
    if not entries:
        raise ValueError(f"{path}: empty list file")
    return entries


def read_query_gt(path: str | Path) -> list[tuple[str, list[int]]]:
    """``<path> <n> <i1>,<i2>,...`` lines: the query and its ground-truth gallery rows."""
    entries = []
    for n, line in _lines(path):
        parts = line.split()
        try:
            count = int(parts[1])
            rows = [int(x) for x in parts[2].split(",")] if len(parts) > 2 else []
        except (IndexError, ValueError):
            raise ValueError(f"{path}:{n}: expected '<path> <n> <i1>,<i2>,...', got {line[:80]!r}") from None
        if len(parts) > 3 or count != len(rows):
            raise ValueError(f"{path}:{n}: {count} ground-truth images announced, {len(rows)} listed")
        entries.append((parts[0], rows))
    return entries


def write_list(path: str | Path, lines: Sequence[str]) -> None:
    """Write list lines atomically (temporary name, then rename)."""
    from visioncore.files import atomic_write_text

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))


def num_classes(entries: Sequence[tuple[str, int]]) -> int:
    return max(label for _, label in entries) + 1


# ------------------------------------------------------------------------------------------------------- images
def _resize(image: Image.Image, size: int, mode: str) -> Image.Image:
    if mode == "squash":  # upstream's test transform: Resize((s, s)), aspect ratio not kept
        return image.resize((size, size), Image.BILINEAR)
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def _random_resized_crop(image: Image.Image, size: int) -> Image.Image:
    """RandomResizedCrop(scale 0.08-1, ratio 3/4-4/3) + horizontal flip, drawn from the global torch RNG."""
    w, h = image.size
    for _ in range(10):
        area = w * h * float(torch.empty(1).uniform_(0.08, 1.0))
        ratio = float(torch.exp(torch.empty(1).uniform_(np.log(3 / 4), np.log(4 / 3))))
        cw, ch = round((area * ratio) ** 0.5), round((area / ratio) ** 0.5)
        if 0 < cw <= w and 0 < ch <= h:
            left = int(torch.randint(0, w - cw + 1, ()))
            top = int(torch.randint(0, h - ch + 1, ()))
            image = image.crop((left, top, left + cw, top + ch))
            break
    image = image.resize((size, size), Image.BILINEAR)
    if torch.rand(()) < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    return image


def load_image(
    path: Path, cfg: DataConfig, *, train: bool, box: Sequence[float] | None = None
) -> torch.Tensor:
    """An RGB image file as a normalised [3, s, s] tensor (cropped to ``box`` = x1, y1, x2, y2 first, if given);
    a broken file is a ``ValueError`` naming it."""
    try:
        with Image.open(path) as im:
            image = im.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image not found") from None
    except Exception as err:  # PIL's UnidentifiedImageError, truncated files, ...
        raise ValueError(f"{path}: unreadable image ({type(err).__name__})") from None
    if box is not None:
        image = image.crop(tuple(round(v) for v in box))
    if train and cfg.augment:
        image = _random_resized_crop(image, cfg.image_size)
    else:
        image = _resize(image, cfg.image_size, cfg.resize)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(cfg.mean)[:, None, None]
    std = torch.tensor(cfg.std)[:, None, None]
    return (x - mean) / std


class ImageListDataset(Dataset):
    """(image, label) pairs of a list file's entries, images read relative to ``root``."""

    def __init__(
        self,
        root: str | Path,
        entries: Sequence[tuple[str, int]],
        cfg: DataConfig,
        *,
        train: bool,
        boxes: Sequence[Sequence[float] | None] | None = None,
    ):
        self.root, self.entries, self.cfg, self.train = Path(root), list(entries), cfg, train
        self.boxes = list(boxes) if boxes is not None else [None] * len(self.entries)
        self._cache: list[torch.Tensor] | None = None
        if cfg.cache and not (train and cfg.augment):
            self._cache = [self._load(i) for i in range(len(self.entries))]

    def _load(self, index: int) -> torch.Tensor:
        path = self.root / self.entries[index][0]
        return load_image(path, self.cfg, train=self.train, box=self.boxes[index])

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        label = self.entries[index][1]
        image = self._cache[index] if self._cache is not None else self._load(index)
        return image, label


# ------------------------------------------------------------------------------------------------------ splits
def split_by_data(
    entries: Sequence[tuple[str, int]], fraction: float, seed: int = 666
) -> list[tuple[str, int]]:
    """Keep ``fraction`` of each class's images (at least one), shuffled per class with seed ``seed + class``.

    Upstream's ``split_gldv2_by_data`` calls ``len()`` on an integer and crashes; this is the working rewrite.
    """
    by_class: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for entry in entries:
        by_class[entry[1]].append(entry)
    kept = []
    for label in sorted(by_class):
        items = sorted(by_class[label])
        random.Random(seed + label).shuffle(items)
        kept.extend(items[: max(1, round(fraction * len(items)))])
    return kept


def split_by_class(
    entries: Sequence[tuple[str, int]], fraction: float, seed: int = 666
) -> list[tuple[str, int]]:
    """Keep all images of ``fraction`` of the classes (drawn with ``seed``): the class-growth upgrade."""
    classes = sorted({label for _, label in entries})
    chosen = set(random.Random(seed).sample(classes, max(1, round(fraction * len(classes)))))
    return [entry for entry in entries if entry[1] in chosen]


def split_file_name(fraction: float, by: str) -> str:
    return f"gldv2_train_old_{round(fraction * 100)}percent{'_class' if by == 'class' else ''}.txt"


# ----------------------------------------------------------------------------------------------- prepare-gldv2
def _image_path(folder: str, image_id: str) -> str:
    return f"{folder}/{image_id[0]}/{image_id[1]}/{image_id[2]}/{image_id}.jpg"


def prepare_gldv2(index_csv: str | Path, solution_csv: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Build the gallery list and public/private query lists with ground truth from the official CSVs.

    ``index.csv`` (column ``id``) gives the gallery rows; ``retrieval_solution_v2.1.csv`` (``id,images,Usage``)
    gives each test query's relevant index images (space-separated) and its split; ``Ignored`` rows are skipped.
    """
    index_csv, solution_csv = Path(index_csv), Path(solution_csv)
    rows = _read_csv(index_csv, ("id",))
    row_of = {row["id"]: i for i, row in enumerate(rows)}
    queries: dict[str, list[tuple[str, list[int]]]] = {"public": [], "private": []}
    for n, row in enumerate(_read_csv(solution_csv, ("id", "images", "Usage")), 2):
        usage = row["Usage"].strip().lower()
        if usage not in queries:
            continue
        missing = [g for g in row["images"].split() if g not in row_of]
        if missing:
            raise ValueError(f"{solution_csv}:{n}: index image {missing[0]} is not in {index_csv.name}")
        queries[usage].append((row["id"], [row_of[g] for g in row["images"].split()]))
    out = Path(out_dir)
    write_list(out / "gldv2_gallery_list.txt", [f"{_image_path('index', r['id'])} 0" for r in rows])
    for split, items in queries.items():
        write_list(out / f"gldv2_{split}_query_list.txt", [f"{_image_path('test', q)} 0" for q, _ in items])
        write_list(
            out / f"gldv2_{split}_query_gt.txt",
            [f"{_image_path('test', q)} {len(g)} {','.join(map(str, g))}" for q, g in items],
        )
    return {"gallery": len(rows), "public": len(queries["public"]), "private": len(queries["private"])}


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CSV file not found")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        absent = [c for c in columns if c not in (reader.fieldnames or [])]
        if absent:
            raise ValueError(f"{path}: missing column(s) {', '.join(absent)} (has {reader.fieldnames})")
        return list(reader)
