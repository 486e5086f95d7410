"""PV3D metrics (Sec. 4.1): FVD, temporal consistency, multi-view warping error, Chamfer distance, view change.

FVD needs an I3D; the official one (VideoGPT's Kinetics-400 I3D) is not bundled. ``ClipFeatureNet`` is a small 3-D
conv net with I3D's interface (clips [N, 3, T, H, W] in [-1, 1] -> 400 logits averaged over time), randomly
initialised from a fixed seed, or loaded from ``--weights`` (a safetensors file of the same architecture).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pv3d.cameras import split_camera
from pv3d.models.rendering import ray_bundle

__all__ = [
    "ClipFeatureNet",
    "chamfer",
    "clip_features",
    "fvd",
    "motion_energy",
    "temporal_consistency",
    "view_change",
    "warp_error",
    "warp_into",
]


class ClipFeatureNet(nn.Module):
    """I3D-interface stand-in: 3-D convs -> per-time logits (400) averaged over time."""

    def __init__(self, width: int = 32, num_logits: int = 400, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv3d(3, width, (3, 5, 5), padding=(1, 2, 2), stride=(1, 2, 2)),
            nn.ReLU(),
            nn.Conv3d(width, 2 * width, 3, padding=1, stride=(1, 2, 2)),
            nn.ReLU(),
            nn.Conv3d(2 * width, 4 * width, 3, padding=1, stride=(2, 2, 2)),
            nn.ReLU(),
        )
        self.head = nn.Linear(4 * width, num_logits)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / max(p[0].numel(), 1)) ** 0.5)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.net(clips).mean(dim=(3, 4))  # [N, C, T']
        return self.head(x.transpose(1, 2)).mean(dim=1)


def load_feature_net(weights: str | Path | None) -> ClipFeatureNet:
    """The seeded stand-in, or weights of the same architecture from a local safetensors file."""
    net = ClipFeatureNet()
    if weights is not None:
        from safetensors.torch import load_file

        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"feature-network weights not found: {path}")
        from visioncore.hub import _load_checked

        _load_checked(net, load_file(path), source=path, strict=True)
    return net.eval()


@torch.no_grad()
def clip_features(net: nn.Module, clips: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """Features [N, D] of clips [N, T, 3, H, W] in [-1, 1]."""
    out = [net(clips[i : i + batch].transpose(1, 2).float()) for i in range(0, len(clips), batch)]
    return torch.cat(out).double()


def fvd(net: nn.Module, clips_a: torch.Tensor, clips_b: torch.Tensor) -> float:
    """Frechet distance between the feature Gaussians of two clip sets [N, T, 3, H, W]."""
    from visioncore.metrics import frechet_distance

    return float(frechet_distance(clip_features(net, clips_a).numpy(), clip_features(net, clips_b).numpy()))


def temporal_consistency(frames: torch.Tensor) -> float:
    """mean L1 of consecutive frames / mean L1 over all frame pairs, for videos [N, T, ...] (lower: smoother)."""
    t = frames.shape[1]
    consecutive = (frames[:, 1:] - frames[:, :-1]).abs().mean()
    i, j = torch.triu_indices(t, t, offset=1)
    all_pairs = (frames[:, i] - frames[:, j]).abs().mean()
    return float(consecutive / all_pairs.clamp_min(1e-12))


def motion_energy(frames: torch.Tensor) -> float:
    """Mean L1 between the first and the last frame of videos [N, T, ...]."""
    return float((frames[:, -1] - frames[:, 0]).abs().mean())


def view_change(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean L1 between two views [N, 3, H, W]."""
    return float((a - b).abs().mean())


def _points(c: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """World points [N, H*W, 3] of a depth map [N, 1, H, W] (distance along unit rays) seen from ``c``."""
    origins, dirs = ray_bundle(c, depth.shape[-1])
    return origins + dirs * depth.flatten(2).transpose(1, 2)


def warp_into(
    c_src: torch.Tensor, depth_src: torch.Tensor, c_dst: torch.Tensor, image_dst: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``image_dst`` (seen from ``c_dst``) at the projections of the source view's surface points.

    Returns (warped [N, C, H, W] in the source view's pixel grid, in-frame mask [N, 1, H, W]).
    """
    n, _, h, w = depth_src.shape
    pts = _points(c_src, depth_src.clamp(max=1e3))
    cam2world, k = split_camera(c_dst)
    rot, trans = cam2world[:, :3, :3], cam2world[:, :3, 3]
    cam = torch.einsum("nji,npj->npi", rot, pts - trans[:, None])  # R^T (p - t)
    z = cam[..., 2].clamp_min(1e-6)
    u = k[:, None, 0, 0] * cam[..., 0] / z + k[:, None, 0, 1] * cam[..., 1] / z + k[:, None, 0, 2]
    v = k[:, None, 1, 1] * cam[..., 1] / z + k[:, None, 1, 2]
    grid = torch.stack([u * 2 - 1, v * 2 - 1], dim=-1).reshape(n, h, w, 2)
    warped = F.grid_sample(image_dst, grid.to(image_dst.dtype), align_corners=False, padding_mode="zeros")
    inside = ((grid.abs() <= 1).all(dim=-1) & (cam[..., 2].reshape(n, h, w) > 0)).unsqueeze(1)
    return warped, inside


def warp_error(
    image_src: torch.Tensor,
    depth_src: torch.Tensor,
    weight_src: torch.Tensor,
    c_src: torch.Tensor,
    image_dst: torch.Tensor,
    c_dst: torch.Tensor,
) -> float:
    """Opacity-weighted mean L1 between the source view and the destination view warped into it (in-frame pixels)."""
    if image_dst.shape[-1] != depth_src.shape[-1]:
        image_dst = F.interpolate(image_dst, size=depth_src.shape[-2:], mode="bilinear", antialias=True)
    if image_src.shape[-1] != depth_src.shape[-1]:
        image_src = F.interpolate(image_src, size=depth_src.shape[-2:], mode="bilinear", antialias=True)
    warped, inside = warp_into(c_src, depth_src, c_dst, image_dst)
    weight = weight_src * inside
    err = ((image_src - warped).abs().mean(dim=1, keepdim=True) * weight).sum()
    return float(err / weight.sum().clamp_min(1e-8))


def chamfer(
    c_a: torch.Tensor,
    depth_a: torch.Tensor,
    mask_a: torch.Tensor,
    c_b: torch.Tensor,
    depth_b: torch.Tensor,
    mask_b: torch.Tensor,
) -> float:
    """Symmetric Chamfer distance (mean nearest-neighbour distance, both ways) between depth point clouds;
    NaN when no pair has points in both masks."""
    pa, pb = _points(c_a, depth_a), _points(c_b, depth_b)
    total, count = 0.0, 0
    for i in range(pa.shape[0]):
        a = pa[i][mask_a[i].flatten()]
        b = pb[i][mask_b[i].flatten()]
        if len(a) == 0 or len(b) == 0:
            continue
        d = torch.cdist(a, b)
        total += float(d.min(dim=1).values.mean() + d.min(dim=0).values.mean()) / 2
        count += 1
    return total / count if count else float("nan")


def render_views(
    g,
    z: torch.Tensor,
    z_motion: torch.Tensor,
    t: float,
    c_cond: torch.Tensor,
    cams: list[torch.Tensor],
    jitter: torch.Tensor | None = None,
) -> list[dict[str, torch.Tensor]]:
    """One generated frame per sample (w from ``c_cond``, motion at time ``t``) rendered from each camera in ``cams``."""
    with torch.no_grad():
        ws = g.map(z, c_cond)
        planes = g.synthesize(ws, z_motion * t, noise_mode="const")
        return [g.render(planes, ws, c.expand(len(z), 25), jitter=jitter) for c in cams]
