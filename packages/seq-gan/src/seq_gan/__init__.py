"""seq-gan: SeQ-GAN's semantic-quantized VQ tokenizer (two phases) and MaskGIT / AR transformers on its tokens
(Gu et al., "Rethinking the Objectives of Vector-Quantized Tokenizers for Image Synthesis", CVPR 2024)."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "VectorQuantizer": "seq_gan.models.quantizer",
    "QuantizeOutput": "seq_gan.models.quantizer",
    "VQTokenizer": "seq_gan.models.vqgan",
    "EnhancedDecoder": "seq_gan.models.vqgan",
    "VGG16Perceptual": "seq_gan.models.perceptual",
    "SmallPerceptualNet": "seq_gan.models.perceptual",
    "PerceptualNet": "seq_gan.models.perceptual",
    "PatchDiscriminator": "seq_gan.models.discriminator",
    "MaskGIT": "seq_gan.maskgit",
    "ARTransformer": "seq_gan.ar",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:  # PEP 562: keep `import seq_gan` light
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seq_gan' has no attribute {name!r}")
