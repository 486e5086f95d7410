"""MIST model: config, selection functions, the network and the official-checkpoint mapping."""

from mist_videoqa.models.config import PRESETS, SELECTORS, MISTConfig
from mist_videoqa.models.mist import MIST, LayerSelection, MISTOutput
from mist_videoqa.models.selection import Selection, cascade_select, gumbel_topk, segment_features

__all__ = [
    "MIST",
    "PRESETS",
    "SELECTORS",
    "LayerSelection",
    "MISTConfig",
    "MISTOutput",
    "Selection",
    "cascade_select",
    "gumbel_topk",
    "segment_features",
]
