"""Datasets: the PTP pretraining corpus (prompted captions) and BLIP's Karpathy-style fine-tuning JSONs.

Randomness (prompt draw, list-caption choice, crop, flip, RandAugment) comes from generators seeded by (seed, epoch,
index): ``EpochSampler`` yields ``(epoch, index)`` pairs, so a sample is the same whatever the worker or process
count, and a resumed run sees exactly the samples an uninterrupted one would.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler
from torchvision.transforms import InterpolationMode, RandAugment, RandomResizedCrop
from torchvision.transforms import functional as TF

from ptp_vlp.data.corpus import CorpusRow
from ptp_vlp.prompts import join_captions, make_prompt, pre_caption, prompt_rng
from ptp_vlp.tokenizer import tokenize

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "EpochSampler",
    "KarpathyTrain",
    "PretrainDataset",
    "Transform",
    "load_image",
    "read_karpathy",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_image(path: str | Path) -> Image.Image:
    """An RGB PIL image; a missing or unreadable file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as err:
        raise ValueError(f"{path}: cannot read image ({err})") from None


def to_tensor(image: Image.Image) -> torch.Tensor:
    return TF.normalize(TF.to_tensor(image), CLIP_MEAN, CLIP_STD)


@dataclass(frozen=True)
class Transform:
    """``none``: resize to ``size``; ``blip``: RandomResizedCrop(size, scale=(min_scale, 1)) + RandAugment(2, 5)
    (torchvision's op set; BLIP's ``RandomAugment`` differs in details) and, when ``flip``, a horizontal flip.
    Returns the tensor and the boxes mapped into the output image (for the refined prompt variant)."""

    size: int
    augment: str = "none"
    min_scale: float = 0.2
    flip: bool = False

    def __call__(
        self, image: Image.Image, boxes: Sequence[Sequence[float]], rng: random.Random
    ) -> tuple[torch.Tensor, list[list[float]]]:
        w, h = image.size
        if self.augment == "none":
            out = TF.resize(image, [self.size, self.size], InterpolationMode.BICUBIC)
            return to_tensor(out), [_map_box(b, 0, 0, w, h, self.size, False) for b in boxes]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(rng.getrandbits(63))
            top, left, ch, cw = RandomResizedCrop.get_params(image, [self.min_scale, 1.0], [3 / 4, 4 / 3])
            out = TF.resized_crop(image, top, left, ch, cw, [self.size, self.size], InterpolationMode.BICUBIC)
            flip = self.flip and rng.random() < 0.5
            if flip:
                out = TF.hflip(out)
            out = RandAugment(num_ops=2, magnitude=5)(out)
        scale = (self.size / cw, self.size / ch)
        mapped = [_map_box(b, left, top, scale[0], scale[1], self.size, flip, scaled=True) for b in boxes]
        return to_tensor(out), mapped


def _map_box(box, left, top, sx, sy, size, flip, scaled=False) -> list[float]:
    """A box through a crop at (left, top) and a resize (factors, or the source size when not ``scaled``)."""
    if not scaled:
        sx, sy = size / sx, size / sy
    x1, y1, x2, y2 = ((box[0] - left) * sx, (box[1] - top) * sy, (box[2] - left) * sx, (box[3] - top) * sy)
    return [size - x2, y1, size - x1, y2] if flip else [x1, y1, x2, y2]


class EpochSampler(Sampler):
    """Shuffles ``n`` indices with a permutation seeded by (seed, epoch) and yields ``(epoch, index)`` pairs;
    ``set_epoch`` is called by ``visioncore.training.iterate_steps`` (through accelerate's loader)."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = list(range(self.n))
        if self.shuffle:
            random.Random(f"{self.seed}:{self.epoch}").shuffle(order)
        return iter([(self.epoch, i) for i in order])


class PretrainDataset(Dataset):
    """Corpus rows -> ``{"image", "ids", "mask", "truncated", "block"}`` with the PTP prompt of (seed, epoch, index).

    ``ptp=None`` is plain BLIP (``pre_caption(caption, max_words)``). With the ``tsv`` variant the block is computed
    on the un-augmented image (flip off); ``refined`` maps the boxes through the crop and flip. ``truncated`` counts
    a prompt cut by the word limit or by ``max_tokens``.
    """

    def __init__(
        self,
        rows: Sequence[CorpusRow],
        image_root: str | Path,
        tokenizer: Any,
        *,
        image_size: int,
        seed: int,
        ptp: Any | None,
        augment: str = "none",
        min_scale: float = 0.2,
        max_words: int = 30,
        max_tokens: int = 30,
    ):
        self.rows, self.root, self.tok = list(rows), Path(image_root), tokenizer
        self.seed, self.ptp, self.max_words, self.max_tokens = seed, ptp, max_words, max_tokens
        refined = ptp is not None and ptp.variant == "refined"
        self.transform = Transform(image_size, augment, min_scale, flip=refined)

    def __len__(self) -> int:
        return len(self.rows)

    def text(
        self, index: int, epoch: int, size: tuple[int, int], mapped: list[list[float]]
    ) -> tuple[str, int, bool]:
        """(text, block or -1, prompt cut by the word limit) of a sample."""
        row = self.rows[index]
        rng = prompt_rng(self.seed, epoch, index)
        caption = join_captions(row.caption, rng)
        if self.ptp is None or not self.ptp.enabled:
            return pre_caption(caption, self.max_words), -1, False
        refined = self.ptp.variant == "refined"
        boxes = mapped if refined else row.boxes
        w, h = (self.transform.size, self.transform.size) if refined else size
        p = make_prompt(
            caption,
            boxes,
            row.names,
            w,
            h,
            rng=rng,
            grid=self.ptp.grid,
            variant=self.ptp.variant,
            shuffle_blocks=self.ptp.shuffle_blocks,
            max_words=self.max_words,
        )
        return p.text, -1 if p.block is None else p.block, p.truncated

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        row = self.rows[index]
        image = load_image(self.root / row.image)
        aug_rng = random.Random(f"aug:{self.seed}:{epoch}:{index}")
        pixels, mapped = self.transform(image, row.boxes, aug_rng)
        text, block, truncated = self.text(index, epoch, image.size, mapped)
        ids, mask = tokenize(self.tok, [text], self.max_tokens)
        if block >= 0 and not truncated:  # the prompt ends the text: cut if the tokens did not fit
            truncated = len(self.tok(text)["input_ids"]) > self.max_tokens
        return {"image": pixels, "ids": ids[0], "mask": mask[0], "truncated": truncated, "block": block}


def read_karpathy(path: str | Path) -> list[dict]:
    """A BLIP annotation JSON (``coco_karpathy_*.json``, ``flickr30k_*.json``): a list of objects with ``image``
    and ``caption`` (a string for train, a list for val/test)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, list) or not all(
        isinstance(e, dict) and "image" in e and "caption" in e for e in data
    ):
        raise ValueError(f"{path}: expected a list of {{'image', 'caption'}} objects")
    return data


class KarpathyTrain(Dataset):
    """Fine-tuning pairs: ``{"image", "ids", "mask", "idx"}``; ``idx`` numbers the image ids (retrieval's
    ``idx_queue``); captions get ``prompt`` in front (captioning) and no PTP prompt."""

    def __init__(
        self,
        entries: Sequence[dict],
        image_root: str | Path,
        tokenizer: Any,
        *,
        image_size: int,
        seed: int,
        augment: str = "none",
        min_scale: float = 0.5,
        prompt: str = "",
        max_words: int = 30,
        max_tokens: int = 35,
    ):
        self.entries, self.root, self.tok = list(entries), Path(image_root), tokenizer
        ids = {}
        self.idx = [ids.setdefault(e.get("image_id", e["image"]), len(ids)) for e in self.entries]
        self.transform = Transform(image_size, augment, min_scale, flip=True)
        self.seed, self.prompt, self.max_words, self.max_tokens = seed, prompt, max_words, max_tokens

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        entry = self.entries[index]
        rng = random.Random(f"ft:{self.seed}:{epoch}:{index}")
        pixels, _ = self.transform(load_image(self.root / entry["image"]), [], rng)
        caption = entry["caption"] if isinstance(entry["caption"], str) else rng.choice(entry["caption"])
        ids, mask = tokenize(self.tok, [self.prompt + pre_caption(caption, self.max_words)], self.max_tokens)
        return {"image": pixels, "ids": ids[0], "mask": mask[0], "idx": self.idx[index]}
