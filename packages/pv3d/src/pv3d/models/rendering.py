"""EG3D volume rendering: rays from 25-d cameras, tri-plane sampling, MipRayMarcher, importance sampling.

EG3D (Chan et al. 2022) Sec. 4: features F(x) = mean of bilinear samples from the xy, xz and zx planes; a small MLP
gives (sigma, colour); a NeRF quadrature (Mildenhall et al. 2020, Eq. 3) composites 48 stratified + 48 importance
samples per ray (PV3D Sec. 3.1 keeps this renderer).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from pv3d.cameras import split_camera

__all__ = [
    "importance_depths",
    "ray_bundle",
    "ray_march",
    "render_rays",
    "sample_pdf",
    "sample_triplane",
    "stratified_depths",
]

Decoder = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def ray_bundle(c: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and unit directions [B, H*W, 3] through the pixel centres (row-major) of 25-d OpenCV cameras."""
    cam2world, k = split_camera(c)
    b = c.shape[0]
    fx, fy, cx, cy, sk = k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2], k[:, 0, 1]
    centres = (torch.arange(resolution, device=c.device, dtype=c.dtype) + 0.5) / resolution
    v, u = torch.meshgrid(centres, centres, indexing="ij")  # row (y) major
    u = u.reshape(1, -1).expand(b, -1)
    v = v.reshape(1, -1).expand(b, -1)
    y_cam = (v - cy[:, None]) / fy[:, None]
    x_cam = (u - cx[:, None] - sk[:, None] * y_cam) / fx[:, None]
    dirs_cam = torch.stack([x_cam, y_cam, torch.ones_like(x_cam)], dim=-1)  # [B, N, 3]
    dirs = torch.einsum("bij,bnj->bni", cam2world[:, :3, :3], dirs_cam)
    origins = cam2world[:, None, :3, 3].expand_as(dirs)
    return origins.contiguous(), F.normalize(dirs, dim=-1)


def sample_triplane(planes: torch.Tensor, points: torch.Tensor, box_warp: float = 1.0) -> torch.Tensor:
    """Bilinear features [B, 3, N, C] of ``points`` [B, N, 3] on ``planes`` [B, 3, C, H, W].

    Plane 0 is indexed by (x, y), plane 1 by (x, z), plane 2 by (z, x) (EG3D's third-plane quirk, kept for its
    checkpoints); coordinates are scaled by 2 / box_warp into grid_sample's [-1, 1] (zeros outside).
    """
    b, n_planes, c, h, w = planes.shape
    if n_planes != 3:
        raise ValueError(f"expected 3 planes, got {n_planes}")
    p = points * (2.0 / box_warp)
    x, y, z = p.unbind(-1)
    proj = torch.stack([torch.stack([x, y], -1), torch.stack([x, z], -1), torch.stack([z, x], -1)], dim=1)
    out = F.grid_sample(
        planes.reshape(b * 3, c, h, w),
        proj.reshape(b * 3, 1, -1, 2).to(planes.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # [B*3, C, 1, N]
    return out.reshape(b, 3, c, -1).permute(0, 1, 3, 2)


def ray_march(
    colors: torch.Tensor, densities: torch.Tensor, depths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MipRayMarcher: composite [B, R, S, C] samples -> (rgb in [-1, 1], depth [B, R, 1], weights [B, R, S-1, 1]).

    Colours, raw densities and depths are averaged at interval midpoints; sigma = softplus(raw - 1);
    alpha = 1 - exp(-sigma delta); T_i = prod_{j<i} (1 - alpha_j + 1e-10). The expected depth is clamped to the
    batch's sampled range (an empty ray gets the largest sampled depth).
    """
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    colors_mid = (colors[:, :, :-1] + colors[:, :, 1:]) / 2
    densities_mid = F.softplus((densities[:, :, :-1] + densities[:, :, 1:]) / 2 - 1)
    depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2
    alpha = 1 - torch.exp(-densities_mid * deltas)
    shifted = torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], dim=-2)
    weights = alpha * torch.cumprod(shifted, dim=-2)[:, :, :-1]
    rgb = (weights * colors_mid).sum(dim=-2)
    total = weights.sum(dim=-2)
    depth = (weights * depths_mid).sum(dim=-2) / total
    depth = torch.nan_to_num(depth, float("inf")).clamp(depths.min(), depths.max())
    return rgb * 2 - 1, depth, weights


def stratified_depths(
    batch: int,
    rays: int,
    n: int,
    near: float,
    far: float,
    device: torch.device,
    generator: torch.Generator | None = None,
    jitter: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B, R, n, 1] depths on linspace(near, far, n), each jittered by U[0, 1) x (far - near) / (n - 1).

    ``jitter`` [R, n] (values in [0, 1)) fixes the jitter, e.g. the same for every frame of a video.
    """
    base = torch.linspace(near, far, n, device=device).reshape(1, 1, n, 1)
    if jitter is None:
        jitter = torch.rand(batch, rays, n, 1, device=device, generator=generator)
    else:
        jitter = jitter.to(device).reshape(1, rays, n, 1)
    return (base + jitter * (far - near) / (n - 1)).expand(batch, rays, n, 1).contiguous()


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n: int, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF samples [M, n] from piecewise-constant ``weights`` [M, K] on ``bins`` [M, >=K+1]; ``u`` [M, n]."""
    weights = weights + 1e-5
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], dim=-1)
    idx = torch.searchsorted(cdf.contiguous(), u.contiguous(), right=True)
    below = (idx - 1).clamp_min(0)
    above = idx.clamp_max(weights.shape[1])
    both = torch.stack([below, above], -1).reshape(u.shape[0], 2 * n)
    cdf_g = torch.gather(cdf, 1, both).reshape(u.shape[0], n, 2)
    bins_g = torch.gather(bins, 1, both).reshape(u.shape[0], n, 2)
    denom = cdf_g[..., 1] - cdf_g[..., 0]
    denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)
    return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])


def importance_depths(
    depths: torch.Tensor,
    weights: torch.Tensor,
    n: int,
    generator: torch.Generator | None = None,
    u: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B, R, n, 1] fine depths drawn from coarse ``weights`` [B, R, S-1, 1] (EG3D: max-pool, avg-pool, + 0.01).

    ``u`` [R, n] fixes the uniform draws (shared by the batch)."""
    b, r, s, _ = depths.shape
    w = weights.reshape(b * r, 1, -1)
    w = F.avg_pool1d(F.max_pool1d(w, 2, 1, padding=1), 2, 1).squeeze(1) + 0.01
    z = depths.reshape(b * r, s)
    mids = 0.5 * (z[:, :-1] + z[:, 1:])
    if u is None:
        u = torch.rand(b * r, n, device=depths.device, generator=generator)
    else:
        u = u.to(depths.device).reshape(1, r, n).expand(b, r, n).reshape(b * r, n)
    fine = sample_pdf(mids, w[:, 1:-1], n, u).detach()
    return fine.reshape(b, r, n, 1)


def _decode(decoder: Decoder, planes: torch.Tensor, origins, dirs, depths, box_warp: float):
    b, r, s, _ = depths.shape
    points = (origins.unsqueeze(-2) + depths * dirs.unsqueeze(-2)).reshape(b, r * s, 3)
    rgb, sigma = decoder(sample_triplane(planes, points, box_warp))
    return rgb.reshape(b, r, s, -1), sigma.reshape(b, r, s, 1)


def render_rays(
    planes: torch.Tensor,
    decoder: Decoder,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    *,
    n_coarse: int,
    n_fine: int,
    near: float,
    far: float,
    box_warp: float = 1.0,
    generator: torch.Generator | None = None,
    jitter: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EG3D ImportanceRenderer: (features [B, R, C] in [-1, 1], depth [B, R, 1], opacity [B, R, 1]).

    ``jitter`` [R, n_coarse + n_fine] in [0, 1) fixes the stratified jitter and the importance draws for every
    item of the batch (e.g. all frames of a video); otherwise they are drawn from ``generator``.
    """
    b, r, _ = origins.shape
    strat = u_fine = None
    if jitter is not None:
        if jitter.shape != (r, n_coarse + n_fine):
            raise ValueError(f"jitter must be [{r}, {n_coarse + n_fine}], got {tuple(jitter.shape)}")
        strat, u_fine = jitter[:, :n_coarse], jitter[:, n_coarse:]
    depths = stratified_depths(b, r, n_coarse, near, far, origins.device, generator, strat)
    colors, sigma = _decode(decoder, planes, origins, dirs, depths, box_warp)
    if n_fine > 0:
        _, _, weights = ray_march(colors, sigma, depths)
        fine = importance_depths(depths, weights, n_fine, generator, u_fine)
        colors_f, sigma_f = _decode(decoder, planes, origins, dirs, fine, box_warp)
        depths = torch.cat([depths, fine], dim=-2)
        order = torch.argsort(depths, dim=-2)
        depths = torch.gather(depths, -2, order)
        colors = torch.gather(
            torch.cat([colors, colors_f], -2), -2, order.expand(-1, -1, -1, colors.shape[-1])
        )
        sigma = torch.gather(torch.cat([sigma, sigma_f], -2), -2, order)
    rgb, depth, weights = ray_march(colors, sigma, depths)
    return rgb, depth, weights.sum(dim=-2)
