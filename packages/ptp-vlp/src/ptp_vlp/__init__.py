"""PTP (position-guided text prompts, arXiv 2212.09737) for vision-language pretraining, on a BLIP base.

``ptp_vlp.prompts`` holds the block tags and prompt rules; the models load lazily (transformers is heavy)::

    from ptp_vlp import BLIPPretrain, BLIPConfig
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["BLIPCaption", "BLIPConfig", "BLIPPretrain", "BLIPRetrieval", "__version__"]


def __getattr__(name: str) -> Any:  # PEP 562: import the models on first use only
    if name in ("BLIPCaption", "BLIPConfig", "BLIPPretrain", "BLIPRetrieval"):
        from ptp_vlp.models import blip

        return getattr(blip, name)
    raise AttributeError(f"module 'ptp_vlp' has no attribute {name!r}")
