"""The learner of the full-backbone mode: a trainable extractor plus a linear head with ``num_outputs`` units."""

from __future__ import annotations

import torch
from torch import nn

from curriculum_cl.models.extractors import build_extractor
from visioncore.hub import PretrainedMixin


class Learner(nn.Module, PretrainedMixin):
    """``extractor`` (any of ``EXTRACTORS``, weights loaded separately) -> features -> ``head`` (10 outputs)."""

    def __init__(
        self, extractor: str = "smallcnn", in_channels: int = 1, image_size: int = 8, num_outputs: int = 10
    ):
        super().__init__()
        self.extractor = build_extractor(extractor, "", in_channels=in_channels, image_size=image_size)
        self.head = nn.Linear(self.extractor.out_dim, num_outputs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.extractor(images))
