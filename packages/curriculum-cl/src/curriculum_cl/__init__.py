"""curriculum-cl: class-order curricula for class-incremental learning, and the curriculum designer
(Singh et al., "Learning to Learn: How to Continuously Teach Humans and Machines", ICCV 2023)."""

from __future__ import annotations

import lazy_loader

__version__ = "0.1.0"

# Public names import their module on first use, so `import curriculum_cl` and the CLI's --help stay light.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "curricula": ["CurriculumSpace"],
        "designer": ["score_order"],
        "scoring": ["f_score"],
    },
)
