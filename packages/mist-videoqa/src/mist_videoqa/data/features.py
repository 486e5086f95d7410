"""h5 feature files in the released layout.

``feats/<ds>/frame_feat/clip_patch_feat_all.h5``: ``ids`` (N,) byte strings and ``features`` (N, 32, 17, D), slot 0
the frame's CLIP embedding and slots 1..16 the 4x4 crops, row-major. ``feats/<ds>/text_feat/clip_text_feat.h5``:
``ids`` (question ids) and ``features`` (N, D), the CLIP text EOT embeddings of the questions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from visioncore.files import atomic_path

__all__ = ["FeatureStore", "write_features"]


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class FeatureStore:
    """Rows of an h5 ``features`` array looked up by key, checked against the expected trailing shape.

    ``row_keys`` replaces the file's ``ids`` (STAR: row i belongs to ``qid.json[i][0]``). With ``preload`` the array
    is read into memory once; otherwise each lookup reads one row (the file is reopened in every worker process).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape: tuple[int, ...],
        *,
        row_keys: Sequence[str] | None = None,
        preload: bool = False,
        what: str = "features",
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: {what} file not found")
        try:
            with h5py.File(self.path, "r") as f:
                if "features" not in f or (row_keys is None and "ids" not in f):
                    raise ValueError(
                        f"{self.path}: expected datasets 'ids' and 'features', found {sorted(f)}"
                    )
                found = tuple(f["features"].shape)
                keys = list(row_keys) if row_keys is not None else [_decode(v) for v in f["ids"][()]]
                self._data = f["features"][()] if preload else None  # kept in the file's dtype
        except OSError as err:
            raise ValueError(f"{self.path}: not a readable h5 file ({err})") from None
        if found[1:] != tuple(shape):
            want = ", ".join(str(s) for s in ("N", *shape))
            raise ValueError(
                f"{self.path}: features of shape {found}, expected ({want}) (check model.feature_dim)"
            )
        if len(keys) != found[0]:
            raise ValueError(f"{self.path}: {len(keys)} ids for {found[0]} feature rows")
        self.rows = {key: i for i, key in enumerate(keys)}
        self._file: h5py.File | None = None
        self._pid = -1

    def check(self, keys: Sequence[str], source: str) -> None:
        """Refuse keys (video or question ids) that the file lacks, listing and counting them."""
        missing = sorted({k for k in keys if k not in self.rows})
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise ValueError(f"{self.path}: {len(missing)} id(s) of {source} missing: {shown}")

    def __getitem__(self, key: str) -> np.ndarray:
        row = self.rows[key]
        if self._data is not None:
            return self._data[row].astype(np.float32)
        if self._file is None or self._pid != os.getpid():  # h5py handles do not survive fork
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._file["features"][row].astype(np.float32)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, -1
        return state


def write_features(
    path: str | os.PathLike, ids: Sequence[str], features: np.ndarray, dtype: str = "float16"
) -> Path:
    """Write ``ids`` and ``features`` atomically (the file appears complete or not at all)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width = max(1, max((len(i.encode()) for i in ids), default=1))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("ids", data=np.array([i.encode() for i in ids], dtype=f"S{width}"))
        f.create_dataset("features", data=np.asarray(features, dtype=dtype))
    return path
