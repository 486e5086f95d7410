"""Data: official split lists, privacy-label pickles, clip datasets and the synthetic experiment's renderer."""

from .clips import ClipDataset, Normalizer, TensorClips, load_all
from .labels import DEFAULT_NAMES, PrivacyLabels, load_privacy_labels
from .splits import VideoItem, VideoSplit, find_split_lists, hmdb51_split, load_split, ucf101_split

__all__ = [
    "DEFAULT_NAMES",
    "ClipDataset",
    "Normalizer",
    "PrivacyLabels",
    "TensorClips",
    "VideoItem",
    "VideoSplit",
    "find_split_lists",
    "hmdb51_split",
    "load_all",
    "load_privacy_labels",
    "load_split",
    "ucf101_split",
]
