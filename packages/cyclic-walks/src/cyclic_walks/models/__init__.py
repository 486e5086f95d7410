"""SACRW model parts: frozen backbones, slot attention, the cyclic-walks model and the decoder baseline."""

from cyclic_walks.models.backbone import BackboneConfig, BackboneError, FrozenBackbone, build_backbone
from cyclic_walks.models.dinosaur import DecoderBaseline, MLPDecoder
from cyclic_walks.models.sacrw import CyclicWalks, masks_from_transition
from cyclic_walks.models.slot_attention import SlotAttention, SlotEncoder

__all__ = [
    "BackboneConfig",
    "BackboneError",
    "CyclicWalks",
    "DecoderBaseline",
    "FrozenBackbone",
    "MLPDecoder",
    "SlotAttention",
    "SlotEncoder",
    "build_backbone",
    "masks_from_transition",
]
