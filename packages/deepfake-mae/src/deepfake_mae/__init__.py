"""DeepfakeMAE / Mover (arXiv 2303.01740): facial-part MAE pretraining on real faces and the dual-network deepfake
video detector (pretrained encoder + reconstruction-discrepancy branch)."""

from deepfake_mae.models.detector import DeepfakeDetector
from deepfake_mae.models.mae import FacePartMAE
from deepfake_mae.models.masking import facial_part_mask, part_boxes, patch_membership, random_mask

__version__ = "0.1.0"
__all__ = [
    "DeepfakeDetector",
    "FacePartMAE",
    "facial_part_mask",
    "part_boxes",
    "patch_membership",
    "random_mask",
]
