"""Question-conditioned selection of segments and regions (MIST Sec. 3.2, "cascade segment and region selection").

Two ways to choose ``k`` of ``n`` candidates from their scores:

* ``official`` (the released code): ``p = softmax(scores)`` with *unscaled* scores, then ``k`` independent soft
  Gumbel-softmax draws that take the *probabilities* as logits (tau 1). Draws can repeat and sampling stays on at
  evaluation, so evaluation is stochastic.
* ``topk`` (our default): training draws ``k`` Gumbel-softmax samples from the log-probabilities, soft
  (``relax="soft"``, with replacement), soft without replacement (``relax="subset"``), or ``k`` distinct hard picks (Gumbel-top-k) straight-through (``relax="st"``); evaluation takes the ``k`` best candidates without
  repeats, deterministically, with straight-through gradients (`cascade_select`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "MODES",
    "RELAXATIONS",
    "Selection",
    "cascade_select",
    "gumbel_topk",
    "hard_topk",
    "segment_features",
]

MODES = ("topk", "official")
RELAXATIONS = ("soft", "subset", "st")


def segment_features(frame_feats: torch.Tensor, num_segments: int) -> torch.Tensor:
    """[B, T, D] -> [B, S, D]: mean of each segment's L2-normalised frames, not re-normalised (official ``seg_feat``)."""
    b, t, d = frame_feats.shape
    if num_segments < 1 or t % num_segments:
        raise ValueError(f"{t} frames cannot be split into {num_segments} equal segments")
    unit = F.normalize(frame_feats, dim=-1)
    return unit.view(b, num_segments, t // num_segments, d).mean(dim=2)


def hard_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the ``k`` best candidates (descending score, no repeats) and their straight-through one-hots.

    The one-hots [..., k, N] are exactly 0/1 in the forward pass; their gradient is that of ``softmax(scores)``.
    """
    if not 1 <= k <= scores.shape[-1]:
        raise ValueError(f"cannot select {k} of {scores.shape[-1]} candidates")
    idx = scores.topk(k, dim=-1, sorted=True).indices
    hard = F.one_hot(idx, scores.shape[-1]).to(scores.dtype)
    soft = scores.softmax(dim=-1).unsqueeze(-2)
    return idx, hard + (soft - soft.detach())  # x - x == 0 exactly, so the forward value is the hard one-hot


def gumbel_topk(
    scores: torch.Tensor,
    k: int,
    *,
    mode: str = "topk",
    relax: str = "soft",
    tau: float = 1.0,
    training: bool = True,
) -> torch.Tensor:
    """Selection weights [..., k, N] for ``k`` picks among the last dimension of ``scores`` [..., N].

    Row ``i`` of the result mixes the candidates for pick ``i`` (``weights @ values`` selects). See the module
    docstring for the modes; ``training`` only matters in ``topk`` mode (``official`` samples always).
    """
    if mode not in MODES:
        raise ValueError(f"unknown selection mode {mode!r} (known: {', '.join(MODES)})")
    if relax not in RELAXATIONS:
        raise ValueError(f"unknown relaxation {relax!r} (known: {', '.join(RELAXATIONS)})")
    if mode == "official":
        probs = scores.softmax(dim=-1)  # fed as logits, as released
        return torch.stack([F.gumbel_softmax(probs, tau=tau, hard=False, dim=-1) for _ in range(k)], dim=-2)
    if not training:
        return hard_topk(scores, k)[1]
    logp = scores.log_softmax(dim=-1)
    if relax == "st":
        return _gumbel_topk_st(logp, k, tau)
    if relax == "subset":
        return _gumbel_subset_soft(logp, k, tau)
    return torch.stack([F.gumbel_softmax(logp, tau=tau, hard=False, dim=-1) for _ in range(k)], dim=-2)


def _gumbel_topk_st(logp: torch.Tensor, k: int, tau: float) -> torch.Tensor:
    """k DISTINCT hard picks (Gumbel-top-k: the k best of one Gumbel-perturbed draw), straight-through.

    Distinct like the evaluation's top-k: with k independent hard draws a confident selector picks the same candidate
    k times, so training never shows the reader the k - 1 other picks that evaluation feeds it.
    """
    perturbed = logp - torch.empty_like(logp).exponential_().log()  # + Gumbel(0, 1) noise
    hard = F.one_hot(perturbed.topk(k, dim=-1).indices, logp.shape[-1]).to(logp.dtype)
    soft = (perturbed / tau).softmax(dim=-1).unsqueeze(-2)
    return hard + (soft - soft.detach())


def _gumbel_subset_soft(logp: torch.Tensor, k: int, tau: float) -> torch.Tensor:
    """k soft picks WITHOUT replacement (relaxed subset sampling, Xie & Ermon 2019): one Gumbel-perturbed draw, and
    after each soft pick the picked mass is removed (log(1 - w)) before the next, so that, as at evaluation, the k
    picks are distinct candidates once the selector is confident (with replacement they all become the best one).
    """
    keys = logp - torch.empty_like(logp).exponential_().log()  # + Gumbel(0, 1) noise
    picks = []
    for _ in range(k):
        w = (keys / tau).softmax(dim=-1)
        picks.append(w)
        keys = keys + torch.log1p(-w.clamp(max=1.0 - 1e-6))
    return torch.stack(picks, dim=-2)


class Selection(NamedTuple):
    """Selected region tokens [B, topk*F*topj, D], segment indices [B, topk], region indices [B, topk*F, topj]."""

    tokens: torch.Tensor
    segments: torch.Tensor
    regions: torch.Tensor


def cascade_select(
    segment_scores: torch.Tensor,
    region_scores: torch.Tensor,
    regions: torch.Tensor,
    *,
    topk: int,
    topj: int,
) -> Selection:
    """Hard top-k segments, then the hard top-j regions of each of their frames (the evaluation path of ``topk``).

    ``segment_scores`` [B, S], ``region_scores`` [B, T, R], ``regions`` [B, T, R, D] with T = S * F. Token order:
    segments by descending score, their frames in time order, regions by descending score. The forward pass is exactly
    the hard selection; gradients reach both score tensors straight-through (through their softmaxes).
    """
    b, s = segment_scores.shape
    _, t, r, d = regions.shape
    if region_scores.shape != (b, t, r) or t % s:
        raise ValueError(
            f"cascade_select: region_scores {tuple(region_scores.shape)} and regions {tuple(regions.shape)} "
            f"do not fit segment_scores {tuple(segment_scores.shape)}"
        )
    f = t // s
    seg_idx, seg_w = hard_topk(segment_scores, topk)  # [B, k], [B, k, S]
    per_segment = regions.view(b, s, f * r * d)
    frames = (seg_w @ per_segment).view(b, topk * f, r, d)  # exact copies of the chosen segments' frames
    frame_idx = (seg_idx.unsqueeze(-1) * f + torch.arange(f, device=seg_idx.device)).view(b, topk * f)
    chosen_scores = region_scores.gather(1, frame_idx.unsqueeze(-1).expand(b, topk * f, r))
    reg_idx, reg_w = hard_topk(chosen_scores, topj)  # [B, k*F, j], [B, k*F, j, R]
    tokens = (reg_w @ frames).reshape(b, topk * f * topj, d)
    return Selection(tokens, seg_idx, reg_idx)
