"""Dataset loaders for the paper's on-disk layouts and the synthetic VOCdevkit generator."""

from __future__ import annotations

from torch.utils.data import Dataset

from cyclic_walks.data.datasets import (
    COCOInstances,
    CUBBirds,
    MOVi,
    MRCNNForeground,
    OxfordFlowers,
    VOCSegmentation,
)
from cyclic_walks.data.synthetic import write_synthetic_voc
from cyclic_walks.data.transforms import DatasetError

__all__ = [
    "COCOInstances",
    "CUBBirds",
    "DatasetError",
    "MOVi",
    "MRCNNForeground",
    "OxfordFlowers",
    "VOCSegmentation",
    "build_dataset",
    "write_synthetic_voc",
]


def build_dataset(
    dataset: str,
    root: str,
    split: str,
    *,
    train: bool,
    image_size: int = 224,
    eval_crop: int = 224,
    eval_size: int = 320,
    protocol: str = "official",
    movi_variant: str = "C",
    frames_per_clip: int = 9,
    seed: int = 0,
) -> Dataset:
    """The loader for ``dataset`` (voc, coco, movi, birds, dogs, cars, flowers) on ``root``'s real layout.

    ``train=True`` turns on the paper's training augmentation (VOC/COCO/MOVi); fine-grained sets never augment.
    """
    if not root:
        raise DatasetError(f"data.root is empty: pass the {dataset} dataset folder (--set data.root=PATH)")
    common = {"image_size": image_size, "train": train, "protocol": protocol, "seed": seed}
    if dataset == "voc":
        return VOCSegmentation(root, split, eval_crop=eval_crop, eval_size=eval_size, **common)
    if dataset == "coco":
        return COCOInstances(root, split, eval_crop=eval_crop, eval_size=eval_size, **common)
    if dataset == "movi":
        return MOVi(
            root, split, variant=movi_variant, eval_size=eval_size, frames_per_clip=frames_per_clip, **common
        )
    if dataset == "birds":
        return CUBBirds(root, split, size=image_size, protocol=protocol)
    if dataset in ("dogs", "cars"):
        return MRCNNForeground(root, dataset, split, size=image_size)
    if dataset == "flowers":
        return OxfordFlowers(root, split, size=image_size)
    raise DatasetError(f"unknown dataset {dataset!r}")
