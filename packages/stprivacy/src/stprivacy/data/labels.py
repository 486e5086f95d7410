"""The official privacy-attribute pickles: dict ``"<Class>/<stem>.mp4"`` -> int64 array (1, 5), values {0, 1}.

The keys end in ``.mp4`` while the videos are ``.avi``: labels are matched on (class folder, file stem). The order of
the five attributes is not documented upstream; names are by position and configurable. ``DEFAULT_NAMES`` follows one
third-party loader; the positive rates (position 0 about 0.9, position 1 about 0.6) fit PA-HMDB51's order (skin colour,
face, gender, nudity, relationship) at least as well: check with ``stprivacy labels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visioncore.safe_pickle import NUMPY_GLOBALS, restricted_load

from .splits import VideoItem

__all__ = ["DEFAULT_NAMES", "PrivacyLabels", "load_privacy_labels"]

DEFAULT_NAMES = ("face", "skin_color", "gender", "nudity", "relationship")


class PrivacyLabels:
    """Labels keyed by (class folder, video stem); ``names`` give the attribute at each position."""

    def __init__(self, table: dict[tuple[str, str], np.ndarray], names: Sequence[str], source: str = ""):
        self.table = table
        self.names = tuple(names)
        self.source = source

    def __len__(self) -> int:
        return len(self.table)

    def __contains__(self, item: VideoItem) -> bool:
        return (item.class_name, item.stem) in self.table

    def __getitem__(self, item: VideoItem) -> np.ndarray:
        try:
            return self.table[(item.class_name, item.stem)]
        except KeyError:
            raise KeyError(f"{self.source}: no privacy label for {item.class_name}/{item.stem}") from None

    def matrix(self) -> np.ndarray:
        """All labels as an int64 [num_videos, num_attributes] array."""
        return np.stack(list(self.table.values())) if self.table else np.zeros((0, len(self.names)), np.int64)

    def positive_rates(self) -> dict[str, float]:
        m = self.matrix()
        return {name: float(m[:, i].mean()) if len(m) else float("nan") for i, name in enumerate(self.names)}


def load_privacy_labels(path: str | Path, names: Sequence[str] = DEFAULT_NAMES) -> PrivacyLabels:
    """Read an official label pickle through the restricted unpickler (numpy arrays only; nothing else is run)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"privacy label file not found: {path}")
    data = restricted_load(path, allowed=NUMPY_GLOBALS)
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: expected a dict of '<Class>/<stem>.mp4' -> (1, {len(names)}) arrays, got {type(data).__name__}"
        )
    table: dict[tuple[str, str], np.ndarray] = {}
    for key, value in data.items():
        if not isinstance(key, str) or key.count("/") != 1:
            raise ValueError(f"{path}: key {key!r} is not '<Class>/<stem>.mp4'")
        arr = np.asarray(value)
        if arr.shape not in {(1, len(names)), (len(names),)} or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(
                f"{path}: label of {key!r} is {arr.dtype} {arr.shape}, expected an integer (1, {len(names)}) array"
            )
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{path}: label of {key!r} has values other than 0 and 1: {arr.tolist()}")
        cls, file = key.split("/")
        table[(cls, Path(file).stem)] = arr.reshape(-1).astype(np.int64)
    return PrivacyLabels(table, names, str(path))
