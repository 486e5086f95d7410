"""Facial-part masking (the paper's Stage A masking) and the random-patch ablation.

Parts come from landmarks: a part is the bounding box of its landmark group, dilated by a margin; a patch belongs to
the part when the dilated box touches it (equivalent to FSFM/MARLIN's max-pool of the part map with kernel = patch).
Per sample 1-2 parts are masked completely (only parts that fit within the target count are chosen) and every sample
is topped up with random patches to exactly round(ratio * N), so that the encoder sees equal token counts across the
batch. Random patches follow MAE's ``random_masking``: the lowest-noise patches stay visible.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

log = logging.getLogger("deepfake_mae")

PART_NAMES = ("eyes", "nose", "mouth")
THIRD_NAMES = ("upper", "middle", "lower")

# iBUG 68-point groups: brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
_IBUG_PARTS = {
    "eyes": list(range(17, 27)) + list(range(36, 48)),
    "nose": list(range(27, 36)),
    "mouth": list(range(48, 68)),
}


class LandmarkShapeError(ValueError):
    """Landmarks that are neither (..., 68, 2) nor (..., 5, 2)."""


def _as_tensor(landmarks: np.ndarray | torch.Tensor) -> torch.Tensor:
    points = torch.as_tensor(np.asarray(landmarks) if not torch.is_tensor(landmarks) else landmarks)
    points = points.float()
    if points.ndim < 2 or points.shape[-1] != 2 or points.shape[-2] not in (68, 5):
        raise LandmarkShapeError(
            f"landmarks must have shape (..., 68, 2) or (..., 5, 2), got {tuple(points.shape)}"
        )
    return points


def _box(points: torch.Tensor) -> torch.Tensor:
    return torch.cat([points.amin(-2), points.amax(-2)], dim=-1)


def _five_point_parts(points: torch.Tensor) -> torch.Tensor:
    """Part boxes from MTCNN's 5 points (left eye, right eye, nose, mouth left, mouth right).

    Sizes are fixed fractions of the inter-ocular distance d: eyes+brows span the eyes +-0.35 d horizontally and
    from 0.45 d above (brows) to 0.2 d below the eye line; the nose spans +-0.25 d around the tip, from 0.15 d below the
    eye line to 0.2 d below the tip; the mouth spans the corners +-0.1 d horizontally and +-0.25 d vertically.
    """
    left_eye, right_eye, nose, mouth_l, mouth_r = points.unbind(-2)
    d = (right_eye - left_eye).norm(dim=-1, keepdim=True).clamp_min(1e-3)
    eye_x0 = torch.minimum(left_eye[..., :1], right_eye[..., :1])
    eye_x1 = torch.maximum(left_eye[..., :1], right_eye[..., :1])
    eye_y = (left_eye[..., 1:] + right_eye[..., 1:]) / 2
    eyes = torch.cat([eye_x0 - 0.35 * d, eye_y - 0.45 * d, eye_x1 + 0.35 * d, eye_y + 0.2 * d], -1)
    nose_box = torch.cat(
        [nose[..., :1] - 0.25 * d, eye_y + 0.15 * d, nose[..., :1] + 0.25 * d, nose[..., 1:] + 0.2 * d], -1
    )
    mouth_pts = torch.stack([mouth_l, mouth_r], -2)
    mouth_y = mouth_pts[..., 1].mean(-1, keepdim=True)
    mouth = torch.cat(
        [
            mouth_pts[..., 0].amin(-1, keepdim=True) - 0.1 * d,
            mouth_y - 0.25 * d,
            mouth_pts[..., 0].amax(-1, keepdim=True) + 0.1 * d,
            mouth_y + 0.25 * d,
        ],
        -1,
    )
    return torch.stack([eyes, nose_box, mouth], -2)


def part_boxes(landmarks: np.ndarray | torch.Tensor, scheme: str = "parts") -> torch.Tensor:
    """Boxes (x0, y0, x1, y1) of the facial parts, shape (..., 3, 4), from (..., 68|5, 2) landmarks.

    scheme "parts": eyes+brows, nose, mouth (the paper's parts); "thirds": upper/middle/lower horizontal thirds of the
    parts' joint bounding box (the v2 "three parts" reading).
    """
    points = _as_tensor(landmarks)
    if points.shape[-2] == 68:
        boxes = torch.stack([_box(points[..., idx, :]) for idx in _IBUG_PARTS.values()], -2)
    else:
        boxes = _five_point_parts(points)
    if scheme == "parts":
        return boxes
    if scheme != "thirds":
        raise ValueError(f"unknown part scheme {scheme!r} (use 'parts' or 'thirds')")
    x0, y0 = boxes[..., 0].amin(-1), boxes[..., 1].amin(-1)
    x1, y1 = boxes[..., 2].amax(-1), boxes[..., 3].amax(-1)
    h = (y1 - y0) / 3
    return torch.stack([torch.stack([x0, y0 + i * h, x1, y0 + (i + 1) * h], -1) for i in range(3)], -2)


def patch_membership(boxes: torch.Tensor, grid: int, patch: int, margin: float = 0.0) -> torch.Tensor:
    """Bool (..., P, grid*grid): patch (row i, col j) belongs to a part if the box dilated by `margin` pixels touches it."""
    x0, y0, x1, y1 = (boxes[..., k, None] for k in range(4))
    starts = torch.arange(grid, dtype=boxes.dtype, device=boxes.device) * patch
    # A patch covers [s, s + patch) pixels; it touches [a, b] iff s <= b and s + patch > a.
    cols = (starts <= x1 + margin) & (starts + patch > x0 - margin)  # (..., P, grid)
    rows = (starts <= y1 + margin) & (starts + patch > y0 - margin)
    return (rows[..., :, None] & cols[..., None, :]).flatten(-2)


def box_pixel_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bool (..., P, H, W): pixels whose centres lie inside each (undilated) part box."""
    ys = torch.arange(height, dtype=boxes.dtype, device=boxes.device) + 0.5
    xs = torch.arange(width, dtype=boxes.dtype, device=boxes.device) + 0.5
    x0, y0, x1, y1 = (boxes[..., k, None] for k in range(4))
    rows = (ys >= y0) & (ys <= y1)
    cols = (xs >= x0) & (xs <= x1)
    return rows[..., :, None] & cols[..., None, :]


def mask_keeping_lowest_noise(noise: torch.Tensor, num_masked: int, must_mask: torch.Tensor | None = None):
    """MAE's ``random_masking`` rule: per row of ``noise`` (B, N), keep the N - num_masked patches with the LOWEST noise
    visible and mask the rest; patches in ``must_mask`` (B, N) are masked whatever their noise (they sort last)."""
    batch, num = noise.shape
    if must_mask is not None:
        noise = noise.masked_fill(must_mask, float("inf"))
    keep = noise.argsort(dim=1, stable=True)[:, : num - num_masked]
    mask = torch.ones(batch, num, dtype=torch.bool, device=noise.device)
    return mask.scatter(1, keep, False)


def _noise(
    batch: int, num: int, generator: torch.Generator | None, device: torch.device, noise: torch.Tensor | None
) -> torch.Tensor:
    if noise is not None:
        if noise.shape != (batch, num):
            raise ValueError(f"noise must have shape ({batch}, {num}), got {tuple(noise.shape)}")
        return noise.to(device)
    return torch.rand(batch, num, generator=generator, device=device)


def top_up_mask(
    must_mask: torch.Tensor,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Extend each row of ``must_mask`` (B, N) with random patches to one common count >= ceil(ratio * N).

    Patches in ``must_mask`` are always kept masked (a chosen part is never partly visible); the other masked patches
    are those of highest ``noise`` (MAE's rule). Used for network 2's one-part views, whose counts must agree across a
    batch. At least one patch stays visible; a row whose compulsory patches cover the whole image is a ValueError.
    """
    batch, num = must_mask.shape
    need = int(must_mask.sum(1).max()) if batch else 0
    if need >= num:
        raise ValueError(f"a part covers all {num} patches; nothing would stay visible")
    target = min(max(math.ceil(mask_ratio * num), need), num - 1)
    return mask_keeping_lowest_noise(
        _noise(batch, num, generator, must_mask.device, noise), target, must_mask
    )


_WARNED_OVERSIZED_PART = False


def _choose_parts(
    membership: torch.Tensor, ks: torch.Tensor, order: torch.Tensor, target: int
) -> tuple[torch.Tensor, int]:
    """Per sample, walk its random part order and take up to k parts whose union stays within ``target`` patches.

    A sample none of whose parts fits alone takes its smallest part, and the batch target grows to that count (said
    once). Returns (part_mask (B, N), the masked count every sample gets)."""
    global _WARNED_OVERSIZED_PART
    batch = membership.shape[0]
    rows = torch.arange(batch, device=membership.device)
    union = torch.zeros_like(membership[:, 0])
    taken = torch.zeros(batch, dtype=torch.long, device=membership.device)
    for j in range(membership.shape[1]):
        candidate = union | membership[rows, order[:, j]]
        accept = (taken < ks) & (candidate.sum(1) <= target)
        union = torch.where(accept[:, None], candidate, union)
        taken = taken + accept.long()
    empty = taken == 0
    if bool(empty.any()):
        sizes = membership.sum(-1)  # (B, P)
        smallest = membership[rows, sizes.argmin(1)]
        union = torch.where(empty[:, None], smallest, union)
        grown = int(smallest[empty].sum(1).max())
        if not _WARNED_OVERSIZED_PART:
            log.warning(
                "a facial part alone covers %d patches, more than the %d of the mask ratio; masking %d",
                grown, target, grown,
            )  # fmt: skip
            _WARNED_OVERSIZED_PART = True
        target = max(target, grown)
    return union, target


def facial_part_mask(
    membership: torch.Tensor,
    mask_ratio: float,
    parts_per_sample: tuple[int, ...] = (1, 2),
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample the part masks of a batch: returns (mask, part_mask), both bool (B, N).

    membership: bool (B, P, N). Per sample k in ``parts_per_sample`` parts are drawn in a random order, skipping any
    part that would take the sample's compulsory count beyond the target round(ratio * N); part_mask marks the chosen
    parts' patches (never partly visible) and every sample is topped up to exactly the target with the highest-
    ``noise`` other patches. Draws happen on ``membership``'s device (``generator`` must live there).
    """
    batch, num_parts, num = membership.shape
    device = membership.device
    choices = torch.tensor(parts_per_sample, device=device)
    ks = choices[torch.randint(len(choices), (batch,), generator=generator, device=device)]
    order = torch.rand(batch, num_parts, generator=generator, device=device).argsort(dim=1)
    target = min(round(mask_ratio * num), num - 1)
    part_mask, target = _choose_parts(membership, ks, order, target)
    if target >= num:
        raise ValueError(f"a part covers all {num} patches; nothing would stay visible")
    noise = _noise(batch, num, generator, device, noise)
    return mask_keeping_lowest_noise(noise, target, part_mask), part_mask


def single_part_mask(
    membership: torch.Tensor, part: int, mask_ratio: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask one given part in every sample (evaluation / network 2), topped up to the batch's common count."""
    part_mask = membership[:, part]
    return top_up_mask(part_mask, mask_ratio, generator), part_mask


def every_part_mask(
    membership: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Network 2's views: each part masked in turn, as ONE batch (P*B, N) in part-major order, all views topped up to
    one common count (so the P views run through the MAE in a single forward). Returns (mask, part_mask)."""
    part_mask = membership.transpose(0, 1).flatten(0, 1)  # (P*B, N): part 0 of every sample, then part 1, ...
    return top_up_mask(part_mask, mask_ratio, generator), part_mask


def random_mask(
    batch: int,
    num_patches: int,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    *,
    noise: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """MAE's ``random_masking`` (the ablation): N - int(N * (1 - ratio)) patches per sample, those of highest noise
    (uniform noise from ``generator`` on ``device``, or a given ``noise`` (B, N) so MAE's noise gives MAE's mask)."""
    device = torch.device(device) if device is not None else (noise.device if noise is not None else None)
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    num_masked = num_patches - int(num_patches * (1 - mask_ratio))
    return mask_keeping_lowest_noise(_noise(batch, num_patches, generator, device, noise), num_masked)
