"""cyclic-walks: slot attention trained by cyclic walks between parts and whole (Wang, Shou, Zhang, NeurIPS 2023).

The public names load on first use (lazy_loader), so ``import cyclic_walks`` and the CLI's ``--help`` stay fast.
"""

from __future__ import annotations

import lazy_loader

__version__ = "0.1.0"

# Public names import their module on first use, so `import cyclic_walks` and the CLI's --help stay light.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "models.sacrw": ["CyclicWalks", "masks_from_transition"],
        "models.dinosaur": ["DecoderBaseline"],
        "models.slot_attention": ["SlotAttention", "SlotEncoder"],
        "losses": ["WalkLosses", "cyclic_walk_losses", "walk_transitions"],
    },
)
