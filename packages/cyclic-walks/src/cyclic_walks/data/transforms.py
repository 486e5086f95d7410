"""Paired image/mask transforms (PIL in, tensors out). Images become float [3, H, W] in [0, 1]; the backbone applies
its own input normalisation (ImageNet or [-1, 1]); masks become int64 [H, W] resized with nearest neighbours."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image


class DatasetError(ValueError):
    """A dataset root, split file, image or mask that cannot be used; the message names the file."""


def to_tensor(image: Image.Image) -> torch.Tensor:
    return (
        torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
        .permute(2, 0, 1)
        .contiguous()
    )


def mask_to_tensor(mask: Image.Image | np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(mask).astype(np.int64))


def resize_short_side(image: Image.Image, size: int, resample: int) -> Image.Image:
    w, h = image.size
    scale = size / min(w, h)
    return image.resize((max(size, round(w * scale)), max(size, round(h * scale))), resample)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def check_same_size(image: Image.Image, mask: Image.Image, mask_path: object) -> None:
    if image.size != mask.size:
        raise DatasetError(f"{mask_path}: mask size {mask.size} does not match its image size {image.size}")


def train_transform(
    image: Image.Image, masks: list[Image.Image], size: int, rng: random.Random, random_crop: bool = True
) -> tuple[Image.Image, list[Image.Image]]:
    """Resize the short side to size*256/224 (bicubic), crop ``size`` (random: VOC; centre: COCO), random
    horizontal flip."""
    big = round(size * 256 / 224)
    image = resize_short_side(image, big, Image.BICUBIC)
    masks = [resize_short_side(m, big, Image.NEAREST) for m in masks]
    w, h = image.size
    if random_crop:
        left, top = rng.randint(0, w - size), rng.randint(0, h - size)
    else:
        left, top = (w - size) // 2, (h - size) // 2
    box = (left, top, left + size, top + size)
    image, masks = image.crop(box), [m.crop(box) for m in masks]
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
        masks = [m.transpose(Image.FLIP_LEFT_RIGHT) for m in masks]
    return image, masks


def eval_transform(
    image: Image.Image, masks: list[Image.Image], crop: int, size: int, protocol: str
) -> tuple[Image.Image, list[Image.Image]]:
    """``official``: CenterCrop(crop) then Resize(size) (the paper's VOC/COCO val); ``clean``: resize the short side
    to ``size`` then CenterCrop(size) (DINOSAUR's protocol)."""
    if protocol == "official":
        image, masks = (
            center_crop(image, min(crop, *image.size)),
            [center_crop(m, min(crop, *m.size)) for m in masks],
        )
        return image.resize((size, size), Image.BICUBIC), [
            m.resize((size, size), Image.NEAREST) for m in masks
        ]
    image = center_crop(resize_short_side(image, size, Image.BICUBIC), size)
    return image, [center_crop(resize_short_side(m, size, Image.NEAREST), size) for m in masks]


def read_split(path: str | Path) -> list[str]:
    path = Path(path)  # type: ignore[arg-type]
    if not path.is_file():
        raise DatasetError(f"{path}: split file not found")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DatasetError(f"{path}: split file is empty")
    return ids


def open_image(path: str | Path, mode: str | None = None) -> Image.Image:
    path = Path(path)  # type: ignore[arg-type]
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        image = Image.open(path)
        image.load()
    except OSError as err:
        raise DatasetError(f"{path}: cannot read image ({err})") from err
    return image.convert(mode) if mode else image
