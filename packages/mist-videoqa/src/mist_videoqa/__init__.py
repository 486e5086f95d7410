"""MIST (arXiv 2212.09522): cascaded segment and region selection for long-form video question answering.

Public names load lazily (PEP 562) so that ``import mist_videoqa`` stays light (no transformers at import time).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MIST": "mist_videoqa.models.mist",
    "MISTConfig": "mist_videoqa.models.config",
    "Selection": "mist_videoqa.models.selection",
    "cascade_select": "mist_videoqa.models.selection",
    "gumbel_topk": "mist_videoqa.models.selection",
    "segment_features": "mist_videoqa.models.selection",
    "RunConfig": "mist_videoqa.config",
    "load_train_config": "mist_videoqa.config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mist_videoqa' has no attribute {name!r}")
