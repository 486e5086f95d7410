"""Loaders for the on-disk layouts the paper uses (spec sheet, "Data"). Every sample is a dict with

- ``image``: float [3, H, W] in [0, 1] (the backbone normalises),
- ``mask``: int64 [H, W]; object discovery: instance ids (0 background, 255 ignored boundary); foreground
  extraction: 0/1,
- ``class_mask`` (VOC, COCO): int64 [H, W] semantic class ids (0 background, 255 ignored).

``protocol="official"`` reproduces the official code's evaluation quirks (VOC class masks with the 255 border kept,
COCO first instance merged into background, MOVi masks resized bilinearly, CUB masks dithered by PIL mode '1');
``protocol="clean"`` uses instance masks, ignores 255 and resizes masks with nearest neighbours.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from cyclic_walks.data.transforms import (
    DatasetError,
    check_same_size,
    eval_transform,
    mask_to_tensor,
    open_image,
    read_split,
    to_tensor,
    train_transform,
)

PROTOCOLS = ("official", "clean")


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise DatasetError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} folder not found")
    return path


class _Segmentation(Dataset):
    """Shared train/eval transform for VOC and COCO samples."""

    random_crop = True  # VOC trains on random crops, COCO on centre crops

    def __init__(
        self, image_size: int, train: bool, eval_crop: int, eval_size: int, protocol: str, seed: int
    ):
        _check_protocol(protocol)
        self.image_size, self.train = image_size, train
        self.eval_crop, self.eval_size, self.protocol = eval_crop, eval_size, protocol
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Called by accelerate's loader each epoch: augmentation depends on (seed, epoch, index) only, so a resumed
        run draws exactly the crops and flips an uninterrupted one would."""
        self.epoch = epoch

    def _transform(
        self, image: Image.Image, masks: list[Image.Image], index: int
    ) -> tuple[Image.Image, list[Image.Image]]:
        if self.train:
            rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
            return train_transform(image, masks, self.image_size, rng, self.random_crop)
        return eval_transform(image, masks, self.eval_crop, self.eval_size, self.protocol)


class VOCSegmentation(_Segmentation):
    """PASCAL VOC 2012 from the standard VOCdevkit tree (``JPEGImages``, ``SegmentationObject``,
    ``SegmentationClass``, optional ``SegmentationClassAug``, ``ImageSets/Segmentation/<split>.txt``) or the official
    code's renamed tree (``VOCSegmentation/{images, SegmentationClassAug, SegmentationClass, sets/<split>.txt}``).
    ``root`` may be the VOC2012 folder, the VOCdevkit folder above it, or the folder holding ``VOCSegmentation``."""

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        *,
        image_size: int = 224,
        train: bool = False,
        eval_crop: int = 224,
        eval_size: int = 320,
        protocol: str = "official",
        seed: int = 0,
    ) -> None:
        super().__init__(image_size, train, eval_crop, eval_size, protocol, seed)
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset root not found")
        for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
            if (candidate / "JPEGImages").is_dir():
                self._devkit(candidate, split)
                break
        else:
            renamed = root / "VOCSegmentation" if (root / "VOCSegmentation").is_dir() else root
            if not (renamed / "images").is_dir():
                raise DatasetError(
                    f"{root}: neither a VOCdevkit tree (JPEGImages/) nor the renamed tree (images/)"
                )
            self._renamed(renamed, split)

    def _devkit(self, base: Path, split: str) -> None:
        self.ids = read_split(base / "ImageSets" / "Segmentation" / f"{split}.txt")
        self.image_dir = base / "JPEGImages"
        aug = base / "SegmentationClassAug"
        use_aug = split == "trainaug" and aug.is_dir()
        self.class_dir = _require_dir(aug if use_aug else base / "SegmentationClass", "class mask")
        objects = base / "SegmentationObject"
        self.instance_dir = objects if objects.is_dir() and not use_aug else None

    def _renamed(self, base: Path, split: str) -> None:
        self.ids = read_split(base / "sets" / f"{split}.txt")
        self.image_dir = base / "images"
        folder = "SegmentationClassAug" if split.startswith("train") else "SegmentationClass"
        self.class_dir = _require_dir(base / folder, "class mask")
        self.instance_dir = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        name = self.ids[index]
        image = open_image(self.image_dir / f"{name}.jpg", "RGB")
        paths = [self.class_dir / f"{name}.png"]
        if self.instance_dir is not None:
            paths.append(self.instance_dir / f"{name}.png")
        masks = [open_image(p) for p in paths]
        for mask, path in zip(masks, paths):
            check_same_size(image, mask, path)
        image, masks = self._transform(image, masks, index)
        class_mask = mask_to_tensor(masks[0])
        # The official protocol scores class masks; the clean one instance masks when the tree has them.
        use_instances = self.protocol == "clean" and len(masks) > 1
        mask = mask_to_tensor(masks[1]) if use_instances else class_mask
        return {"image": to_tensor(image), "mask": mask, "class_mask": class_mask}


def _polygon_mask(segmentation: list, height: int, width: int) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in segmentation:
        if len(poly) >= 6:
            draw.polygon([(poly[i], poly[i + 1]) for i in range(0, len(poly), 2)], fill=1)
    return np.asarray(canvas, dtype=bool)


def _rle_mask(rle: dict) -> np.ndarray:
    """Uncompressed COCO RLE (column-major run lengths, starting with zeros)."""
    height, width = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, str):
        raise DatasetError("compressed RLE strings are not supported; convert them with pycocotools first")
    flat = np.zeros(height * width, dtype=bool)
    position, value = 0, False
    for run in counts:
        flat[position : position + run] = value
        position += run
        value = not value
    return flat.reshape(width, height).T


class COCOInstances(_Segmentation):
    """COCO 2017: ``annotations/instances_<split>2017.json`` and ``<split>2017/<file_name>``."""

    random_crop = False

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        *,
        image_size: int = 224,
        train: bool = False,
        eval_crop: int = 224,
        eval_size: int = 320,
        protocol: str = "official",
        seed: int = 0,
    ) -> None:
        super().__init__(image_size, train, eval_crop, eval_size, protocol, seed)
        root = Path(root)
        ann_path = root / "annotations" / f"instances_{split}2017.json"
        if not ann_path.is_file():
            raise DatasetError(f"{ann_path}: annotation file not found")
        try:
            data = json.loads(ann_path.read_text())
            self.images = {im["id"]: im for im in data["images"]}
            categories = sorted(c["id"] for c in data["categories"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DatasetError(f"{ann_path}: not a COCO instances file ({err})") from err
        self.category_index = {cid: i + 1 for i, cid in enumerate(categories)}
        self.annotations: dict[int, list[dict]] = {i: [] for i in self.images}
        for ann in data.get("annotations", []):
            self.annotations.setdefault(ann["image_id"], []).append(ann)
        self.ids = sorted(self.images)
        self.image_dir = _require_dir(root / f"{split}2017", "image")

    def __len__(self) -> int:
        return len(self.ids)

    def _masks(self, info: dict) -> tuple[np.ndarray, np.ndarray]:
        h, w = info["height"], info["width"]
        instance = np.zeros((h, w), dtype=np.int64)
        semantic = np.zeros((h, w), dtype=np.int64)
        for i, ann in enumerate(self.annotations[info["id"]]):
            seg = ann["segmentation"]
            binary = _rle_mask(seg) if isinstance(seg, dict) else _polygon_mask(seg, h, w)
            if self.protocol == "official":
                instance += i * binary  # the official sum: first instance is background, overlaps add up
            else:
                instance[binary] = 255 if ann.get("iscrowd", 0) else i + 1
            semantic[binary] = 255 if ann.get("iscrowd", 0) else self.category_index[ann["category_id"]]
        return instance, semantic

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        info = self.images[self.ids[index]]
        path = self.image_dir / info["file_name"]
        image = open_image(path, "RGB")
        if image.size != (info["width"], info["height"]):
            raise DatasetError(f"{path}: image size {image.size} differs from its annotation")
        instance, semantic = self._masks(info)
        # int32 "I" images keep labels above 255 through PIL's nearest resize.
        masks = [
            Image.fromarray(instance.astype(np.int32), "I"),
            Image.fromarray(semantic.astype(np.int32), "I"),
        ]
        image, masks = self._transform(image, masks, index)
        return {
            "image": to_tensor(image),
            "mask": mask_to_tensor(masks[0]),
            "class_mask": mask_to_tensor(masks[1]),
        }


class MOVi(Dataset):
    """MOVi-C/E exported frames: ``<root>/<C|E>/<split>/rgb/<clip>/*.jpg`` and ``.../seg/<clip>/*.png``.

    Train: ``frames_per_clip`` random frames per clip (drawn once, when the dataset is built), random crop
    ``image_size`` of the frame; eval: every frame resized to ``eval_size``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "validation",
        *,
        variant: str = "C",
        image_size: int = 224,
        train: bool = False,
        eval_size: int = 128,
        frames_per_clip: int = 9,
        protocol: str = "official",
        seed: int = 88,
    ) -> None:
        _check_protocol(protocol)
        base = Path(root) / variant / split
        rgb, seg = _require_dir(base / "rgb", "rgb"), _require_dir(base / "seg", "seg")
        rng = random.Random(seed)
        self.items: list[tuple[Path, Path]] = []
        for clip in sorted(p for p in rgb.iterdir() if p.is_dir()):
            frames = sorted(clip.glob("*.jpg"))
            if train and len(frames) > frames_per_clip:
                frames = sorted(rng.sample(frames, frames_per_clip))
            for frame in frames:
                self.items.append((frame, seg / clip.name / f"{frame.stem}.png"))
        if not self.items:
            raise DatasetError(f"{rgb}: no clips with .jpg frames")
        self.train, self.image_size, self.eval_size, self.protocol = train, image_size, eval_size, protocol
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        frame_path, mask_path = self.items[index]
        image, mask = open_image(frame_path, "RGB"), open_image(mask_path)
        check_same_size(image, mask, mask_path)
        if self.train:
            w, h = image.size
            size = min(self.image_size, w, h)
            rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
            left, top = rng.randint(0, w - size), rng.randint(0, h - size)
            box = (left, top, left + size, top + size)
            image, mask = image.crop(box), mask.crop(box)
        else:
            # The official code resizes the masks with the default (bilinear) filter; clean uses nearest.
            mask_filter = Image.BILINEAR if self.protocol == "official" else Image.NEAREST
            if mask.mode not in ("L", "I"):
                mask = mask.convert("L")
            image = image.resize((self.eval_size, self.eval_size), Image.BILINEAR)
            mask = mask.resize((self.eval_size, self.eval_size), mask_filter)
        return {"image": to_tensor(image), "mask": mask_to_tensor(mask)}


class _Foreground(Dataset):
    """Foreground-extraction sets: Resize(size, size), no augmentation, binary masks."""

    size: int
    items: list[tuple[Path, Path]]

    def __len__(self) -> int:
        return len(self.items)

    def _binary(self, mask: Image.Image) -> np.ndarray:
        return np.asarray(mask.convert("L")) > 127

    def _load(self, index: int) -> tuple[Image.Image, np.ndarray, Path]:
        image_path, mask_path = self.items[index]
        image, mask = open_image(image_path, "RGB"), open_image(mask_path)
        check_same_size(image, mask, mask_path)
        return image, self._binary(mask), mask_path

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, fg, _ = self._load(index)
        image = image.resize((self.size, self.size), Image.BILINEAR)
        mask = Image.fromarray(fg.astype(np.uint8)).resize((self.size, self.size), Image.NEAREST)
        return {"image": to_tensor(image), "mask": mask_to_tensor(mask)}


CUB_SPLITS = {"train": 0, "val": 1, "test": 2}


class CUBBirds(_Foreground):
    """CUB-200-2011: ``images.txt``, ``bounding_boxes.txt``, ``train_val_test_split.txt`` (0 train, 1 val, 2 test),
    ``images/<cls>/<name>.jpg``, ``segmentations/<cls>/<name>.png``. Crop: a square of side 1.5 max(w, h) around
    the box centre, then Resize(size)."""

    def __init__(self, root: str | Path, split: str = "test", *, size: int = 128, protocol: str = "official"):
        _check_protocol(protocol)
        if split not in CUB_SPLITS:
            raise DatasetError(f"unknown CUB split {split!r}; expected one of {tuple(CUB_SPLITS)}")
        root = Path(root)
        names = dict(_table(root / "images.txt"))
        boxes = {k: [float(x) for x in v.split()] for k, v in _table(root / "bounding_boxes.txt")}
        wanted = {k for k, v in _table(root / "train_val_test_split.txt") if int(v) == CUB_SPLITS[split]}
        ids = [k for k in names if k in wanted]
        self.items = [
            (root / "images" / names[k], root / "segmentations" / f"{names[k][:-4]}.png") for k in ids
        ]
        self.boxes = [boxes[k] for k in ids]
        self.size, self.protocol = size, protocol

    def _binary(self, mask: Image.Image) -> np.ndarray:
        if self.protocol == "official":
            return np.asarray(
                mask.convert("L").convert("1")
            )  # PIL mode '1' dithers, as the official code does
        return np.asarray(mask.convert("L")) > 127

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, fg, _ = self._load(index)
        x, y, w, h = self.boxes[index]
        side = 1.5 * max(w, h)
        cx, cy = x + w / 2, y + h / 2
        box = tuple(round(v) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
        image = image.crop(box).resize((self.size, self.size), Image.BILINEAR)
        mask = Image.fromarray(fg.astype(np.uint8)).crop(box).resize((self.size, self.size), Image.NEAREST)
        return {"image": to_tensor(image), "mask": mask_to_tensor(mask)}


def _table(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            key, _, value = line.strip().partition(" ")
            rows.append((key, value.strip()))
    return rows


class MRCNNForeground(_Foreground):
    """Stanford Cars / Stanford Dogs as prepared by BO-QSA: a ``.npy`` list of tokens per split and
    ``data_mrcnn/<train|test>/resized/<tok>_resized.png`` + ``<tok>_maskresized.png``. The official code's "val"
    split is the train split."""

    SPLIT_FILES = {
        "cars": {"train": "data_mrcnn_train_select.npy", "test": "data_mrcnn_test_select.npy"},
        "dogs": {"train": "data_tr_sel.npy", "test": "data_te_sel.npy"},
    }

    def __init__(self, root: str | Path, dataset: str, split: str = "test", *, size: int = 128):
        if split not in ("train", "test"):
            raise DatasetError(f"unknown {dataset} split {split!r}; expected 'train' or 'test'")
        root = Path(root)
        split_path = root / self.SPLIT_FILES[dataset][split]
        if not split_path.is_file():
            raise DatasetError(f"{split_path}: split file not found")
        try:
            tokens = np.load(split_path, allow_pickle=False)
        except ValueError as err:
            raise DatasetError(
                f"{split_path}: expected an array of string or integer tokens ({err})"
            ) from err
        folder = root / "data_mrcnn" / split / "resized"
        self.items = [(folder / f"{t}_resized.png", folder / f"{t}_maskresized.png") for t in tokens.ravel()]
        self.size = size


FLOWERS_SPLITS = {"train": "tstid", "val": "valid", "test": "trnid"}  # BO-QSA's swapped convention


class OxfordFlowers(_Foreground):
    """Oxford 102 Flowers: ``setid.mat``, ``jpg/image_%05d.jpg``, ``segmim/segmim_%05d.jpg`` (background pure blue)."""

    def __init__(self, root: str | Path, split: str = "test", *, size: int = 128):
        from scipy.io import loadmat

        if split not in FLOWERS_SPLITS:
            raise DatasetError(f"unknown flowers split {split!r}; expected one of {tuple(FLOWERS_SPLITS)}")
        root = Path(root)
        setid = root / "setid.mat"
        if not setid.is_file():
            raise DatasetError(f"{setid}: split file not found")
        ids = np.asarray(loadmat(str(setid))[FLOWERS_SPLITS[split]]).ravel()
        self.items = [
            (root / "jpg" / f"image_{i:05d}.jpg", root / "segmim" / f"segmim_{i:05d}.jpg") for i in ids
        ]
        self.size = size

    def _binary(self, mask: Image.Image) -> np.ndarray:
        rgb = np.asarray(mask.convert("RGB")).astype(np.int32)
        background = (rgb[..., 2] > 200) & (rgb[..., 0] < 60) & (rgb[..., 1] < 60)  # JPEG-tolerant pure blue
        return ~background
