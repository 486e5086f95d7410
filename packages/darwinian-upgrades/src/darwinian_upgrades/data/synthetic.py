"""Synthetic landmarks in the GLDv2 file layout (plus a revisitop pickle), for the demo, tests and the acceptance run.

Each landmark is a smooth 16×16 RGB template: 3 Gaussian blobs of random colour (σ 0.12-0.3 of the side) plus a
stripe of random orientation (1.5-4 cycles), standardised. An image is the template shifted by ±3 px, contrast
× U(0.8, 1.2)(1 − 0.5q), plus Gaussian noise of std 0.2 + 0.9q, q ~ U(0, 1) its hidden quality (written to a side
file for the statistics only; no model reads it). Pixels are stored as 128 + 40·x in JPEG (quality 95), so the
loader with mean 0.5, std 40/255 recovers x up to JPEG rounding.
"""

from __future__ import annotations

import csv
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from darwinian_upgrades.config import ReproConfig
from darwinian_upgrades.data.gldv2 import split_by_data, split_file_name, write_list
from visioncore.files import atomic_write_text

SIDE, SHIFT = 16, 3
PIXEL_SCALE = 40.0
MEAN, STD = [0.5] * 3, [PIXEL_SCALE / 255.0] * 3


def make_template(rng: np.random.Generator) -> np.ndarray:
    """A standardised [3, 22, 22] canvas (16 px plus the ±3 px shift margin on each side)."""
    size = SIDE + 2 * SHIFT
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) - SHIFT  # coordinates of the central window
    canvas = np.zeros((3, size, size))
    for _ in range(3):
        cy, cx = rng.uniform(0, SIDE, 2)
        sigma = rng.uniform(0.12, 0.3) * SIDE
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        canvas += rng.normal(0, 1, 3)[:, None, None] * blob
    angle, cycles, phase = rng.uniform(0, np.pi), rng.uniform(1.5, 4.0), rng.uniform(0, 2 * np.pi)
    stripe = np.sin(2 * np.pi * cycles * (xx * np.cos(angle) + yy * np.sin(angle)) / SIDE + phase)
    canvas += rng.normal(0, 1, 3)[:, None, None] * stripe
    centre = canvas[:, SHIFT : SHIFT + SIDE, SHIFT : SHIFT + SIDE]
    return (canvas - centre.mean()) / centre.std()


def render(template: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One image [3, 16, 16] (standardised units) of a template and its quality q."""
    q = float(rng.uniform())
    dy, dx = rng.integers(-SHIFT, SHIFT + 1, 2)
    window = template[:, SHIFT + dy : SHIFT + dy + SIDE, SHIFT + dx : SHIFT + dx + SIDE]
    contrast = rng.uniform(0.8, 1.2) * (1 - 0.5 * q)
    return contrast * window + rng.normal(0, 0.2 + 0.9 * q, window.shape), q


def jpeg_bytes(image: np.ndarray) -> bytes:
    pixels = np.clip(np.round(128 + PIXEL_SCALE * image), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@dataclass
class _Item:
    path: str
    landmark: int
    quality: float


def _write(root: Path, folder: str, image: np.ndarray, rng: np.random.Generator) -> str:
    image_id = f"{int(rng.integers(0, 2**63)):016x}"
    rel = f"{folder}/{image_id[0]}/{image_id[1]}/{image_id[2]}/{image_id}.jpg"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(jpeg_bytes(image))
    return rel


def _test_split(root: Path, folder: str, templates, landmarks, n_query, n_gallery, rng) -> list[list[_Item]]:
    queries, gallery = [], []
    for lm in landmarks:
        for j in range(n_query + n_gallery):
            image, q = render(templates[lm], rng)
            item = _Item(_write(root, "test" if j < n_query else "index", image, rng), lm, q)
            (queries if j < n_query else gallery).append(item)
    return [queries, gallery]


def _write_test_lists(folder: Path, queries: list[_Item], gallery: list[_Item]) -> None:
    rows: dict[int, list[int]] = {}
    for i, item in enumerate(gallery):
        rows.setdefault(item.landmark, []).append(i)
    write_list(folder / "gldv2_gallery_list.txt", [f"{g.path} 0" for g in gallery])
    write_list(folder / "gldv2_private_query_list.txt", [f"{q.path} 0" for q in queries])
    gt = [f"{q.path} {len(rows[q.landmark])} {','.join(map(str, rows[q.landmark]))}" for q in queries]
    write_list(folder / "gldv2_private_query_gt.txt", gt)


def _write_revisitop(root: Path, queries: list[_Item], gallery: list[_Item]) -> None:
    """A revisitop gnd of the novel landmarks: clean gallery images (q < 0.5) easy, noisy ones hard."""
    folder = root / "roxford" / "jpg"
    folder.mkdir(parents=True, exist_ok=True)
    for item in queries + gallery:
        (folder / f"{Path(item.path).stem}.jpg").write_bytes((root / item.path).read_bytes())
    gnd = []
    for q in queries:
        same = [i for i, g in enumerate(gallery) if g.landmark == q.landmark]
        gnd.append(
            {
                "easy": [i for i in same if gallery[i].quality < 0.5],
                "hard": [i for i in same if gallery[i].quality >= 0.5],
                "junk": [],
                "bbx": [0.0, 0.0, float(SIDE), float(SIDE)],
            }
        )
    obj = {
        "imlist": [Path(g.path).stem for g in gallery],
        "qimlist": [Path(q.path).stem for q in queries],
        "gnd": gnd,
    }
    (root / "annotation" / "roxford").mkdir(parents=True, exist_ok=True)
    (root / "annotation" / "roxford" / "roxford.pkl").write_bytes(pickle.dumps(obj, protocol=2))


def make_synthetic(root: str | Path, cfg: ReproConfig, seed: int = 0) -> dict[str, int]:
    """Write the synthetic data set under ``root`` (GLDv2 layout, ``annotation/gldv2_open`` for the novel
    landmarks, ``annotation/quality.csv``, ``annotation/roxford/roxford.pkl``); returns the counts."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    templates = [make_template(rng) for _ in range(cfg.landmarks)]
    train: list[_Item] = []
    for lm in range(cfg.train_landmarks):
        for _ in range(cfg.images_per_landmark):
            image, q = render(templates[lm], rng)
            train.append(_Item(_write(root, "train", image, rng), lm, q))
    seen = range(cfg.train_landmarks)
    novel = range(cfg.train_landmarks, cfg.landmarks)
    test_q, test_g = _test_split(root, "test", templates, seen, cfg.queries, cfg.gallery, rng)
    open_q, open_g = _test_split(root, "test", templates, novel, cfg.open_queries, cfg.open_gallery, rng)
    ann = root / "annotation"
    entries = [(t.path, t.landmark) for t in train]
    write_list(ann / "gldv2" / "label_81313.txt", [f"{p} {lab}" for p, lab in entries])
    old = split_by_data(entries, cfg.old_fraction, seed=666)
    write_list(ann / "gldv2" / split_file_name(cfg.old_fraction, "data"), [f"{p} {lab}" for p, lab in old])
    _write_test_lists(ann / "gldv2", test_q, test_g)
    _write_test_lists(ann / "gldv2_open", open_q, open_g)
    _write_revisitop(root, open_q, open_g)
    rows = [f"{i.path},{i.landmark},{i.quality:.6f}\n" for i in train + test_q + test_g + open_q + open_g]
    atomic_write_text(ann / "quality.csv", "path,landmark,quality\n" + "".join(rows))
    return {
        "train": len(train),
        "old": len(old),
        "queries": len(test_q),
        "gallery": len(test_g),
        "open_queries": len(open_q),
        "open_gallery": len(open_g),
    }


def read_quality(path: str | Path) -> dict[str, float]:
    """The hidden quality q of each synthetic image (statistics only)."""
    with Path(path).open(newline="") as fh:
        return {row["path"]: float(row["quality"]) for row in csv.DictReader(fh)}
