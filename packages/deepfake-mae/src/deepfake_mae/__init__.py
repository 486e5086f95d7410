"""DeepfakeMAE / Mover (arXiv 2303.01740): facial-part MAE pretraining on real faces and the dual-network deepfake
video detector (pretrained encoder + reconstruction-discrepancy branch).

The public names load on first use (PEP 562): ``import deepfake_mae`` and the CLI's ``--help`` do not import timm.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "DeepfakeDetector": "deepfake_mae.models.detector",
    "FacePartMAE": "deepfake_mae.models.mae",
    "facial_part_mask": "deepfake_mae.models.masking",
    "part_boxes": "deepfake_mae.models.masking",
    "patch_membership": "deepfake_mae.models.masking",
    "random_mask": "deepfake_mae.models.masking",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'deepfake_mae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
