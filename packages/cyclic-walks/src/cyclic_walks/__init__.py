"""cyclic-walks: slot attention trained by cyclic walks between parts and whole (Wang, Shou, Zhang, NeurIPS 2023)."""

from cyclic_walks.losses import WalkLosses, cyclic_walk_losses, walk_transitions
from cyclic_walks.models import (
    CyclicWalks,
    DecoderBaseline,
    SlotAttention,
    SlotEncoder,
    masks_from_transition,
)

__version__ = "0.1.0"

__all__ = [
    "CyclicWalks",
    "DecoderBaseline",
    "SlotAttention",
    "SlotEncoder",
    "WalkLosses",
    "cyclic_walk_losses",
    "masks_from_transition",
    "walk_transitions",
]
