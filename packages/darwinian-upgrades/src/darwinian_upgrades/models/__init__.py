"""Models: the embedding model φ/ω, the forward adapter ψ and the old/new pair."""

from darwinian_upgrades.models.adapter import ForwardAdapter, UpgradeModel
from darwinian_upgrades.models.embedding import EmbeddingModel, GeM, TinyCNN, class_logits

__all__ = ["EmbeddingModel", "ForwardAdapter", "GeM", "TinyCNN", "UpgradeModel", "class_logits"]
