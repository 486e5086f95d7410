"""Annotation readers for AGQA 2.0, NExT-QA, STAR and Env-QA in their released layouts (under ``<root>/datasets``).

* AGQA 2.0: ``agqa/agqa_{split}.jsonl`` (one JSON *array*, despite the name) and ``agqa/vocab.json``
  ``{answer: id}``; answers outside the vocabulary map to -1 (ignored by the loss, counted wrong by accuracy).
* NExT-QA: ``nextqa/{split}.csv`` with ``video_id, qid, question, answer`` (0-4), ``a0..a4`` and ``type``.
* STAR: ``star/STAR_{split}.json``, a list of ``{question_id, video_id, question, answer, choices: [{choice}]}``;
  features are per question, row i of the h5 belonging to ``star/qid.json[i][0]``.
* Env-QA (no official loader; our documented format): ``envqa/envqa_{split}.json``, a JSON array of
  ``{video_id, question_id, question, answer, question_type}``, and ``envqa/vocab.json``.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["QA", "annotation_path", "read_json_array", "load_answer_vocab", "load_qas", "load_star_row_keys"]

NEXTQA_TYPES = {"CW": "causal", "CH": "causal", "TN": "temporal", "TC": "temporal", "TP": "temporal"}
NEXTQA_TYPES |= {"DL": "descriptive", "DC": "descriptive", "DO": "descriptive"}


@dataclass
class QA:
    qid: str
    video_id: str
    question: str
    answer: int  # answer id (open-ended) or choice index; -1: outside the answer vocabulary
    feature_key: str  # row key in the frame-feature h5 (the video id; the question id for STAR)
    choices: list[str] = field(default_factory=list)
    types: dict[str, list[str]] = field(default_factory=dict)  # type field -> values, for per-type accuracy
    event_segment: int = -1  # synthetic data only: the segment that answers the question
    key_regions: list[int] = field(
        default_factory=list
    )  # synthetic data only: the key's region per event frame


def annotation_path(root: str | os.PathLike, dataset: str, split: str) -> Path:
    folder = Path(root) / "datasets" / dataset
    name = {"agqa": f"agqa_{split}.jsonl", "nextqa": f"{split}.csv", "star": f"STAR_{split}.json"}
    return folder / name.get(dataset, f"envqa_{split}.json")


def _json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def read_json_array(path: Path) -> list[dict]:
    data = _json(path)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError(f"{path}: expected a JSON array of objects, got {type(data).__name__}")
    return data


def _require(path: Path, item: dict, keys: tuple[str, ...], index: int) -> None:
    absent = [k for k in keys if k not in item]
    if absent:
        raise ValueError(f"{path}: entry {index} lacks {', '.join(absent)}")


def load_answer_vocab(root: str | os.PathLike, dataset: str) -> dict[str, int]:
    """``vocab.json`` ``{answer: id}`` with ids 0..V-1."""
    path = Path(root) / "datasets" / dataset / "vocab.json"
    vocab = _json(path)
    if not isinstance(vocab, dict) or sorted(vocab.values()) != list(range(len(vocab))):
        raise ValueError(f"{path}: expected an object mapping each answer to a distinct id 0..V-1")
    return {str(k): int(v) for k, v in vocab.items()}


def _extras(item: dict) -> dict[str, Any]:
    return {
        "event_segment": int(item.get("event_segment", -1)),
        "key_regions": list(item.get("key_regions", [])),
    }


def _types(item: dict, fields: tuple[str, ...]) -> dict[str, list[str]]:
    types = {}
    for name in fields:
        value = item.get(name)
        if value:
            types[name] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return types


def _open_ended(
    path: Path, vocab: dict[str, int], type_fields: tuple[str, ...], vid: str = "video_id"
) -> list[QA]:
    qas = []
    for i, item in enumerate(read_json_array(path)):
        _require(path, item, (vid, "question_id", "question", "answer"), i)
        qas.append(
            QA(
                qid=str(item["question_id"]),
                video_id=str(item[vid]),
                question=str(item["question"]),
                answer=vocab.get(str(item["answer"]), -1),
                feature_key=str(item[vid]),
                types=_types(item, type_fields),
                **_extras(item),
            )
        )
    return qas


def _nextqa(path: Path) -> list[QA]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    qas = []
    for i, row in enumerate(rows):
        _require(path, row, ("video_id", "qid", "question", "answer", "a0", "a1"), i)
        choices = [row[f"a{j}"] for j in range(5) if f"a{j}" in row]
        qtype = row.get("type", "")
        types = {"type": [NEXTQA_TYPES.get(qtype, qtype)]} if qtype else {}
        qas.append(
            QA(
                qid=f"{row['video_id']}_{row['qid']}",
                video_id=str(row["video_id"]),
                question=row["question"],
                answer=int(row["answer"]),
                feature_key=str(row["video_id"]),
                choices=choices,
                types=types,
                **_extras(row),
            )
        )
    return qas


def _star(path: Path) -> list[QA]:
    qas = []
    for i, item in enumerate(read_json_array(path)):
        _require(path, item, ("question_id", "video_id", "question", "answer", "choices"), i)
        choices = [str(c["choice"]) if isinstance(c, dict) else str(c) for c in item["choices"]]
        answer = choices.index(str(item["answer"])) if str(item["answer"]) in choices else -1
        category = str(item["question_id"]).split("_")[0]  # Interaction / Sequence / Prediction / Feasibility
        qas.append(
            QA(
                qid=str(item["question_id"]),
                video_id=str(item["video_id"]),
                question=str(item["question"]),
                answer=answer,
                feature_key=str(item["question_id"]),  # features are per trimmed clip, i.e. per question
                choices=choices,
                types={"category": [category]},
                **_extras(item),
            )
        )
    return qas


def load_star_row_keys(root: str | os.PathLike) -> list[str]:
    """``qid.json``: row i of the STAR feature file belongs to question ``qid[i][0]``."""
    path = Path(root) / "datasets" / "star" / "qid.json"
    data = _json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array")
    return [str(row[0]) if isinstance(row, list) else str(row) for row in data]


def load_qas(root: str | os.PathLike, dataset: str, split: str) -> list[QA]:
    """The QAs of one split of ``dataset`` under ``root``."""
    if not Path(root).is_dir():
        raise FileNotFoundError(f"{root}: data root not found (set data.root)")
    path = annotation_path(root, dataset, split)
    if dataset == "agqa":
        vocab = load_answer_vocab(root, dataset)
        return _open_ended(path, vocab, ("global", "semantic", "structural", "answer_type"))
    if dataset == "envqa":
        return _open_ended(path, load_answer_vocab(root, dataset), ("question_type",))
    if dataset == "nextqa":
        return _nextqa(path)
    if dataset == "star":
        return _star(path)
    raise ValueError(f"unknown dataset {dataset!r}")
