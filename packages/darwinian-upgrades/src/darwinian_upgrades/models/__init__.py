"""Models: the embedding model φ/ω, the forward adapter ψ and the old/new pair."""

from __future__ import annotations

from pathlib import Path

from darwinian_upgrades.models.adapter import ForwardAdapter, UpgradeModel
from darwinian_upgrades.models.embedding import EmbeddingModel, GeM, TinyCNN, class_logits

__all__ = [
    "EmbeddingModel",
    "ForwardAdapter",
    "GeM",
    "TinyCNN",
    "UpgradeModel",
    "class_logits",
    "load_adapter",
    "load_model",
]


def _folder(path: str | Path) -> Path:
    """A saved model folder, or a training run folder holding ``model/``."""
    path = Path(path)
    return path / "model" if (path / "model" / "config.json").is_file() else path


def load_model(path: str | Path) -> EmbeddingModel:
    """An ``EmbeddingModel`` from a saved folder or a training run folder (eval mode, CPU)."""
    return EmbeddingModel.from_pretrained(_folder(path))


def load_adapter(path: str | Path) -> ForwardAdapter:
    """ψ from a saved folder or a ``train-adapter`` run folder (eval mode, CPU)."""
    return ForwardAdapter.from_pretrained(_folder(path))
