"""Position-guided text prompts (PTP, arXiv 2212.09737, Sec. 3.1-3.2): "The block {b} has a {object} ."

The image is cut into a ``grid x grid`` raster (3x3 in the paper); an object's block is the cell holding its box
centre, numbered row-major. Each pretraining caption gets one prompt naming one detected object (of the first 10)
and its block; the base model's unchanged losses then learn grounding as fill-in-the-blank. Fine-tuning and
inference use no prompt.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_OBJECTS",
    "PROMPT_TEMPLATE",
    "Prompted",
    "block_index",
    "box_centre",
    "join_captions",
    "make_prompt",
    "pre_caption",
    "prompt_rng",
    "ptp_text",
]

PROMPT_TEMPLATE = "The block {block} has a {name} ."
MAX_OBJECTS = 10  # the official preprocessing keeps the first 10 detections of an image
VARIANTS = ("tsv", "refined")
_PUNCT = re.compile(r"[.!\"()*#:;~]")
_SPACES = re.compile(r"\s{2,}")

Box = Sequence[float]


def box_centre(box: Box) -> tuple[float, float]:
    x1, y1, x2, y2 = box
    return (x1 + x2) / 2.0, (y1 + y2) / 2.0


def block_index(box: Box, width: float, height: float, grid: int = 3) -> int:
    """Block of the box centre: ``grid * row + col`` with ``col = floor(cx * grid / width)`` clamped to the grid.

    ``box`` is ``(x1, y1, x2, y2)`` in pixels of the image the model sees (Sec. 3.1, "block tag": the centre, not the
    overlap area; row-major, not column-major).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"block_index: image size must be positive, got {width}x{height}")
    if grid < 1:
        raise ValueError(f"block_index: grid must be >= 1, got {grid}")
    cx, cy = box_centre(box)
    col = min(max(int(cx * grid // width), 0), grid - 1)
    row = min(max(int(cy * grid // height), 0), grid - 1)
    return grid * row + col


def pre_caption(text: str, max_words: int = 30) -> str:
    """BLIP's caption normalisation: lowercase, ``.!"()*#:;~`` -> space, collapse spaces, strip, first words."""
    text = _SPACES.sub(" ", _PUNCT.sub(" ", text.lower())).strip()
    return " ".join(text.split(" ")[:max_words]) if text else ""


def join_captions(caption: str | Sequence[str], rng: random.Random) -> str:
    """A list of captions (web caption last, BLIP synthetic ones before it): the last plus one drawn from the rest.

    Upstream glues the two without a separator and fails on one-element lists; here they are joined with a space
    and a single caption is used as is.
    """
    if isinstance(caption, str):
        return caption
    if not caption:
        raise ValueError("join_captions: empty caption list")
    if len(caption) == 1:
        return caption[0]
    return caption[-1] + " " + caption[rng.randint(0, len(caption) - 2)]


def prompt_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The generator of one sample's prompt draw: a function of (seed, epoch, index) only.

    So the prompts do not depend on data-loader workers or process count, and a resumed run draws the same ones.
    """
    digest = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


@dataclass(frozen=True)
class Prompted:
    """A prompted caption: ``text``, the chosen ``block`` and ``name`` (None without objects), ``truncated`` when
    the word limit cut (part of) the prompt away."""

    text: str
    block: int | None
    name: str | None
    truncated: bool


def _in_frame(box: Box, width: float, height: float) -> bool:
    cx, cy = box_centre(box)
    return 0 <= cx <= width and 0 <= cy <= height


def make_prompt(
    caption: str,
    boxes: Sequence[Box],
    names: Sequence[str],
    width: float,
    height: float,
    *,
    rng: random.Random,
    grid: int = 3,
    variant: str = "tsv",
    shuffle_blocks: bool = False,
    max_words: int = 30,
) -> Prompted:
    """``ptp_text`` with the chosen object, its block and whether the prompt was cut (see ``ptp_text``)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown prompt variant {variant!r} (known: {', '.join(VARIANTS)})")
    if len(boxes) != len(names):
        raise ValueError(f"{len(boxes)} boxes but {len(names)} names")
    objects = list(zip(boxes, names))[:MAX_OBJECTS]
    if (
        variant == "refined"
    ):  # boxes are already mapped through the crop/flip: drop objects that left the frame
        objects = [(b, n) for b, n in objects if _in_frame(b, width, height)]
    if not objects:
        return Prompted(pre_caption(caption + ".", max_words), None, None, False)
    box, name = objects[rng.randrange(len(objects))]
    block = rng.randrange(grid * grid) if shuffle_blocks else block_index(box, width, height, grid)
    prompt = PROMPT_TEMPLATE.format(block=block, name=name)
    if variant == "tsv":
        full = pre_caption(caption + ". " + prompt, 10**9)
        text = pre_caption(full, max_words)
        truncated = len(full.split()) > max_words
    else:  # the refined variant reserves 8 words for the prompt, so it always survives
        text = pre_caption(caption, max_words - 8) + ". " + pre_caption(prompt, 8)
        truncated = False
    return Prompted(text, block, name, truncated)


def ptp_text(
    caption: str,
    boxes: Sequence[Box],
    names: Sequence[str],
    width: float,
    height: float,
    *,
    rng: random.Random,
    grid: int = 3,
    variant: str = "tsv",
    shuffle_blocks: bool = False,
) -> str:
    """The pretraining text of one sample (Sec. 3.2): caption plus one position prompt.

    One of the first 10 objects is drawn uniformly with ``rng``. ``tsv`` (the documented variant, boxes of the
    un-augmented image): ``pre_caption(caption + ". " + prompt, 30)``. ``refined`` (boxes mapped through the same
    crop/flip; objects whose centre left the image are skipped): ``pre_caption(caption, 22) + ". " +
    pre_caption(prompt, 8)``. No objects: ``pre_caption(caption + ".", 30)``. ``shuffle_blocks`` is the control:
    same object and name, block drawn uniformly over the ``grid * grid`` blocks.
    """
    return make_prompt(
        caption,
        boxes,
        names,
        width,
        height,
        rng=rng,
        grid=grid,
        variant=variant,
        shuffle_blocks=shuffle_blocks,
    ).text
