"""MIST (arXiv 2212.09522): cascaded segment and region selection for long-form video question answering.

Public names load lazily (lazy_loader) so that ``import mist_videoqa`` stays light (no transformers at import time).
"""

from __future__ import annotations

import lazy_loader

__version__ = "0.1.0"

# Public names import their module on first use, so `import mist_videoqa` and the CLI's --help stay light.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "models.mist": ["MIST"],
        "models.config": ["MISTConfig"],
        "models.selection": ["Selection", "cascade_select", "gumbel_topk", "segment_features"],
        "config": ["RunConfig", "load_train_config"],
    },
)
