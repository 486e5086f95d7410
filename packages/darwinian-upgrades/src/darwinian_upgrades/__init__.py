"""darwinian-upgrades: backward-compatible retrieval model upgrades (BCT) and Darwinian Model Upgrades
(Zhang et al., AAAI 2023, arXiv 2210.06954): selective compatibility, forward adaptation, hot-refresh backfilling.

Public classes load lazily (lazy_loader) so that ``import darwinian_upgrades`` stays light.
"""

from __future__ import annotations

import lazy_loader

__version__ = "0.1.0"

# Public names import their module on first use, so `import darwinian_upgrades` and the CLI's --help stay light.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "models.embedding": ["EmbeddingModel"],
        "models.adapter": ["ForwardAdapter", "UpgradeModel"],
        "gallery": ["GalleryStore"],
        "losses": [
            "bct_influence_loss",
            "discriminativeness",
            "forward_adaptation_loss",
            "selective_compatibility_loss",
            "synthesise_old_rows",
        ],
        "backfill": ["backfill_order", "backfilled_gallery", "gallery_uncertainty"],
        "evaluate": ["map_at_k", "negative_flip_rate", "revisitop_map"],
    },
)
