"""Tune-A-Video models: the inflated UNet and its sparse-causal / temporal attention."""

from .attention import (
    BasicTransformerBlock3D,
    SparseCausalAttnProcessor,
    Transformer3DModel,
    set_attention_backend,
    sparse_causal_frame_index,
)
from .resnet import InflatedConv3d, ResnetBlock3D
from .unet import (
    TRAINABLE_SUFFIXES,
    CheckpointLayoutError,
    InflatedUNet3DConditionModel,
    freeze_for_tuning,
    load_unet_weights,
)

__all__ = [
    "TRAINABLE_SUFFIXES",
    "BasicTransformerBlock3D",
    "CheckpointLayoutError",
    "InflatedConv3d",
    "InflatedUNet3DConditionModel",
    "ResnetBlock3D",
    "SparseCausalAttnProcessor",
    "Transformer3DModel",
    "freeze_for_tuning",
    "load_unet_weights",
    "set_attention_backend",
    "sparse_causal_frame_index",
]
