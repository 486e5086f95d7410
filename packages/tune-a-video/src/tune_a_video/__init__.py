"""Tune-A-Video (Wu et al., ICCV 2023): one-shot tuning of an image diffusion model for text-to-video generation.

Built on diffusers 0.42: :class:`InflatedUNet3DConditionModel` (pseudo-3-D SD UNet with sparse-causal and temporal
attention) and :class:`TuneAVideoPipeline` (sampling and DDIM inversion).
"""

from .models import InflatedUNet3DConditionModel, SparseCausalAttnProcessor, freeze_for_tuning
from .pipeline import TuneAVideoPipeline, TuneAVideoPipelineOutput

__version__ = "0.1.0"

__all__ = [
    "InflatedUNet3DConditionModel",
    "SparseCausalAttnProcessor",
    "TuneAVideoPipeline",
    "TuneAVideoPipelineOutput",
    "freeze_for_tuning",
]
