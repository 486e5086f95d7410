"""STPrivacy (ICCV 2023): privacy-preserving action recognition by tubelet sparsification and anonymization.

Light import: public classes load on first use (lazy_loader), so ``import stprivacy`` pulls in neither sklearn nor PyAV.
"""

from __future__ import annotations

import lazy_loader

__version__ = "0.1.0"

# Public names import their module on first use, so `import stprivacy` and the CLI's --help stay light.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "models": [
            "Conv3dNet",
            "PooledMLP",
            "STPrivacy",
            "TokenPredictor",
            "VideoViT",
            "freeze_for_anonymization",
            "inflate_image_checkpoint",
            "masked_softmax",
        ],
        "data": ["load_privacy_labels"],
        "evaluate": ["privacy_metrics"],
    },
)
