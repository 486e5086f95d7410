"""Official split lists of HMDB51 (``<class>_test_split{1,2,3}.txt``) and UCF101 (``ucfTrainTestlist/``)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

__all__ = ["VideoItem", "VideoSplit", "find_split_lists", "hmdb51_split", "load_split", "ucf101_split"]


class VideoItem(NamedTuple):
    """One video: its file, action label (index into ``VideoSplit.classes``), class folder and file stem."""

    path: Path
    label: int
    class_name: str
    stem: str


class VideoSplit(NamedTuple):
    classes: list[str]
    train: list[VideoItem]
    test: list[VideoItem]


def _check_split(split: int) -> None:
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split}")


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _check_videos(items: list[VideoItem], source: Path, check: bool) -> None:
    if not check:
        return
    missing = [item.path for item in items if not item.path.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"{source}: names a video that does not exist: {missing[0]}{more}")


def hmdb51_split(videos: str | Path, splits: str | Path, split: int = 1, *, check: bool = True) -> VideoSplit:
    """HMDB51: ``<class>_test_split<N>.txt`` lines ``name.avi 0|1|2`` (1 = train, 2 = test, 0 = unused).

    Videos live at ``videos/<class>/<name>``; classes are sorted by name (label = position).
    """
    _check_split(split)
    videos, splits = Path(videos), Path(splits)
    suffix = f"_test_split{split}.txt"
    files = sorted(splits.glob(f"*{suffix}")) if splits.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no HMDB51 split files *{suffix} in {splits}")
    classes = [f.name[: -len(suffix)] for f in files]
    train: list[VideoItem] = []
    test: list[VideoItem] = []
    for label, (name, file) in enumerate(zip(classes, files)):
        part: list[VideoItem] = []
        for line in _lines(file):
            fields = line.split()
            if len(fields) != 2 or fields[1] not in {"0", "1", "2"}:
                raise ValueError(f"{file}: line {line!r} is not 'name.avi 0|1|2'")
            if fields[1] == "0":
                continue
            item = VideoItem(videos / name / fields[0], label, name, Path(fields[0]).stem)
            part.append(item)
            (train if fields[1] == "1" else test).append(item)
        _check_videos(part, file, check)
    return VideoSplit(classes, train, test)


def ucf101_split(videos: str | Path, splits: str | Path, split: int = 1, *, check: bool = True) -> VideoSplit:
    """UCF101: ``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0N.txt`` (``Class/v_x.avi 1``), ``testlist0N.txt``.

    Videos live at ``videos/<Class>/<name>``; the label is the 1-based classInd index minus one.
    """
    _check_split(split)
    videos, splits = Path(videos), Path(splits)
    index: dict[str, int] = {}
    for line in _lines(splits / "classInd.txt"):
        number, name = line.split()
        index[name] = int(number) - 1
    classes = [name for name, _ in sorted(index.items(), key=lambda kv: kv[1])]
    parts = {}
    for subset in ("train", "test"):
        file = splits / f"{subset}list0{split}.txt"
        items = []
        for line in _lines(file):
            rel = line.split()[0]
            name = rel.split("/")[0]
            if name not in index:
                raise ValueError(f"{file}: class {name!r} is not in classInd.txt")
            items.append(VideoItem(videos / rel, index[name], name, Path(rel).stem))
        _check_videos(items, file, check)
        parts[subset] = items
    return VideoSplit(classes, parts["train"], parts["test"])


def find_split_lists(root: str | Path, split: int = 1) -> tuple[str, Path]:
    """Which official layout ``root`` holds: ``("hmdb51", dir)`` or ``("ucf101", dir)`` (also ``root/ucfTrainTestlist``)."""
    root = Path(root)
    for folder in (root, root / "ucfTrainTestlist", root / "splits", root / "testTrainMulti_7030_splits"):
        if (folder / "classInd.txt").is_file() and (folder / f"trainlist0{split}.txt").is_file():
            return "ucf101", folder
        if folder.is_dir() and any(folder.glob(f"*_test_split{split}.txt")):
            return "hmdb51", folder
    raise FileNotFoundError(
        f"no HMDB51 (*_test_split{split}.txt) or UCF101 (classInd.txt) split lists under {root}"
    )


def load_split(
    dataset: str, videos: str | Path, splits: str | Path, split: int = 1, *, check: bool = True
) -> VideoSplit:
    """``hmdb51`` or ``ucf101`` split lists by name."""
    if dataset == "hmdb51":
        return hmdb51_split(videos, splits, split, check=check)
    if dataset == "ucf101":
        return ucf101_split(videos, splits, split, check=check)
    raise ValueError(f"unknown dataset {dataset!r} (known: hmdb51, ucf101)")
