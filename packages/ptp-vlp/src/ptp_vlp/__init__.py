"""PTP (position-guided text prompts, arXiv 2212.09737) for vision-language pretraining, on a BLIP base.

``ptp_vlp.prompts`` holds the block tags and prompt rules; the models load lazily (transformers is heavy)::

    from ptp_vlp import BLIPPretrain, BLIPConfig
"""

from __future__ import annotations

import lazy_loader

__version__ = "0.1.0"

# Public names import their module on first use, so `import ptp_vlp` and the CLI's --help stay light.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "models.blip": ["BLIPCaption", "BLIPConfig", "BLIPPretrain", "BLIPRetrieval"],
    },
)
