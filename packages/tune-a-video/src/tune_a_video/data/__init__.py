"""Data: the single training video (paper Sec. 4.2) and procedural shape data for the CPU experiments."""

from .synthetic import make_synthetic
from .video import TuneAVideoDataset, VideoTooShortError, load_training_video

__all__ = ["TuneAVideoDataset", "VideoTooShortError", "load_training_video", "make_synthetic"]
