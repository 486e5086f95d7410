"""darwinian-upgrades: backward-compatible retrieval model upgrades (BCT) and Darwinian Model Upgrades
(Zhang et al., AAAI 2023, arXiv 2210.06954): selective compatibility, forward adaptation, hot-refresh backfilling.

Public classes load lazily (PEP 562) so that ``import darwinian_upgrades`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "EmbeddingModel": "darwinian_upgrades.models.embedding",
    "ForwardAdapter": "darwinian_upgrades.models.adapter",
    "UpgradeModel": "darwinian_upgrades.models.adapter",
    "GalleryStore": "darwinian_upgrades.gallery",
    "bct_influence_loss": "darwinian_upgrades.losses",
    "discriminativeness": "darwinian_upgrades.losses",
    "selective_compatibility_loss": "darwinian_upgrades.losses",
    "forward_adaptation_loss": "darwinian_upgrades.losses",
    "synthesise_old_rows": "darwinian_upgrades.losses",
    "gallery_uncertainty": "darwinian_upgrades.backfill",
    "backfill_order": "darwinian_upgrades.backfill",
    "backfilled_gallery": "darwinian_upgrades.backfill",
    "map_at_k": "darwinian_upgrades.evaluate",
    "negative_flip_rate": "darwinian_upgrades.evaluate",
    "revisitop_map": "darwinian_upgrades.evaluate",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'darwinian_upgrades' has no attribute {name!r}")
