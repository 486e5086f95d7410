"""Losses of the three training phases (paper Sec. 3.4; DynamicViT's ratio loss)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .models.layers import video_to_tubelets

__all__ = ["PRIVACY_LOSS_MODES", "privacy_loss", "reconstruction_loss", "sparsity_loss"]

PRIVACY_LOSS_MODES = ("neg_bce", "uniform")


def sparsity_loss(decisions: Sequence[torch.Tensor], keep_ratio: float) -> torch.Tensor:
    """L_Spars: mean over stages s (from 1) of the batch mean of (kept fraction - alpha^s)^2 (cumulative targets)."""
    terms = [
        (d.flatten(1).float().mean(1) - keep_ratio ** (s + 1)).square().mean()
        for s, d in enumerate(decisions)
    ]
    return torch.stack(terms).mean()


def reconstruction_loss(
    output: torch.Tensor, target: torch.Tensor, keep: torch.Tensor, tubelet: Sequence[int]
) -> torch.Tensor:
    """MSE over kept tubelets only, with ``keep`` detached (ours: a recon loss reaching the decisions drives keep to 0)."""
    w = keep.detach().unsqueeze(-1)
    err = (video_to_tubelets(output, tuple(tubelet)) - video_to_tubelets(target, tuple(tubelet))).square() * w
    return err.sum() / (w.sum() * err.shape[-1]).clamp_min(1.0)


def privacy_loss(
    logits: torch.Tensor, labels: torch.Tensor, mode: str = "uniform", clip: float = 0.6931
) -> torch.Tensor:
    """The anonymizer's privacy term (to minimise), from a privacy recognizer's 5 logits.

    ``neg_bce`` (the paper's -L_Privacy): minus the attacker's BCE, clipped at ``clip`` (ln 2 = chance) so that the
    maximisation is bounded. ``uniform`` (Wu et al. / SPAct-style): BCE towards 0.5 for every attribute.
    """
    if mode == "neg_bce":
        return -F.binary_cross_entropy_with_logits(logits, labels.float()).clamp(max=clip)
    if mode == "uniform":
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 0.5))
    raise ValueError(f"privacy loss mode must be one of {', '.join(PRIVACY_LOSS_MODES)}, got {mode!r}")
