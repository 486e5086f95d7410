"""Models: the STPrivacy anonymizer, recognizers/attackers and image-checkpoint inflation."""

from .inflate import OFFICIAL_KEY_MAP, convert_official_state, inflate_image_checkpoint
from .layers import masked_softmax
from .recognizers import Conv3dNet, PooledMLP, VideoViT, build_recognizer
from .stprivacy import (
    Anonymized,
    AnonymizerOutput,
    STPrivacy,
    TokenPredictor,
    freeze_for_anonymization,
    tokens_per_slice,
)

__all__ = [
    "OFFICIAL_KEY_MAP",
    "Anonymized",
    "AnonymizerOutput",
    "Conv3dNet",
    "PooledMLP",
    "STPrivacy",
    "TokenPredictor",
    "VideoViT",
    "build_recognizer",
    "convert_official_state",
    "freeze_for_anonymization",
    "inflate_image_checkpoint",
    "masked_softmax",
    "tokens_per_slice",
]
