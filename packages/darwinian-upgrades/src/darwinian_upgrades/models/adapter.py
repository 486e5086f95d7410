"""Forward adaptation ψ (DMU's "variation") and the old/new pair trained by BCT and DMU."""

from __future__ import annotations

import torch
from torch import nn

from darwinian_upgrades.models.embedding import EmbeddingModel, class_logits
from visioncore.hub import PretrainedMixin


class ForwardAdapter(nn.Module, PretrainedMixin):
    """ψ: d_o -> d_n, Linear(d_o, 2·d_n) + BN + ReLU + Linear(2·d_n, d_n), residual when d_o = d_n.

    Lifts stored old gallery features into the new space (deployment G' = ψ(φ_o(G)), no image is re-read).
    ``identity=True`` builds the parameter-free ψ(x) = x used to check that DMU reduces to BCT.
    """

    def __init__(self, old_dim: int, new_dim: int, *, identity: bool = False):
        super().__init__()
        if old_dim < 1 or new_dim < 1:
            raise ValueError(f"ForwardAdapter: dimensions must be positive, got {old_dim} -> {new_dim}")
        if identity and old_dim != new_dim:
            raise ValueError(f"ForwardAdapter: an identity ψ needs d_o = d_n, got {old_dim} -> {new_dim}")
        self.old_dim, self.new_dim, self.identity = old_dim, new_dim, identity
        self.residual = old_dim == new_dim
        self.mlp = (
            nn.Identity()
            if identity
            else nn.Sequential(
                nn.Linear(old_dim, 2 * new_dim),
                nn.BatchNorm1d(2 * new_dim),
                nn.ReLU(inplace=True),
                nn.Linear(2 * new_dim, new_dim),
            )
        )

    def forward(self, old_feats: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return old_feats
        out = self.mlp(old_feats)
        return out + old_feats if self.residual else out


class UpgradeModel(nn.Module):
    """The new model φ_n/ω_n trained next to a frozen old one φ_o/ω_o (and, jointly, ψ).

    The old parameters get ``requires_grad=False`` one by one (upstream sets the flag on parameter *generators*,
    which freezes nothing) and the old model stays in eval mode whatever ``train()`` is called with, so its
    BatchNorm statistics never move.
    """

    def __init__(
        self, new: EmbeddingModel, old: EmbeddingModel | None = None, adapter: ForwardAdapter | None = None
    ):
        super().__init__()
        self.new, self.old, self.adapter = new, old, adapter
        if old is not None:
            for param in old.parameters():
                param.requires_grad_(False)
            old.eval()

    def train(self, mode: bool = True) -> UpgradeModel:
        super().train(mode)
        if self.old is not None:
            self.old.eval()
        return self

    def set_old_weight(self, weight: torch.Tensor) -> None:
        """Old classifier rows used for old logits and the influence losses (real rows plus synthesised ones)."""
        self.register_buffer("old_weight", weight.detach().clone(), persistent=False)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """New features and logits; with an old model also its (gradient-free) features and logits, and ψ(φ_o)."""
        new_feats, new_logits = self.new(images, labels)
        out = {"new_feats": new_feats, "new_logits": new_logits}
        if self.old is not None:
            with torch.no_grad():
                old_feats = self.old.embed(images)
                weight = getattr(self, "old_weight", self.old.fc_classifier.weight)
                scale = self.old.scale if self.old.head != "linear" else None
                out["old_feats"] = old_feats
                out["old_logits"] = class_logits(old_feats, weight, head=self.old.head, scale=scale)
            if self.adapter is not None:
                out["adapted"] = self.adapter(old_feats)
        return out
