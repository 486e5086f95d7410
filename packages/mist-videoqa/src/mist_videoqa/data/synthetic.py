"""Synthetic long-video QA in the released file layouts (the acceptance data of issue 22).

Each video has 8 segments ("shots") x 4 frames x 16 regions in R^D. Each shot shows 4 objects, each with a random
colour, at random regions of each of its frames; the other 12 regions show the shot's background. An object's
region is its object vector plus its colour vector; every region gets N(0, noise^2 / D) noise and the frame vector is
the mean of its regions. The key object occurs in one shot only; the question is "what color is the <key>?" and the
answer the key's colour there. ``q_feat`` (standing in for CLIP text) is the key's vector plus noise.

Known shortcut, kept on purpose (issue 22): a shot's mean holds the sum of its objects' colours, so segment tokens
alone narrow the answer to the event shot's colours.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mist_videoqa.data.features import write_features
from visioncore.files import atomic_write_json, atomic_write_text

__all__ = ["COLOURS", "LAYOUTS", "OBJECTS", "SyntheticSpec", "make_synthetic"]

OBJECTS = ["cup", "ball", "book", "chair", "lamp", "phone", "bag", "box"]
OBJECTS += ["shoe", "bottle", "plate", "pillow", "towel", "laptop", "broom", "door"]
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
LAYOUTS = ("agqa", "nextqa", "star")


@dataclass
class SyntheticSpec:
    n_train: int = 2000
    n_val: int = 0
    n_test: int = 400
    dim: int = 64
    noise: float = 0.3
    num_segments: int = 8
    frames_per_segment: int = 4
    num_regions: int = 16
    objects_per_shot: int = 4
    num_backgrounds: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if (
            min(self.n_train, self.n_test, self.dim, self.num_segments, self.frames_per_segment) < 1
            or self.n_val < 0
        ):
            raise ValueError("synthetic: sizes must be positive (n_val >= 0)")
        if not 1 <= self.objects_per_shot <= min(self.num_regions, len(OBJECTS) - 1):
            raise ValueError(f"synthetic: objects_per_shot must be in [1, {min(self.num_regions, 15)}]")


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _video(
    rng: np.random.Generator, spec: SyntheticSpec, vec: dict[str, np.ndarray]
) -> tuple[np.ndarray, dict]:
    s, f, r, d = spec.num_segments, spec.frames_per_segment, spec.num_regions, spec.dim
    event, key = int(rng.integers(s)), int(rng.integers(len(OBJECTS)))
    others = [o for o in range(len(OBJECTS)) if o != key]
    regions = np.empty((s, f, r, d))
    answer, key_regions = -1, []
    for seg in range(s):
        objects = list(rng.choice(others, spec.objects_per_shot, replace=False))
        if seg == event:
            objects[0] = key
        colours = rng.integers(len(COLOURS), size=len(objects))
        regions[seg] = vec["background"][rng.integers(spec.num_backgrounds)]
        for frame in range(f):
            places = rng.permutation(r)[: len(objects)]
            regions[seg, frame, places] = vec["object"][objects] + vec["colour"][colours]
            if seg == event:
                key_regions.append(int(places[0]))
        if seg == event:
            answer = int(colours[0])
    regions += rng.normal(0.0, spec.noise / np.sqrt(d), regions.shape)
    regions = regions.reshape(s * f, r, d)
    video = np.concatenate([regions.mean(axis=1, keepdims=True), regions], axis=1)  # slot 0: the frame
    q_feat = vec["object"][key] + rng.normal(0.0, spec.noise / np.sqrt(d), d)
    info = {
        "key": key,
        "answer": answer,
        "event_segment": event,
        "key_regions": key_regions,
        "q_feat": q_feat,
    }
    return video, info


def _agqa_items(infos: list[dict], prefix: str) -> list[dict]:
    return [
        {
            "video_id": f"{prefix}{i:05d}",
            "question_id": f"{prefix}q{i:05d}",
            "question": f"what color is the {OBJECTS[info['key']]}?",
            "answer": COLOURS[info["answer"]],
            "answer_type": "open",
            "semantic": "object",
            "structural": "query",
            "global": ["object-attribute"],
            "event_segment": info["event_segment"],
            "key_regions": info["key_regions"],
        }
        for i, info in enumerate(infos)
    ]


def _choices(rng: np.random.Generator, answer: int, n: int) -> tuple[list[str], int]:
    wrong = [c for c in range(len(COLOURS)) if c != answer]
    picked = [answer, *rng.choice(wrong, n - 1, replace=False).tolist()]
    order = rng.permutation(n)
    choices = [COLOURS[picked[j]] for j in order]
    return choices, int(np.where(order == 0)[0][0])


def _write_split(
    root: Path, layout: str, split: str, items: list[dict], rng: np.random.Generator
) -> list[str]:
    """Write the split's annotations; return the feature row keys (video ids, or question ids for STAR)."""
    folder = root / "datasets" / layout
    if layout == "agqa":
        atomic_write_json(folder / f"agqa_{split}.jsonl", items)  # a JSON array, as released
        return [it["video_id"] for it in items]
    if layout == "nextqa":
        buf = io.StringIO()
        fields = [
            "video_id",
            "qid",
            "question",
            "answer",
            "a0",
            "a1",
            "a2",
            "a3",
            "a4",
            "type",
            "width",
            "height",
        ]
        fields += ["event_segment"]
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        for i, it in enumerate(items):
            choices, answer = _choices(rng, COLOURS.index(it["answer"]), 5)
            row = {"video_id": it["video_id"], "qid": i, "question": it["question"], "answer": answer}
            row |= {f"a{j}": c for j, c in enumerate(choices)}
            row |= {"type": "DO", "width": 896, "height": 896, "event_segment": it["event_segment"]}
            writer.writerow(row)
        atomic_write_text(folder / f"{split}.csv", buf.getvalue())
        return [it["video_id"] for it in items]
    star = []
    for it in items:
        choices, _ = _choices(rng, COLOURS.index(it["answer"]), 4)
        star.append(
            {
                "question_id": f"Interaction_T1_{it['question_id']}",
                "video_id": it["video_id"],
                "question": it["question"],
                "answer": it["answer"],
                "choices": [{"choice_id": j, "choice": c} for j, c in enumerate(choices)],
                "event_segment": it["event_segment"],
            }
        )
    atomic_write_json(folder / f"STAR_{split}.json", star)
    return [it["question_id"] for it in star]


def make_synthetic(
    root: str | Path, layout: str = "agqa", spec: SyntheticSpec | None = None
) -> dict[str, int]:
    """Write annotations and h5 features of every split under ``root``; returns the number of QAs per split."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r} (known: {', '.join(LAYOUTS)})")
    spec = spec or SyntheticSpec()
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    vec = {
        "object": _unit(rng, len(OBJECTS), spec.dim),
        "colour": _unit(rng, len(COLOURS), spec.dim),
        "background": _unit(rng, spec.num_backgrounds, spec.dim),
    }
    splits = {"train": spec.n_train, "val": spec.n_val, "test": spec.n_test}
    keys, videos, qids, qfeats = [], [], [], []
    star_rows: list[list[str]] = []
    for split, n in splits.items():
        if n == 0:
            continue
        made = [_video(rng, spec, vec) for _ in range(n)]
        items = _agqa_items([info for _, info in made], f"{split}_")
        row_keys = _write_split(root, layout, split, items, rng)
        keys += row_keys
        videos += [v.astype(np.float16) for v, _ in made]
        text_keys = row_keys if layout == "star" else [it["question_id"] for it in items]
        if layout == "nextqa":
            text_keys = [f"{it['video_id']}_{i}" for i, it in enumerate(items)]
        qids += text_keys
        qfeats += [info["q_feat"] for _, info in made]
        star_rows += [[k] for k in row_keys]
    folder = root / "datasets" / layout
    if layout == "agqa":
        atomic_write_json(folder / "vocab.json", {c: i for i, c in enumerate(COLOURS)})
    if layout == "star":
        atomic_write_json(folder / "qid.json", star_rows)
    feats = root / "feats" / layout
    write_features(feats / "frame_feat" / "clip_patch_feat_all.h5", keys, np.stack(videos))
    write_features(feats / "text_feat" / "clip_text_feat.h5", qids, np.stack(qfeats), dtype="float32")
    atomic_write_json(root / "synthetic.json", {"layout": layout, **vars(spec)})
    return {k: v for k, v in splits.items() if v}
