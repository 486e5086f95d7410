"""Revisited Oxford/Paris (revisitop) ground truth: ``annotation/roxford/{roxford,rparis}.pkl`` and flat image
folders. The pickle is read by ``visioncore.safe_pickle`` (numpy arrays and plain containers only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class RevisitopGnd:
    """``imlist`` (database image names), ``qimlist`` (query names), ``gnd`` (per query easy/hard/junk/bbx)."""

    imlist: list[str]
    qimlist: list[str]
    gnd: list[dict]


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def load_gnd(path: str | Path) -> RevisitopGnd:
    """Read a revisitop gnd pickle; forbidden globals raise ``UnsafePickleError`` (a ValueError) naming them."""
    from visioncore.safe_pickle import BUILTIN_CONTAINER_GLOBALS, NUMPY_GLOBALS, restricted_load

    path = Path(path)
    # revisitop ships python-2 pickles: their byte strings decode as latin-1
    obj = restricted_load(path, allowed=NUMPY_GLOBALS | BUILTIN_CONTAINER_GLOBALS, encoding="latin1")
    if isinstance(obj, dict):
        obj = {_text(k): v for k, v in obj.items()}
    if not isinstance(obj, dict) or not {"imlist", "qimlist", "gnd"} <= obj.keys():
        raise ValueError(f"{path}: not a revisitop gnd file (needs imlist, qimlist, gnd)")
    gnd = []
    for i, entry in enumerate(obj["gnd"]):
        entry = {_text(k): v for k, v in dict(entry).items()}
        if not {"easy", "hard", "junk"} <= entry.keys():
            raise ValueError(f"{path}: gnd entry {i} lacks easy/hard/junk")
        gnd.append(
            {k: [int(x) for x in entry[k]] for k in ("easy", "hard", "junk")}
            | {"bbx": [float(x) for x in entry.get("bbx", [])]}
        )
    if len(gnd) != len(obj["qimlist"]):
        raise ValueError(f"{path}: {len(obj['qimlist'])} queries but {len(gnd)} gnd entries")
    return RevisitopGnd([_text(x) for x in obj["imlist"]], [_text(x) for x in obj["qimlist"]], gnd)


def image_path(folder: str | Path, name: str) -> Path:
    """revisitop names images without extension: ``<folder>/<name>.jpg``."""
    return Path(folder) / f"{name}.jpg"
