"""Hot-refresh backfilling (RACT, ICLR 2022): swap new features into the base gallery, most uncertain first."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def gallery_uncertainty(old_logits: torch.Tensor, *, tau: float = 1.0) -> torch.Tensor:
    """Normalised entropy of the old classifier, H(softmax(logits/τ)) / log C, in [0, 1]."""
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    logp = torch.log_softmax(old_logits.detach().double() / tau, dim=1)
    entropy = -(logp.exp() * logp).sum(dim=1)
    return (entropy / math.log(old_logits.shape[1])).float()


def backfill_order(
    uncertainty: torch.Tensor, *, strategy: str = "uncertainty", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gallery indices in backfilling order: most uncertain first (stable), or a random permutation."""
    if strategy == "uncertainty":
        return torch.sort(uncertainty, descending=True, stable=True).indices
    if strategy == "random":
        return torch.randperm(uncertainty.shape[0], generator=generator)
    raise ValueError(f"backfill order must be 'uncertainty' or 'random', got {strategy!r}")


def backfilled_gallery(
    base: torch.Tensor, new: torch.Tensor, order: torch.Tensor, fraction: float
) -> torch.Tensor:
    """``base`` with the first ⌊fraction·N⌋ items of ``order`` replaced by their ``new`` features (both [N, d])."""
    if base.shape != new.shape:
        raise ValueError(
            f"backfill: base gallery {tuple(base.shape)} and new gallery {tuple(new.shape)} differ"
        )
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"backfill fraction must lie in [0, 1], got {fraction}")
    count = math.floor(fraction * base.shape[0] + 1e-9)
    out = base.clone()
    idx = order[:count]
    out[idx] = new[idx]
    return out


def curve_area(fractions: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area under a backfilling curve (fractions in [0, 1])."""
    return float(np.trapezoid(np.asarray(values, dtype=float), np.asarray(fractions, dtype=float)))
