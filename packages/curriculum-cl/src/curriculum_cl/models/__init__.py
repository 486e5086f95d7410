"""Feature extractors (frozen or trainable) and the learner's head."""

from curriculum_cl.models.extractors import EXTRACTORS, SmallCNN, build_extractor

__all__ = ["EXTRACTORS", "SmallCNN", "build_extractor"]
