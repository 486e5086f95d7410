"""Losses: BCT's influence loss, DMU's selective compatibility and forward adaptation (Sec. 3), and the
comparison losses of OpenCompatible (``l2``, ``fd``, ``contra_ract``), written from their descriptions.

Notation: φ_o/ω_o old embedding/classifier (frozen), φ_n/ω_n new ones, ψ the forward adapter, s_i the old model's
discriminativeness of sample i. Per-sample terms are reduced by one weighted mean, so that DMU with all scores 1
gives BCT's number bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from darwinian_upgrades.models.embedding import class_logits

__all__ = [
    "bct_influence_loss",
    "contra_ract_loss",
    "discriminativeness",
    "focal_distillation_loss",
    "forward_adaptation_loss",
    "l2_compat_loss",
    "selective_compatibility_loss",
    "synthesise_old_rows",
]


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (weights * values).sum() / weights.sum().clamp_min(1e-12)


def _ce(
    feats: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, head: str, scale: float | None
) -> torch.Tensor:
    """Per-sample CE of ``feats`` under classifier rows ``weight``; no ArcFace margin on a borrowed classifier."""
    return F.cross_entropy(class_logits(feats, weight, head=head, scale=scale), labels, reduction="none")


def bct_influence_loss(
    new_feats: torch.Tensor,
    old_weight: torch.Tensor,
    labels: torch.Tensor,
    *,
    head: str = "linear",
    scale: float | None = None,
) -> torch.Tensor:
    """BCT's influence loss: mean_i CE(ω_o·φ_n(x_i), y_i), the frozen old classifier scoring new features.

    ``head="cosine"``/``"arcface"`` normalise features and rows and multiply by ``scale`` (64 if None), as an
    ArcFace old head would; ``linear`` uses raw features (OpenCompatible's choice even for margin heads).
    """
    ce = _ce(new_feats, old_weight.detach(), labels, head, scale)
    return _weighted_mean(ce, torch.ones_like(ce))


def discriminativeness(old_logits: torch.Tensor, labels: torch.Tensor, *, tau: float = 1.0) -> torch.Tensor:
    """s_i = softmax(ω_o·φ_o(x_i) / τ)[y_i], detached: how well the old feature already separates its class."""
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    probs = torch.softmax(old_logits.detach().float() / tau, dim=1)
    return probs.gather(1, labels[:, None]).squeeze(1)


def selective_compatibility_loss(
    new_feats: torch.Tensor,
    old_weight: torch.Tensor,
    labels: torch.Tensor,
    scores: torch.Tensor,
    *,
    gamma: float = 1.0,
    head: str = "linear",
    scale: float | None = None,
) -> torch.Tensor:
    """DMU's selective backward compatibility: L_sbc = Σ s_i^γ CE(ω_o·φ_n(x_i), y_i) / Σ s_i^γ.

    Well-separated old samples pass their knowledge on; poor ones (small s_i) hardly constrain the new model.
    """
    ce = _ce(new_feats, old_weight.detach(), labels, head, scale)
    return _weighted_mean(ce, scores.detach().to(ce.dtype).pow(gamma))


def forward_adaptation_loss(
    adapted: torch.Tensor,
    new_feats: torch.Tensor,
    new_weight: torch.Tensor,
    labels: torch.Tensor,
    scores: torch.Tensor,
    *,
    head: str = "linear",
    scale: float | None = None,
    l2_weight: float = 1.0,
) -> torch.Tensor:
    """DMU's forward adaptation: Σ w_i [CE(ω_n·ψ(φ_o(x_i)), y_i) + l2_weight·‖n(ψ(φ_o(x_i))) − n(sg φ_n(x_i))‖²] / Σ w_i.

    w_i = 2 − s_i weights poor old features up (1 + (1 − s_i)); n = L2 normalisation; sg = stop-gradient. The
    caller decides whether ω_n receives gradients (the training loop passes it detached: ψ moves to the new space,
    not the other way round).
    """
    ce = _ce(adapted, new_weight, labels, head, scale)
    target = F.normalize(new_feats.detach(), dim=1)
    l2 = (F.normalize(adapted, dim=1) - target).pow(2).sum(dim=1)
    weights = 2.0 - scores.detach().to(ce.dtype)
    return _weighted_mean(ce + l2_weight * l2, weights)


def synthesise_old_rows(
    old_weight: torch.Tensor,
    old_feats: torch.Tensor,
    labels: torch.Tensor,
    seen: torch.Tensor,
    *,
    normalize: bool = False,
) -> torch.Tensor:
    """Old-classifier rows for classes the old model never saw (class growth): the class-mean old feature.

    ``old_weight`` [C, d_o]; ``old_feats`` [N, d_o] with ``labels`` [N]; ``seen`` [C] bool. Rows of unseen classes
    that occur in ``labels`` become the mean of their old features (L2-normalised with ``normalize``, for cosine
    heads); seen rows and absent classes are kept. Original BCT (openBCT #1) without pre-extracted prototypes.
    """
    weight = old_weight.detach().clone()
    feats = old_feats.detach().to(weight.dtype)
    sums = torch.zeros_like(weight).index_add_(0, labels, feats)
    counts = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    counts.index_add_(0, labels, torch.ones_like(labels, dtype=weight.dtype))
    fill = (~seen.bool()) & (counts > 0)
    means = sums[fill] / counts[fill, None]
    weight[fill] = F.normalize(means, dim=1) if normalize else means
    return weight


def l2_compat_loss(new_feats: torch.Tensor, old_feats: torch.Tensor) -> torch.Tensor:
    """``l2``: mean over batch × dim of (n(φ_n) − n(φ_o))², both L2-normalised (as OpenCompatible)."""
    return (F.normalize(new_feats, dim=1) - F.normalize(old_feats.detach(), dim=1)).pow(2).mean()


def focal_distillation_loss(
    new_feats: torch.Tensor, old_feats: torch.Tensor, new_logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """``fd``: per-sample mean squared distance of raw features, weighted 5·1[new prediction right] + 1."""
    right = (new_logits.detach().argmax(dim=1) == labels).to(new_feats.dtype)
    per_sample = (new_feats - old_feats.detach()).pow(2).mean(dim=1)
    return _weighted_mean(per_sample, 5.0 * right + 1.0)


def _gather_keep_local(x: torch.Tensor) -> torch.Tensor:
    """All-gather along dim 0; the local slice keeps its gradient, the others are copies (as upstream)."""
    import torch.distributed as dist

    parts = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts)


def contra_ract_loss(
    new_feats: torch.Tensor,
    old_feats: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 0.01,
    gather: bool | None = None,
) -> torch.Tensor:
    """RACT's ``contra_ract``: InfoNCE with positive (φ_n(x_i), φ_o(x_i)); negatives are the old and new features
    of other-class samples. Features are gathered across processes only when the world has more than one process
    (``gather=None``), so one process needs no process group."""
    import torch.distributed as dist

    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    gather = world > 1 if gather is None else gather
    new = F.normalize(new_feats, dim=1)
    old = F.normalize(old_feats.detach(), dim=1)
    all_new, all_old, all_labels = new, old, labels
    if gather and world > 1:
        all_new, all_old = _gather_keep_local(new), _gather_keep_local(old)
        all_labels = _gather_keep_local(labels)
    same = labels[:, None] == all_labels[None, :]
    pos = (new * old).sum(dim=1, keepdim=True)
    neg_old = (new @ all_old.t()).masked_fill(same, float("-inf"))
    neg_new = (new @ all_new.t()).masked_fill(same, float("-inf"))
    logits = torch.cat([pos, neg_old, neg_new], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros_like(labels))
