"""Cyclic walks between parts (features) and whole (slots), paper Sec. 3.2, plus the decoder baseline's loss.

Normalisations follow the official code exactly so that the paper's alpha/beta keep their meaning:
whole-parts-whole is a mean over B*K*K entries (one extra 1/K against a per-row cross-entropy), parts-whole-parts a
mean over B*N*N entries (a per-row cross-entropy divided by N). The ``+1e-4`` inside the logs is the paper's.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

LOG_EPS = 1e-4
MASKED_AFFINITY = -1e4  # cosines below the threshold are replaced by this before the /tau softmax


class WalkLosses(NamedTuple):
    wpw: torch.Tensor  # whole -> parts -> whole, target the identity
    pwp: torch.Tensor  # parts -> whole -> parts, target the thresholded feature affinity


def walk_transitions(
    features: torch.Tensor, slots: torch.Tensor, tau: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features [B, N, C], slots [B, K, C] -> (A_fs [B, N, K] softmax over slots, A_sf [B, K, N] softmax over features)."""
    similarity = torch.einsum("bnc,bkc->bnk", F.normalize(features, dim=-1), F.normalize(slots, dim=-1)) / tau
    return similarity.softmax(dim=-1), similarity.transpose(1, 2).softmax(dim=-1)


def feature_affinity_target(
    features: torch.Tensor,
    tau: float = 0.1,
    threshold: float = 0.7,
    position_prior: torch.Tensor | None = None,
) -> torch.Tensor:
    """Row-softmax of the hard-thresholded cosine affinity / tau, [B, N, N]; optionally averaged with a prior [N, N]."""
    f = F.normalize(features, dim=-1)
    cosine = f @ f.transpose(1, 2)
    cosine = torch.where(cosine >= threshold, cosine, torch.full_like(cosine, MASKED_AFFINITY))
    target = (cosine / tau).softmax(dim=-1)
    if position_prior is not None:
        target = 0.5 * (target + position_prior.to(target))
    return target


def positional_prior(pos_embed: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """MOVi's optional prior: row-softmax of the cosine between 2-D sin-cos position embeddings [N, D] / tau."""
    pe = F.normalize(pos_embed, dim=-1)
    return (pe @ pe.T / tau).softmax(dim=-1)


def cyclic_walk_losses(
    features: torch.Tensor,
    slots: torch.Tensor,
    tau: float = 0.1,
    affinity_threshold: float = 0.7,
    position_prior: torch.Tensor | None = None,
) -> WalkLosses:
    """Both cycle-consistency losses of the paper (Eq. 3 and 4) for features [B, N, C] and slots [B, K, C].

    The features are the frozen backbone's and are detached: the gradient reaches the slots only.
    """
    features = features.detach()
    a_fs, a_sf = walk_transitions(features, slots, tau)
    b, n, k = a_fs.shape
    whole_parts_whole = a_sf @ a_fs  # [B, K, K]
    eye = torch.eye(k, device=slots.device, dtype=whole_parts_whole.dtype)
    wpw = -(torch.log(whole_parts_whole + LOG_EPS) * eye).sum() / (b * k * k)
    parts_whole_parts = a_fs @ a_sf  # [B, N, N]
    target = feature_affinity_target(features, tau, affinity_threshold, position_prior)
    pwp = -(target * torch.log(parts_whole_parts + LOG_EPS)).sum() / (b * n * n)
    return WalkLosses(wpw=wpw, pwp=pwp)


def feature_reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DINOSAUR's objective: MSE between the decoded and the (standardised) frozen features."""
    return F.mse_loss(reconstruction, target.detach())
