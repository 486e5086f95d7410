"""Losses: the MAE reconstruction loss (with FSFM-style part-only term) and the margin discrepancy loss of network 2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, patch*patch*C), MAE / transformers ViTMAE order (row, col, channel)."""
    return rearrange(images, "b c (h p) (w q) -> b (h w) (p q c)", p=patch, q=patch)


def unpatchify(patches: torch.Tensor, patch: int, grid: int) -> torch.Tensor:
    """Inverse of `patchify` for a square grid."""
    return rearrange(patches, "b (h w) (p q c) -> b c (h p) (w q)", h=grid, w=grid, p=patch, q=patch)


def normalize_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-patch standardisation: MAE's `norm_pix_loss` target."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True, unbiased=True)
    return (patches - mean) / (var + eps).sqrt()


def mae_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    part_mask: torch.Tensor | None = None,
    part_weight: float = 0.0,
) -> torch.Tensor:
    """MAE loss: mean over MASKED patches of the per-patch MSE, plus `part_weight` x the same mean over the chosen
    facial part's patches only (FSFM's part-only term). pred/target (B, N, D), masks bool (B, N)."""
    per_patch = (pred - target).pow(2).mean(dim=-1)
    weights = mask.float()
    loss = (per_patch * weights).sum() / weights.sum().clamp_min(1.0)
    if part_mask is not None and part_weight > 0:
        part = (part_mask & mask).float()
        loss = loss + part_weight * (per_patch * part).sum() / part.sum().clamp_min(1.0)
    return loss


def part_pixel_error(
    pred: torch.Tensor, target: torch.Tensor, pixel_mask: torch.Tensor, patch: int, grid: int
) -> torch.Tensor:
    """Mean squared error over a part's pixels, in normalised-pixel space (the paper's reconstruction discrepancy).

    pred/target: (B, N, D) patch predictions and normalised targets; pixel_mask: bool (B, H, W). Returns (B,).
    """
    err = unpatchify((pred - target).pow(2), patch, grid).mean(dim=1)  # (B, H, W)
    weights = pixel_mask.float()
    return (err * weights).flatten(1).sum(1) / weights.flatten(1).sum(1).clamp_min(1.0)


def discrepancy_margin_loss(discrepancy: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Network 2's loss on one discrepancy per sample (B,): real (label 0) pulled to 0, fake (label 1) pushed beyond
    `margin`: L = (1 - y) d + y max(0, m - d), averaged over the batch."""
    labels = labels.float()
    return ((1 - labels) * discrepancy + labels * F.relu(margin - discrepancy)).mean()


MARGIN_FORMS = ("part", "mean")


def part_margin_loss(
    discrepancy: torch.Tensor, labels: torch.Tensor, margin: float, form: str = "part"
) -> torch.Tensor:
    """The margin discrepancy loss on per-part discrepancies (B, P).

    ``part`` (default, the paper's per-part loss): every part of a real clip is pulled to 0 (mean over parts); a fake
    clip's hinge acts on its most discrepant part only, max(0, m - max_p d_p), so a mouth-swap batch pushes the part
    that disagrees (the mouth) beyond the margin and leaves the eye and nose errors alone. ``mean``: the loss on the
    part average d = mean_p d_p (pushes every part of a fake up together).
    """
    if form == "mean":
        return discrepancy_margin_loss(discrepancy.mean(1), labels, margin)
    if form != "part":
        raise ValueError(f"unknown margin-loss form {form!r} (use one of {', '.join(MARGIN_FORMS)})")
    labels = labels.float()
    real = discrepancy.mean(1)
    fake = F.relu(margin - discrepancy.amax(1))
    return ((1 - labels) * real + labels * fake).mean()
