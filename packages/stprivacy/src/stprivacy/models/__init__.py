"""Models: the STPrivacy anonymizer, recognizers/attackers and image-checkpoint inflation."""

from .inflate import OFFICIAL_KEY_MAP, convert_official_state, inflate_image_checkpoint
from .layers import masked_softmax
from .recognizers import Conv3dNet, FrameCNN, PooledMLP, TubeletBag, VideoViT, build_recognizer, recognize
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
    "FrameCNN",
    "PooledMLP",
    "STPrivacy",
    "TokenPredictor",
    "TubeletBag",
    "VideoViT",
    "build_recognizer",
    "convert_official_state",
    "freeze_for_anonymization",
    "inflate_image_checkpoint",
    "masked_softmax",
    "recognize",
    "tokens_per_slice",
]
