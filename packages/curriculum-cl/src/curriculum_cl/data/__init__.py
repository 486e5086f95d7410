"""Dataset loaders for the real on-disk layouts, the synthetic generator and the feature cache."""

from curriculum_cl.data.datasets import DATASETS, ImageSplit, load_dataset

__all__ = ["DATASETS", "ImageSplit", "load_dataset"]
