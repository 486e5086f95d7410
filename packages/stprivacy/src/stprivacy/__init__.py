"""STPrivacy (ICCV 2023): privacy-preserving action recognition by tubelet sparsification and anonymization.

Light import: public classes load on first use (PEP 562), so ``import stprivacy`` pulls in neither sklearn nor PyAV.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "STPrivacy": "stprivacy.models",
    "TokenPredictor": "stprivacy.models",
    "VideoViT": "stprivacy.models",
    "Conv3dNet": "stprivacy.models",
    "PooledMLP": "stprivacy.models",
    "masked_softmax": "stprivacy.models",
    "freeze_for_anonymization": "stprivacy.models",
    "inflate_image_checkpoint": "stprivacy.models",
    "load_privacy_labels": "stprivacy.data",
    "privacy_metrics": "stprivacy.evaluate",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stprivacy' has no attribute {name!r}")
