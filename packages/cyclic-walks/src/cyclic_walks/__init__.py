"""cyclic-walks: slot attention trained by cyclic walks between parts and whole (Wang, Shou, Zhang, NeurIPS 2023).

The public names load on first use (PEP 562), so ``import cyclic_walks`` and the CLI's ``--help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "CyclicWalks": "cyclic_walks.models.sacrw",
    "DecoderBaseline": "cyclic_walks.models.dinosaur",
    "SlotAttention": "cyclic_walks.models.slot_attention",
    "SlotEncoder": "cyclic_walks.models.slot_attention",
    "masks_from_transition": "cyclic_walks.models.sacrw",
    "WalkLosses": "cyclic_walks.losses",
    "cyclic_walk_losses": "cyclic_walks.losses",
    "walk_transitions": "cyclic_walks.losses",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cyclic_walks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
