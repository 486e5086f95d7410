"""curriculum-cl: class-order curricula for class-incremental learning, and the curriculum designer
(Singh et al., "Learning to Learn: How to Continuously Teach Humans and Machines", ICCV 2023)."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["CurriculumSpace", "f_score", "score_order"]

# PEP 562: the public names load on first use, so `curriculum-cl --help` does not pay for torch and scipy.
_LAZY = {
    "CurriculumSpace": "curriculum_cl.curricula",
    "score_order": "curriculum_cl.designer",
    "f_score": "curriculum_cl.scoring",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'curriculum_cl' has no attribute {name!r}")
