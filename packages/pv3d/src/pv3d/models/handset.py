"""Tri-planes and an ``OSGDecoder`` set by hand to a sphere: a known scene for checking the renderer and cameras.

Plane features hold (1, x, y, x^2, y^2) on the xy plane and (z, z^2) on the xz plane; the decoder's first layer forms
L = k (r^2 - |p - centre|^2) inside the tri-plane box and -20 outside, its hidden unit passes L + 30 through softplus
(exact for L > -10) and the output subtracts 30: sigma = L where it matters. Colours are constant (0.5).
"""

from __future__ import annotations

import math

import torch

from pv3d.models.generator import OSGDecoder

__all__ = ["sphere_depth", "sphere_scene"]

_OUTSIDE = 20.0
_SHIFT = 30.0


def _plane_grid(resolution: int, box_warp: float) -> torch.Tensor:
    """World coordinates of the texel centres along one plane axis (grid_sample, align_corners False)."""
    return ((torch.arange(resolution) + 0.5) / resolution * 2 - 1) * box_warp / 2


def sphere_scene(
    centre: tuple[float, float, float],
    radius: float,
    channels: int,
    hidden: int,
    resolution: int = 64,
    sharpness: float = 1e5,
    box_warp: float = 1.0,
) -> tuple[torch.Tensor, OSGDecoder]:
    """(planes [1, 3, channels, R, R], decoder) whose density is sharpness x (r^2 - |p - centre|^2) near the sphere."""
    if channels < 7:
        raise ValueError(f"the hand-set sphere needs >= 7 plane channels, got {channels}")
    g = _plane_grid(resolution, box_warp)
    v, u = torch.meshgrid(g, g, indexing="ij")  # grid_sample: x indexes width (u), y indexes height (v)
    planes = torch.zeros(1, 3, channels, resolution, resolution)
    # the decoder averages the 3 planes: store 3x the wanted feature
    planes[0, 0, :5] = 3 * torch.stack([torch.ones_like(u), u, v, u**2, v**2])  # plane (x, y)
    planes[0, 1, 5:7] = 3 * torch.stack([v, v**2])  # plane (x, z): second coordinate z indexes height
    cx, cy, cz = centre
    k = sharpness
    coeff = torch.zeros(channels)
    coeff[:7] = torch.tensor(
        [k * (radius**2 - cx**2 - cy**2 - cz**2) + _OUTSIDE, 2 * k * cx, 2 * k * cy, -k, -k, 2 * k * cz, -k]
    )
    dec = OSGDecoder(channels, hidden, channels)
    with torch.no_grad():
        fc0, fc1 = dec.net[0], dec.net[2]
        fc0.weight.zero_()
        fc0.bias.zero_()
        fc0.weight[0] = coeff / fc0.weight_gain
        fc0.bias[0] = (_SHIFT - _OUTSIDE) / fc0.bias_gain
        fc1.weight.zero_()
        fc1.bias.zero_()
        fc1.weight[0, 0] = 1 / fc1.weight_gain
        fc1.bias[0] = -_SHIFT / fc1.bias_gain
    return planes, dec


def sphere_depth(
    origins: torch.Tensor, dirs: torch.Tensor, centre, radius: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic first hit along unit rays: (depth [..., 1], hit mask [..., 1])."""
    oc = origins - torch.tensor(centre, dtype=origins.dtype)
    b = (oc * dirs).sum(-1, keepdim=True)
    disc = b**2 - (oc**2).sum(-1, keepdim=True) + radius**2
    hit = disc > 0
    depth = -b - torch.sqrt(disc.clamp_min(0))
    return torch.where(hit, depth, torch.full_like(depth, math.inf)), hit
