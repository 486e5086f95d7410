"""ShapesGrid: coloured shapes on a 3x3 grid, written in the real on-disk layouts (corpus TSV, detections, BLIP JSONs).

Each image holds 1-3 objects of distinct classes (4 colours x circle, square, triangle), each in its own block of
the 3x3 grid, the block drawn uniformly and the centre uniformly inside it (clipped so that the shape stays in the
image), so no two objects overlap and a constant guess of the block scores 1/9. The generator's boxes are the
"detections". Captions name the objects in random order and never their blocks; in ``position_rate`` of training
captions one object carries "in the {top|middle|bottom} {left|center|right}". The test split has one probed object
per image, the same number per block. Layout under ``root``::

    images/{train,test}/000000.jpg
    corpus.tsv                    pretraining corpus (4 columns), paths relative to root
    corpus_ceiling.tsv            the same with a position phrase in every caption (the "ceiling" baseline)
    detections.json               image path -> {"objects": [{"rect", "class", "conf"}], "image_h", "image_w"}
    captions_train.json           [{"image", "caption"}] (input of ``ptp-vlp tag``)
    annotation/coco_karpathy_{train,val,test}.json, coco_karpathy_{val,test}_gt.json
    probes_test.json              per test image: its objects, the probed one, its block and absent classes
    tokenizer/vocab.txt           the ~40 words of the data plus BERT's specials
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ptp_vlp.data.corpus import CorpusRow, format_row
from ptp_vlp.prompts import block_index
from ptp_vlp.tokenizer import write_vocab
from visioncore.synthetic import ObjectSpec, random_background, render_objects

__all__ = ["CLASSES", "POSITIONS", "SyntheticSpec", "caption_of", "position_phrase", "write_synthetic"]

COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle")
CLASSES = tuple(f"{c} {s}" for c in COLOURS for s in SHAPES)
ROWS = ("top", "middle", "bottom")
COLS = ("left", "center", "right")
POSITIONS = tuple(f"{r} {c}" for r in ROWS for c in COLS)  # index = block, row-major
WORDS = ("a", "and", ",", ".", "in", "the", "picture", "of", "block", "has", *map(str, range(9)))


@dataclass(frozen=True)
class SyntheticSpec:
    n_train: int = 4000
    n_test: int = 900
    image_size: int = 48
    min_objects: int = 1
    max_objects: int = 3
    object_size: tuple[float, float] = (10.0, 13.0)
    position_rate: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_train < 1 or self.n_test < 9:
            raise ValueError("make-synthetic: need at least 1 training and 9 test images")
        if not 1 <= self.min_objects <= self.max_objects <= 9:
            raise ValueError("make-synthetic: need 1 <= min_objects <= max_objects <= 9")
        if not 0.0 <= self.position_rate <= 1.0:
            raise ValueError(f"make-synthetic: position_rate must be in [0, 1], got {self.position_rate}")
        if self.image_size < 24:
            raise ValueError(f"make-synthetic: image_size must be >= 24, got {self.image_size}")


def position_phrase(block: int) -> str:
    return "in the " + POSITIONS[block]


def caption_of(names: list[str], phrases: dict[int, str] | None = None) -> str:
    """ "a red circle in the top left , a blue square and a green triangle" (objects in the given order)."""
    parts = [f"a {n}" + (f" {phrases[i]}" if phrases and i in phrases else "") for i, n in enumerate(names)]
    if len(parts) == 1:
        return parts[0]
    return " , ".join(parts[:-1]) + " and " + parts[-1]


def _place(rng: np.random.Generator, blocks: list[int], spec: SyntheticSpec) -> list[tuple[float, tuple]]:
    """(size, centre) per object: centre uniform in its block (shape kept inside the image), redrawn until the
    object's square extent overlaps no earlier one (the whole layout is redrawn when an object finds no room)."""
    for _ in range(1000):
        placed = _try_place(rng, blocks, spec)
        if placed is not None:
            return placed
    raise RuntimeError("could not place non-overlapping synthetic objects")


def _try_place(
    rng: np.random.Generator, blocks: list[int], spec: SyntheticSpec
) -> list[tuple[float, tuple]] | None:
    cell = spec.image_size / 3
    placed: list[tuple[float, tuple[float, float]]] = []
    for b in blocks:
        row, col = divmod(b, 3)
        for _ in range(20):
            size = float(rng.uniform(*spec.object_size))
            half = size / 2 + 1
            lo_x, hi_x = max(col * cell, half), min((col + 1) * cell, spec.image_size - half)
            lo_y, hi_y = max(row * cell, half), min((row + 1) * cell, spec.image_size - half)
            centre = (float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)))
            free = all(
                abs(centre[0] - c[0]) >= half + s / 2 + 1 or abs(centre[1] - c[1]) >= half + s / 2 + 1
                for s, c in placed
            )
            if free:
                break
        else:
            return None
        placed.append((size, centre))
    return placed


def _scene(rng: np.random.Generator, spec: SyntheticSpec, probe_block: int | None):
    """One image: (uint8 image, class names, boxes, blocks); the first object sits in ``probe_block`` if given.

    Blocks are those of the rendered boxes' centres (``block_index``, as PTP tags detections); a layout whose
    rendered boxes fall outside the intended blocks (a pixel at a block edge) is redrawn.
    """
    k = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    classes = [CLASSES[i] for i in rng.choice(len(CLASSES), size=k, replace=False)]
    if probe_block is None:
        blocks = [int(b) for b in rng.choice(9, size=k, replace=False)]
    else:
        others = [b for b in range(9) if b != probe_block]
        blocks = [probe_block] + [int(b) for b in rng.choice(others, size=k - 1, replace=False)]
    background = random_background(rng, spec.image_size, spec.image_size, kind="gradient")
    while True:
        specs = []
        for name, (size, (cx, cy)) in zip(classes, _place(rng, blocks, spec)):
            colour, shape = name.split()
            # the shape is drawn around its centroid; a triangle's box centre lies size * sqrt(3) / 12 above it
            shift = size * np.sqrt(3) / 12 if shape == "triangle" else 0.0
            specs.append(ObjectSpec(shape, colour, (cx, cy + shift), size, angle=0.0))
        scene = render_objects(spec.image_size, spec.image_size, specs, background)
        boxes = [[int(v) for v in np.round(box)] for box in scene.boxes.tolist()]
        size = spec.image_size
        if len(boxes) == k and [block_index(b, size, size) for b in boxes] == blocks:
            return scene.image, classes, boxes, blocks


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=None) + "\n", encoding="utf-8")


def write_synthetic(root: str | Path, spec: SyntheticSpec | None = None) -> Path:
    """Write the ShapesGrid data set under ``root`` (see the module docstring); returns ``root``."""
    spec = spec or SyntheticSpec()
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    corpus, ceiling, detections, captions, karpathy_train = [], [], {}, [], []
    for i in range(spec.n_train):
        image, names, boxes, blocks = _scene(rng, spec, None)
        rel = f"images/train/{i:06d}.jpg"
        _save(root / rel, image)
        carrier = int(rng.integers(len(names)))
        with_pos = caption_of(names, {carrier: position_phrase(blocks[carrier])})
        caption = with_pos if rng.random() < spec.position_rate else caption_of(names)
        corpus.append(CorpusRow(rel, caption, tuple(map(tuple, boxes)), tuple(names)))
        ceiling.append(CorpusRow(rel, with_pos, tuple(map(tuple, boxes)), tuple(names)))
        detections[rel] = _record(boxes, names, spec.image_size)
        captions.append({"image": rel, "caption": caption})
        karpathy_train.append({"image": rel, "caption": caption, "image_id": f"synthetic_{i}"})
    probes, karpathy_test = [], []
    for i in range(spec.n_test):
        image, names, boxes, blocks = _scene(rng, spec, probe_block=i % 9)
        rel = f"images/test/{i:06d}.jpg"
        _save(root / rel, image)
        order = [int(j) for j in rng.permutation(len(names))]
        names_o, boxes_o, blocks_o = (
            [names[j] for j in order],
            [boxes[j] for j in order],
            [blocks[j] for j in order],
        )
        probe = order.index(0)
        absent = [c for c in CLASSES if c not in names]
        absent = [absent[j] for j in rng.choice(len(absent), size=8, replace=False)]
        probes.append(
            {
                "image": rel,
                "names": names_o,
                "boxes": boxes_o,
                "blocks": blocks_o,
                "probe": probe,
                "absent": absent,
            }
        )
        detections[rel] = _record(boxes_o, names_o, spec.image_size)
        karpathy_test.append({"image": rel, "caption": [caption_of(names_o)]})
    (root).mkdir(parents=True, exist_ok=True)
    (root / "corpus.tsv").write_text("".join(format_row(r) + "\n" for r in corpus), encoding="utf-8")
    (root / "corpus_ceiling.tsv").write_text("".join(format_row(r) + "\n" for r in ceiling), encoding="utf-8")
    _write_json(root / "detections.json", detections)
    _write_json(root / "captions_train.json", captions)
    _write_json(root / "probes_test.json", probes)
    ann = root / "annotation"
    n_val = max(9, spec.n_test // 9)
    _write_json(ann / "coco_karpathy_train.json", karpathy_train)
    _write_json(ann / "coco_karpathy_val.json", karpathy_test[:n_val])
    _write_json(ann / "coco_karpathy_test.json", karpathy_test)
    for split, entries in (("val", karpathy_test[:n_val]), ("test", karpathy_test)):
        _write_json(ann / f"coco_karpathy_{split}_gt.json", _coco_gt(entries))
    words = [w for c in CLASSES for w in c.split()] + [w for p in POSITIONS for w in p.split()] + list(WORDS)
    write_vocab(root / "tokenizer", words)
    _write_json(root / "synthetic.json", {**spec.__dict__, "classes": list(CLASSES)})
    return root


def _record(boxes: list[list[int]], names: list[str], size: int) -> dict:
    objects = [{"rect": b, "class": n, "conf": 1.0} for b, n in zip(boxes, names)]
    return {"objects": objects, "image_h": size, "image_w": size}


def _coco_gt(entries: list[dict]) -> dict:
    """pycocoevalcap's ground truth (``coco_karpathy_*_gt.json``): images and annotations keyed by image id."""
    images, annotations = [], []
    for i, entry in enumerate(entries):
        images.append({"id": i, "file_name": entry["image"]})
        for caption in entry["caption"]:
            annotations.append({"image_id": i, "caption": caption, "id": len(annotations)})
    return {"images": images, "annotations": annotations, "type": "captions", "info": {}, "licenses": []}


def _save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95)
