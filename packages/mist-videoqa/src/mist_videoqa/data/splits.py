"""``make-splits``: a real validation split carved out of train by video (AGQA / Env-QA open-ended layouts).

The released AGQA "val" file is the AGQA 2.0 balanced *test* split (1,600,894 + 669,207 = the 2.27M total), and the
released training scripts select checkpoints on it. This rebuilds ``train`` / ``val`` / ``test`` so that no video of
the new val split is in train and model selection never sees test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from mist_videoqa.data.annotations import annotation_path, read_json_array
from visioncore.files import atomic_write_json

__all__ = ["make_splits"]


def make_splits(
    root: str | Path,
    out: str | Path,
    *,
    dataset: str = "agqa",
    val_fraction: float = 0.1,
    seed: int = 0,
    test_from: str = "test",
) -> dict[str, int]:
    """Write ``out/datasets/<dataset>/`` with train (minus val videos), val and test (copied from ``test_from``)."""
    if dataset not in ("agqa", "envqa"):
        raise ValueError(f"make-splits supports the open-ended JSON layouts agqa and envqa, not {dataset!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in (0, 1), got {val_fraction}")
    train_path = annotation_path(root, dataset, "train")
    train = read_json_array(train_path)
    test = read_json_array(annotation_path(root, dataset, test_from))
    videos = sorted({str(item["video_id"]) for item in train})
    rng = np.random.default_rng(seed)
    n_val = max(1, round(len(videos) * val_fraction))
    val_videos = set(rng.choice(videos, n_val, replace=False).tolist())
    parts = {
        "train": [it for it in train if str(it["video_id"]) not in val_videos],
        "val": [it for it in train if str(it["video_id"]) in val_videos],
        "test": test,
    }
    folder = Path(out) / "datasets" / dataset
    for split, items in parts.items():
        atomic_write_json(annotation_path(out, dataset, split), items)
    vocab = Path(root) / "datasets" / dataset / "vocab.json"
    if vocab.is_file():
        shutil.copyfile(vocab, folder / "vocab.json")
    atomic_write_json(
        folder / "splits.json", {"seed": seed, "val_fraction": val_fraction, "val_videos": n_val}
    )
    return {split: len(items) for split, items in parts.items()}
