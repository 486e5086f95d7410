"""Tune-A-Video (Wu et al., ICCV 2023): one-shot tuning of an image diffusion model for text-to-video generation.

Built on diffusers 0.42: :class:`InflatedUNet3DConditionModel` (pseudo-3-D SD UNet with sparse-causal and temporal
attention) and :class:`TuneAVideoPipeline` (sampling and DDIM inversion). The public classes are imported on first
use (PEP 562), so ``import tune_a_video`` and ``tune-a-video --help`` do not load diffusers or transformers.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import InflatedUNet3DConditionModel, SparseCausalAttnProcessor, freeze_for_tuning
    from .pipeline import TuneAVideoPipeline, TuneAVideoPipelineOutput

__version__ = "0.1.0"

_LAZY = {
    "InflatedUNet3DConditionModel": ".models",
    "SparseCausalAttnProcessor": ".models",
    "freeze_for_tuning": ".models",
    "TuneAVideoPipeline": ".pipeline",
    "TuneAVideoPipelineOutput": ".pipeline",
}

__all__ = [
    "InflatedUNet3DConditionModel",
    "SparseCausalAttnProcessor",
    "TuneAVideoPipeline",
    "TuneAVideoPipelineOutput",
    "freeze_for_tuning",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
