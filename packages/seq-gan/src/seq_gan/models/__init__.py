"""Tokenizer, quantizer, perceptual nets and discriminator."""

from seq_gan.models.discriminator import PatchDiscriminator
from seq_gan.models.perceptual import PerceptualNet, SmallPerceptualNet, VGG16Perceptual
from seq_gan.models.quantizer import QuantizeOutput, VectorQuantizer
from seq_gan.models.vqgan import (
    Decoder,
    Encoder,
    EnhancedDecoder,
    VQTokenizer,
    count_parameters,
    taming_key_map,
)

__all__ = [
    "Decoder",
    "EnhancedDecoder",
    "Encoder",
    "PatchDiscriminator",
    "PerceptualNet",
    "QuantizeOutput",
    "SmallPerceptualNet",
    "VGG16Perceptual",
    "VQTokenizer",
    "VectorQuantizer",
    "count_parameters",
    "taming_key_map",
]
