"""Tune-A-Video (Wu et al., ICCV 2023): one-shot tuning of an image diffusion model for text-to-video generation.

Built on diffusers 0.42: :class:`InflatedUNet3DConditionModel` (pseudo-3-D SD UNet with sparse-causal and temporal
attention) and :class:`TuneAVideoPipeline` (sampling and DDIM inversion). The public classes are imported on first
use (lazy_loader), so ``import tune_a_video`` and ``tune-a-video --help`` do not load diffusers or transformers.
"""

from __future__ import annotations

import lazy_loader

__version__ = "0.1.0"

# Public names import their module on first use, so `import tune_a_video` and the CLI's --help stay light.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "models": ["InflatedUNet3DConditionModel", "SparseCausalAttnProcessor", "freeze_for_tuning"],
        "pipeline": ["TuneAVideoPipeline", "TuneAVideoPipelineOutput"],
    },
)
