"""The PTP pretraining corpus TSV (``metadata/4M_corpus.tsv``) and ``tag``, which builds one from detections.

One row per (image, caption), no header, tab-separated::

    CC3M/images/train/1597/3250687125.jpg   <caption or "['cap', ...]">   [[340, 226, 417, 323], ...]   ['pillow', ...]

Boxes are ``[x1, y1, x2, y2]`` in original pixels (JSON), class names a Python list literal; both are parsed with
``json`` / ``ast.literal_eval`` (never ``eval``). Detections come as VinVL ``predictions.tsv`` (``key<TAB>{"objects":
[{"rect", "class", "conf"}], "image_h", "image_w"}``) or a JSON object mapping the image path to that record.
"""

from __future__ import annotations

import ast
import csv
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ptp_vlp.prompts import MAX_OBJECTS

__all__ = ["CorpusError", "CorpusRow", "format_row", "read_corpus", "read_detections", "tag_corpus"]

csv.field_size_limit(sys.maxsize)  # caption lists of the 14M corpus exceed csv's default 128 KB


class CorpusError(ValueError):
    """A corpus, captions or detections file that cannot be parsed; the message names the file and line."""


@dataclass(frozen=True)
class CorpusRow:
    image: str
    caption: str | tuple[str, ...]
    boxes: tuple[tuple[float, float, float, float], ...]
    names: tuple[str, ...]


def _parse_caption(text: str, where: str) -> str | tuple[str, ...]:
    if not text.startswith("["):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as err:
        raise CorpusError(f"{where}: caption list is not a Python list literal ({err})") from None
    if not (isinstance(value, list) and value and all(isinstance(c, str) for c in value)):
        raise CorpusError(f"{where}: caption list must be a non-empty list of strings")
    return tuple(value)


def _parse_boxes(text: str, where: str) -> tuple[tuple[float, float, float, float], ...]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise CorpusError(f"{where}: boxes are not JSON ({err.msg})") from None
    if not isinstance(value, list):
        raise CorpusError(f"{where}: boxes must be a JSON list of [x1, y1, x2, y2]")
    boxes = []
    for i, box in enumerate(value):
        ok = isinstance(box, list) and len(box) == 4
        ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
        if not ok:
            raise CorpusError(f"{where}: box {i} is not 4 numbers: {box!r}")
        x1, y1, x2, y2 = (float(v) for v in box)
        if x2 < x1 or y2 < y1:
            raise CorpusError(f"{where}: box {i} has x2 < x1 or y2 < y1: {box!r}")
        boxes.append((x1, y1, x2, y2))
    return tuple(boxes)


def _parse_names(text: str, where: str) -> tuple[str, ...]:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as err:
        raise CorpusError(f"{where}: class names are not a Python list literal ({err})") from None
    if not (isinstance(value, list) and all(isinstance(n, str) for n in value)):
        raise CorpusError(f"{where}: class names must be a list of strings")
    return tuple(value)


def parse_row(fields: Sequence[str], where: str) -> CorpusRow:
    """One TSV row (4 columns) -> ``CorpusRow``; ``where`` ("file:line") names it in errors."""
    if len(fields) != 4:
        raise CorpusError(f"{where}: expected 4 tab-separated columns, got {len(fields)}")
    image, caption, boxes, names = fields
    if not image:
        raise CorpusError(f"{where}: empty image path")
    row = CorpusRow(
        image, _parse_caption(caption, where), _parse_boxes(boxes, where), _parse_names(names, where)
    )
    if len(row.boxes) != len(row.names):
        raise CorpusError(f"{where}: {len(row.boxes)} boxes but {len(row.names)} class names")
    return row


def read_corpus(path: str | Path) -> list[CorpusRow]:
    """All rows of a corpus TSV; a missing file is ``FileNotFoundError``, a bad row ``CorpusError`` (file:line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        for line_no, fields in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if fields:
                rows.append(parse_row(fields, f"{path}:{line_no}"))
    if not rows:
        raise CorpusError(f"{path}: the corpus is empty")
    return rows


def format_row(row: CorpusRow) -> str:
    """The TSV line of a row (the inverse of ``parse_row``); boxes are written as ints when they are whole."""
    caption = repr(list(row.caption)) if isinstance(row.caption, tuple) else row.caption
    boxes = [[int(v) if float(v).is_integer() else v for v in b] for b in row.boxes]
    for text in (row.image, caption):
        if "\t" in text or "\n" in text:
            raise CorpusError(f"{row.image}: tabs and newlines cannot be written into the TSV")
    return "\t".join([row.image, caption, json.dumps(boxes), repr(list(row.names))])


# ------------------------------------------------------------------------------------------------------- tag


def _objects(record: object, where: str, min_conf: float) -> tuple[list[list[float]], list[str]]:
    if not isinstance(record, dict) or not isinstance(record.get("objects"), list):
        raise CorpusError(f"{where}: a detection record must be an object with an 'objects' list")
    boxes, names = [], []
    for i, obj in enumerate(record["objects"]):
        if not isinstance(obj, dict) or "rect" not in obj or "class" not in obj:
            raise CorpusError(f"{where}: object {i} needs 'rect' and 'class'")
        if float(obj.get("conf", 1.0)) < min_conf:
            continue
        boxes.append(obj["rect"])
        names.append(str(obj["class"]))
        if len(boxes) == MAX_OBJECTS:
            break
    _parse_boxes(json.dumps(boxes), where)  # same checks as the corpus reader
    return boxes, names


def read_detections(path: str | Path) -> dict[str, dict]:
    """Image key -> detection record, from VinVL ``predictions.tsv`` or a JSON object."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detections file not found: {path}")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise CorpusError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from None
        if not isinstance(data, dict):
            raise CorpusError(f"{path}: expected a JSON object mapping image path to a detection record")
        return data
    records = {}
    with path.open(newline="", encoding="utf-8") as f:
        for line_no, fields in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not fields:
                continue
            if len(fields) != 2:
                raise CorpusError(
                    f"{path}:{line_no}: expected 2 tab-separated columns (key, JSON), got {len(fields)}"
                )
            try:
                records[fields[0]] = json.loads(fields[1])
            except json.JSONDecodeError as err:
                raise CorpusError(f"{path}:{line_no}: record is not JSON ({err.msg})") from None
    return records


def _lookup(records: dict[str, dict], image: str) -> dict | None:
    """VinVL keys are often the file stem; accept the full relative path, the file name or the stem."""
    name = Path(image).name
    for key in (image, name, Path(name).stem):
        if key in records:
            return records[key]
    return None


def tag_corpus(
    captions_path: str | Path, detections_path: str | Path, *, min_conf: float = 0.0
) -> tuple[list[CorpusRow], int]:
    """Corpus rows from BLIP-style captions (``[{"image", "caption"}]``) and detections; also the count of images
    without a detection record (they get no objects, hence no prompt)."""
    captions_path = Path(captions_path)
    if not captions_path.is_file():
        raise FileNotFoundError(f"captions file not found: {captions_path}")
    try:
        entries = json.loads(captions_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CorpusError(f"{captions_path}: not JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(entries, list):
        raise CorpusError(f"{captions_path}: expected a JSON list of {{'image', 'caption'}}")
    records = read_detections(detections_path)
    rows, missing = [], 0
    for i, entry in enumerate(entries):
        where = f"{captions_path}: entry {i}"
        if not isinstance(entry, dict) or "image" not in entry or "caption" not in entry:
            raise CorpusError(f"{where}: needs 'image' and 'caption'")
        record = _lookup(records, entry["image"])
        if record is None:
            missing += 1
            boxes, names = [], []
        else:
            boxes, names = _objects(record, f"{detections_path} ({entry['image']})", min_conf)
        caption = entry["caption"]
        captions: Iterable[str] = [caption] if isinstance(caption, str) else caption
        for text in captions:  # one row per caption, as COCO is used 5x in the 4M corpus (Table 2)
            rows.append(CorpusRow(entry["image"], text, tuple(map(tuple, boxes)), tuple(names)))
    return rows, missing
