"""Multi-object shape scenes (visioncore.synthetic) written in the VOCdevkit layout:

``<out>/VOCdevkit/VOC2012/JPEGImages/<id>.jpg``, ``SegmentationObject/<id>.png`` (palette PNG, instance ids, 1-px
255 borders), ``SegmentationClass/<id>.png`` (shape class = index in visioncore's SHAPES + 1) and
``ImageSets/Segmentation/{train,val}.txt``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from visioncore.synthetic import SHAPES, random_background, random_objects, render_objects

SCENE_SHAPES = ("circle", "square", "triangle")
SCENE_COLORS = ("red", "green", "blue", "yellow", "magenta", "white")


def voc_palette() -> list[int]:
    """The standard PASCAL VOC colour map (index 255 is the boundary colour)."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def add_boundaries(labels: np.ndarray) -> np.ndarray:
    """Set object pixels that touch a different label (4-neighbourhood) to 255: VOC's void border."""
    padded = np.pad(labels, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    differs = np.zeros(labels.shape, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        differs |= padded[dy : dy + labels.shape[0], dx : dx + labels.shape[1]] != centre
    out = labels.copy()
    out[differs & (labels > 0)] = 255
    return out


def render_textured_scene(
    rng: np.random.Generator, size: int, num_objects: int, texture: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene with distinct object colours and +-``texture`` multiplicative pixel noise on objects and
    background. Returns (image uint8 [H, W, 3], instance ids [H, W], shape classes [H, W])."""
    objects = random_objects(rng, num_objects, size, size, shapes=SCENE_SHAPES, size_range=(0.3, 0.5))
    colours = rng.choice(len(SCENE_COLORS), size=num_objects, replace=False)
    objects = [replace(o, color=SCENE_COLORS[c]) for o, c in zip(objects, colours)]
    kind = ("solid", "gradient", "noise")[int(rng.integers(3))]
    scene = render_objects(size, size, objects, random_background(rng, size, size, kind))
    noise = rng.uniform(1 - texture, 1 + texture, size=scene.image.shape)
    image = np.clip(scene.image.astype(np.float64) * noise, 0, 255).astype(np.uint8)
    instance = scene.instance_mask.astype(np.int64)
    classes = np.zeros_like(instance)
    for i, obj in enumerate(objects):
        classes[instance == i + 1] = SHAPES.index(obj.shape) + 1
    return image, instance, classes


def write_synthetic_voc(
    out: str | Path,
    *,
    num_train: int = 200,
    num_val: int = 50,
    size: int = 64,
    objects: tuple[int, int] = (2, 4),
    seed: int = 0,
) -> Path:
    """Write the scenes in the VOCdevkit layout; returns the VOC2012 folder (the loader's root)."""
    base = Path(out) / "VOCdevkit" / "VOC2012"
    folders = {n: base / n for n in ("JPEGImages", "SegmentationObject", "SegmentationClass")}
    for folder in [*folders.values(), base / "ImageSets" / "Segmentation"]:
        folder.mkdir(parents=True, exist_ok=True)
    palette = voc_palette()
    rng = np.random.default_rng(seed)
    for split, count in (("train", num_train), ("val", num_val)):
        ids = []
        for i in range(count):
            name = f"{split}_{i:05d}"
            image, instance, classes = render_textured_scene(
                rng, size, int(rng.integers(objects[0], objects[1] + 1))
            )
            Image.fromarray(image).save(folders["JPEGImages"] / f"{name}.jpg", quality=95)
            for key, labels in (("SegmentationObject", instance), ("SegmentationClass", classes)):
                png = Image.fromarray(add_boundaries(labels).astype(np.uint8), "P")
                png.putpalette(palette)
                png.save(folders[key] / f"{name}.png")
            ids.append(name)
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return base
