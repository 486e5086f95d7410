"""DeepfakeMAE / Mover (arXiv 2303.01740): facial-part MAE pretraining on real faces and the dual-network deepfake
video detector (pretrained encoder + reconstruction-discrepancy branch).

The public names load on first use (lazy_loader): ``import deepfake_mae`` and the CLI's ``--help`` do not import timm.
"""

from __future__ import annotations

import lazy_loader

__version__ = "0.1.0"

# Public names import their module on first use, so `import deepfake_mae` and the CLI's --help stay light.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "models.detector": ["DeepfakeDetector"],
        "models.mae": ["FacePartMAE"],
        "models.masking": ["facial_part_mask", "part_boxes", "patch_membership", "random_mask"],
    },
)
