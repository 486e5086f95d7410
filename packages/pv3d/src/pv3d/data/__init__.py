"""Data: the VoxCeleb-layout loader and the toy-head writer."""

from pv3d.data.voxceleb import DatasetError, VoxCelebDataset, sample_times

__all__ = ["DatasetError", "VoxCelebDataset", "sample_times"]
