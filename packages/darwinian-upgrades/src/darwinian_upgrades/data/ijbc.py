"""IJB-C meta files (insightface layout): ``IJBC/meta/ijbc_face_tid_mid.txt`` (image, template, media),
``ijbc_template_pair_label.txt`` (template 1, template 2, same), ``ijbc_name_5pts_score.txt`` (image, 10 landmark
coordinates, detector score), and the 1:N CSVs ``ijbc_1N_gallery_G{1,2}.csv``, ``ijbc_1N_probe_mixed.csv``."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _rows(path: Path, width: int) -> list[list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: IJB-C meta file not found")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != width:
            raise ValueError(f"{path}:{n}: expected {width} fields, got {len(parts)}")
        rows.append(parts)
    return rows


@dataclass
class IJBCMeta:
    images: list[str]
    templates: np.ndarray
    media: np.ndarray
    pairs: np.ndarray  # [P, 2] template ids
    pair_labels: np.ndarray  # [P] 1 = same identity
    landmarks: np.ndarray  # [N, 5, 2]
    scores: np.ndarray  # [N] detector scores (used as image weights)


def load_meta(root: str | Path) -> IJBCMeta:
    meta = Path(root) / "meta"
    faces = _rows(meta / "ijbc_face_tid_mid.txt", 3)
    pairs = _rows(meta / "ijbc_template_pair_label.txt", 3)
    points = _rows(meta / "ijbc_name_5pts_score.txt", 12)
    names = [r[0] for r in faces]
    if [r[0] for r in points] != names:
        raise ValueError(
            f"{meta}: ijbc_name_5pts_score.txt does not list the images of ijbc_face_tid_mid.txt"
        )
    try:
        return IJBCMeta(
            images=names,
            templates=np.array([int(r[1]) for r in faces]),
            media=np.array([int(r[2]) for r in faces]),
            pairs=np.array([[int(r[0]), int(r[1])] for r in pairs]).reshape(-1, 2),
            pair_labels=np.array([int(r[2]) for r in pairs]),
            landmarks=np.array([[float(x) for x in r[1:11]] for r in points]).reshape(-1, 5, 2),
            scores=np.array([float(r[11]) for r in points]),
        )
    except ValueError as err:
        raise ValueError(f"{meta}: non-numeric field in the IJB-C meta files ({err})") from None


def load_1n_csv(path: str | Path) -> list[tuple[int, int, str]]:
    """(template id, subject id, file name) rows of ``ijbc_1N_*.csv`` (header TEMPLATE_ID,SUBJECT_ID,FILENAME,...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: IJB-C 1:N file not found")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"TEMPLATE_ID", "SUBJECT_ID", "FILENAME"}
        if not need <= set(reader.fieldnames or []):
            raise ValueError(f"{path}: needs columns {', '.join(sorted(need))}")
        return [(int(r["TEMPLATE_ID"]), int(r["SUBJECT_ID"]), r["FILENAME"]) for r in reader]
