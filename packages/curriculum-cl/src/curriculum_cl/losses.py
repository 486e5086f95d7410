"""Losses of the continual learners, written for a leading "runs" dimension so that many independent heads train
in one batched step (a plain model is the case of one run).

Shapes: logits ``[R, B, C]``, targets ``[R, B]``, sample mask ``[R, B]`` (False = padding); parameters ``[R, ...]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-run mean cross-entropy over the valid samples, shape [R] (0 for a run with no valid sample)."""
    nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)
    mask = mask.to(nll.dtype)
    return (nll * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def ewc_penalty(
    params: list[torch.Tensor], anchors: list[list[torch.Tensor]], importances: list[list[torch.Tensor]]
) -> torch.Tensor:
    """EWC 'separate' penalty (Kirkpatrick et al. 2017; Avalanche 0.1): one quadratic term per past experience k,
    sum_k sum_p F_k,p (theta_p - theta*_k,p)^2, per run, shape [R]. Multiply by lambda (no 1/2, as Avalanche)."""
    total = params[0].new_zeros(params[0].shape[0])
    for anchor_k, importance_k in zip(anchors, importances):
        for p, a, f in zip(params, anchor_k, importance_k):
            total = total + (f * (p - a).pow(2)).flatten(1).sum(1)
    return total


def lwf_distillation(
    logits: torch.Tensor,
    prev_logits: torch.Tensor,
    unit_mask: torch.Tensor,
    sample_mask: torch.Tensor,
    T: float,
) -> torch.Tensor:
    """LwF distillation (Li & Hoiem 2017) as Avalanche 0.1's ``_distillation_loss``: softmaxes over *all* output
    units, then KL(q || p) summed over the previously active units only, 'batchmean' over valid samples, [R].

    q = softmax(prev/T), p = softmax(cur/T); ``unit_mask`` [R, C] marks the units of classes seen before the current
    experience. Because the softmax spans every unit, a new class's rising logit is penalised too.
    """
    log_p = torch.log_softmax(logits / T, dim=-1)
    log_q = torch.log_softmax(prev_logits / T, dim=-1)
    kl = (log_q.exp() * (log_q - log_p) * unit_mask[:, None, :]).sum(-1)
    mask = sample_mask.to(kl.dtype)
    return (kl * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def si_penalty(
    params: list[torch.Tensor], anchors: list[torch.Tensor], omegas: list[torch.Tensor]
) -> torch.Tensor:
    """Synaptic Intelligence surrogate (Zenke et al. 2017): sum_p Omega_p (theta_p - theta*_p)^2 per run, [R]."""
    total = params[0].new_zeros(params[0].shape[0])
    for p, a, o in zip(params, anchors, omegas):
        total = total + (o * (p - a).pow(2)).flatten(1).sum(1)
    return total


def si_consolidate(
    omega: list[torch.Tensor], path_integral: list[torch.Tensor], delta: list[torch.Tensor], eps: float
) -> list[torch.Tensor]:
    """Omega += w / (Delta^2 + eps) after an experience (w: path integral of -g * dtheta; Delta: total change)."""
    return [o + (w / (d.pow(2) + eps)).clamp_min(0.0) for o, w, d in zip(omega, path_integral, delta)]
