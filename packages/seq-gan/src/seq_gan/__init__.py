"""seq-gan: SeQ-GAN's semantic-quantized VQ tokenizer (two phases) and MaskGIT / AR transformers on its tokens
(Gu et al., "Rethinking the Objectives of Vector-Quantized Tokenizers for Image Synthesis", CVPR 2024)."""

from __future__ import annotations

import lazy_loader

__version__ = "0.1.0"

# Public names import their module on first use, so `import seq_gan` and the CLI's --help stay light.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "models.quantizer": ["QuantizeOutput", "VectorQuantizer"],
        "models.vqgan": ["EnhancedDecoder", "VQTokenizer"],
        "models.perceptual": ["PerceptualNet", "SmallPerceptualNet", "VGG16Perceptual"],
        "models.discriminator": ["PatchDiscriminator"],
        "maskgit": ["MaskGIT"],
        "ar": ["ARTransformer"],
    },
)
