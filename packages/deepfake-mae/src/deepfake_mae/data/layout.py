"""FaceForensics++ in the RealForensics layout, plus the Celeb-DF / DFDC test lists.

```
<root>/{Real,Deepfakes,FaceSwap,Face2Face,NeuralTextures,FaceShifter,DeeperForensics}/c23/
    videos/<name>.mp4   landmarks/<name>.npy (T, 68|5, 2)   cropped_faces/<name>.avi (FFV1)
<root>/splits/{train,val,test}.json       # [[target, source], ...] FF++ id pairs
```
Real videos are named by id (`000`), fakes by `target_source` (`000_003`). Labels: fake = 1.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COMPRESSION = "c23"
REAL = "Real"
FFPP_METHODS = ("Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures")
FACE_SUFFIXES = (".avi", ".mp4")


class SplitError(ValueError):
    """A split file that is missing, malformed, or leaks identities into another split."""


class MissingLandmarksError(FileNotFoundError):
    """A video without its landmarks file."""


@dataclass(frozen=True)
class VideoRecord:
    name: str
    method: str
    label: int  # fake = 1
    face_path: Path
    landmark_path: Path | None

    @property
    def key(self) -> str:
        return f"{self.method}/{self.name}"


def load_split(root: str | Path, split: str) -> list[tuple[str, str]]:
    """The official FF++ `splits/<split>.json` list of [target, source] pairs."""
    path = Path(root) / "splits" / f"{split}.json"
    if not path.is_file():
        raise SplitError(f"{path}: split file not found")
    try:
        pairs = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SplitError(f"{path}: not valid JSON ({err.msg})") from None
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise SplitError(f"{path}: expected a list of [target, source] pairs")
    return [(str(a), str(b)) for a, b in pairs]


def check_no_identity_leak(splits: dict[str, list[tuple[str, str]]]) -> None:
    """Raise SplitError when an id appears in two splits (FF++ splits are by pair; ids must not cross)."""
    owner: dict[str, str] = {}
    for split, pairs in splits.items():
        for vid in {v for pair in pairs for v in pair}:
            if owner.setdefault(vid, split) != split:
                raise SplitError(f"identity {vid} appears in both the {owner[vid]} and {split} splits")


def load_splits(
    root: str | Path, names: tuple[str, ...] = ("train", "val", "test")
) -> dict[str, list[tuple[str, str]]]:
    splits = {name: load_split(root, name) for name in names}
    check_no_identity_leak(splits)
    return splits


def split_video_names(pairs: list[tuple[str, str]], method: str) -> list[str]:
    """Real videos are the pair ids; each pair gives two fakes per method, `a_b` and `b_a`."""
    if method == REAL:
        return sorted({v for pair in pairs for v in pair})
    return sorted({f"{a}_{b}" for a, b in pairs} | {f"{b}_{a}" for a, b in pairs})


def find_face_video(folder: Path, name: str) -> Path:
    for suffix in FACE_SUFFIXES:
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"{folder / name}.avi: cropped face video not found")


def make_record(root: Path, method: str, name: str, require_landmarks: bool = True) -> VideoRecord:
    base = Path(root) / method / COMPRESSION
    face = find_face_video(base / "cropped_faces", name)
    landmarks = base / "landmarks" / f"{name}.npy"
    if not landmarks.is_file():
        if require_landmarks:
            raise MissingLandmarksError(f"{landmarks}: landmarks file not found for video {face.name}")
        landmarks = None
    return VideoRecord(name, method, 0 if method == REAL else 1, face, landmarks)


def ffpp_records(
    root: str | Path, split: str, methods: tuple[str, ...], require_landmarks: bool = True
) -> list[VideoRecord]:
    """Records of `split` (leak-checked against the other split files present) for Real and/or fake `methods`."""
    root = Path(root)
    present = tuple(s for s in ("train", "val", "test") if (root / "splits" / f"{s}.json").is_file())
    splits = load_splits(root, tuple(dict.fromkeys((*present, split))))
    pairs = splits[split]
    return [
        make_record(root, method, name, require_landmarks)
        for method in methods
        for name in split_video_names(pairs, method)
    ]


def list_records(
    root: str | Path, list_file: str | Path, method: str = "", require_landmarks: bool = True
) -> list[VideoRecord]:
    """Records from a `name label` CSV (RealForensics `test_real.csv` / `test_fake.csv`, Celeb-DF, DFDC `test.csv`).

    Names may carry a suffix (`000_003.avi`); files live in `<root>/<method>/c23/cropped_faces/` when `method` is given,
    else directly under `<root>/cropped_faces/`.
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"{list_file}: list file not found")
    root = Path(root)
    base = root / method / COMPRESSION if method else root
    records = []
    with list_file.open() as f:
        for row_no, row in enumerate(csv.reader(f, delimiter=" "), 1):
            row = [c for c in row if c]
            if not row:
                continue
            if len(row) != 2 or row[1] not in ("0", "1"):
                raise ValueError(
                    f"{list_file}:{row_no}: expected 'name label' with label 0 (real) or 1 (fake)"
                )
            name = Path(row[0]).stem
            face = find_face_video(base / "cropped_faces", name)
            landmarks = base / "landmarks" / f"{name}.npy"
            if not landmarks.is_file():
                if require_landmarks:
                    raise MissingLandmarksError(
                        f"{landmarks}: landmarks file not found for video {face.name}"
                    )
                landmarks = None
            records.append(VideoRecord(name, method or root.name, int(row[1]), face, landmarks))
    return records


def dfdc_labels(metadata_json: str | Path) -> dict[str, int]:
    """DFDC `metadata.json` -> {video stem: label}; uses `is_fake` (or `label` == "FAKE")."""
    path = Path(metadata_json)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: DFDC metadata file not found")
    meta = json.loads(path.read_text())
    labels = {}
    for name, entry in meta.items():
        fake = entry.get("is_fake", entry.get("label") == "FAKE")
        labels[Path(name).stem] = int(bool(fake))
    return labels


def load_landmarks(path: str | Path, num_frames: int | None = None) -> np.ndarray:
    """(T, 68, 2) or (T, 5, 2) float32 landmarks; any other shape (or a frame-count mismatch) is bad input."""
    path = Path(path)
    if not path.is_file():
        raise MissingLandmarksError(f"{path}: landmarks file not found")
    arr = np.load(path, allow_pickle=False)
    if arr.ndim != 3 or arr.shape[1:] not in ((68, 2), (5, 2)):
        raise ValueError(f"{path}: landmarks must have shape (T, 68, 2) or (T, 5, 2), got {arr.shape}")
    if num_frames is not None and arr.shape[0] < num_frames:
        raise ValueError(f"{path}: {arr.shape[0]} landmark frames for a video of {num_frames} frames")
    return arr.astype(np.float32)


def balance_real_fake(records: list[VideoRecord], rng: np.random.Generator) -> list[VideoRecord]:
    """Oversample the minority class (FF++ has 4 fakes per real) by sampling with replacement."""
    real = [r for r in records if r.label == 0]
    fake = [r for r in records if r.label == 1]
    if not real or not fake:
        return list(records)
    small, large = (real, fake) if len(real) < len(fake) else (fake, real)
    extra = [small[i] for i in rng.integers(len(small), size=len(large) - len(small))]
    return large + small + extra
