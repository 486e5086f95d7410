"""PV3D metrics (Sec. 4.1): FVD, multi-view identity (ID), temporal consistency, multi-view warping error, Chamfer
distance, view change.

FVD: Frechet distance of I3D features, the 400 Kinetics logits averaged over time (``pv3d.models.i3d``, weights from
a local ``i3d_pretrained_400.pt`` or safetensors). ``ClipFeatureNet`` is a small seeded stand-in with I3D's
interface for toy-scale runs (the acceptance experiment). ID: mean ArcFace IR-SE50 cosine similarity between views of
one generated identity (``pv3d.models.arcface``, ``model_ir_se50.pth``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pv3d.cameras import canonical_camera, pose_vector, split_camera
from pv3d.models.rendering import ray_bundle

__all__ = [
    "ID_PAIRS",
    "ClipFeatureNet",
    "chamfer",
    "clip_features",
    "fvd",
    "identity_similarity",
    "load_arcface",
    "load_feature_net",
    "motion_energy",
    "multiview_identity",
    "temporal_consistency",
    "view_change",
    "warp_error",
    "warp_into",
]

# ID renders per identity: (t_a, frontal), (t_b, side), (t_a, side), (t_b, frontal); the pairs PV3D averages over.
ID_PAIRS = ((0, 2), (3, 1), (0, 1), (3, 2), (0, 3), (2, 1))
ID_YAW = math.radians(30)


class ClipFeatureNet(nn.Module):
    """I3D-interface stand-in (toy scale; the acceptance experiment's FVD network): 3-D convs -> per-time logits (400)
    averaged over time, random init from a fixed seed."""

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

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """Features [N, 400] of clips [N, T, 3, H, W] in [-1, 1] at their own size."""
        return self(clips.transpose(1, 2).float())


def load_feature_net(weights: str | Path | None = None) -> nn.Module:
    """The FVD network: InceptionI3d-400 loaded strictly from a local state dict (``i3d_pretrained_400.pt``, read with
    ``torch.load(weights_only=True)``, or safetensors), or the seeded stand-in when ``weights`` is None."""
    if weights is None:
        return ClipFeatureNet().eval()
    from pv3d.models.i3d import InceptionI3d

    return _load_strict(InceptionI3d(), weights)


def load_arcface(weights: str | Path) -> nn.Module:
    """ArcFace IR-SE50 loaded strictly from a local ``model_ir_se50.pth`` (weights-only) or safetensors file."""
    from pv3d.models.arcface import ArcFaceIRSE50

    return _load_strict(ArcFaceIRSE50(), weights)


def _load_strict(net: nn.Module, weights: str | Path) -> nn.Module:
    """Every key and shape must match; otherwise ``CheckpointError`` (a ValueError) naming the file and the keys.

    Reads safetensors or ``torch.load(weights_only=True)`` (``visioncore.hub.read_state_dict``: a plain state dict,
    possibly under ``state_dict``); keys possibly prefixed ``module.`` by DataParallel."""
    from visioncore.hub import _load_checked, read_state_dict

    state = {k.removeprefix("module."): v for k, v in read_state_dict(weights).items()}
    _load_checked(net, state, source=Path(weights), strict=True)
    return net.eval()


def _device_of(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


@torch.no_grad()
def clip_features(net: nn.Module, clips: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """Features [N, D] (float64, CPU) of clips [N, T, 3, H, W] in [-1, 1], through ``net.features`` on its device."""
    device = _device_of(net)
    out = [net.features(clips[i : i + batch].to(device)).cpu() for i in range(0, len(clips), batch)]
    return torch.cat(out).double()


def fvd(net: nn.Module, clips_a: torch.Tensor, clips_b: torch.Tensor, batch: int = 32) -> float:
    """Frechet distance between the feature Gaussians of two clip sets [N, T, 3, H, W]."""
    from visioncore.metrics import frechet_distance

    feats_a, feats_b = clip_features(net, clips_a, batch), clip_features(net, clips_b, batch)
    return float(frechet_distance(feats_a.numpy(), feats_b.numpy()))


def identity_similarity(embeddings: torch.Tensor, pairs: tuple[tuple[int, int], ...] = ID_PAIRS) -> float:
    """Mean cosine similarity over ``pairs`` of views of each identity; embeddings [N, V, D] (any norm)."""
    e = F.normalize(embeddings.double(), dim=-1)
    i, j = (torch.tensor(k) for k in zip(*pairs))
    return float((e[:, i] * e[:, j]).sum(dim=-1).mean())


@torch.no_grad()
def multiview_identity(
    g, arcface: nn.Module, n: int, seed: int, yaw: float = ID_YAW, batch: int = 8, frames: int = 16
) -> float:
    """PV3D/EG3D multi-view identity: per identity (w from the canonical camera, noise const), two random times of
    the ``frames``-step grid t_a, t_b rendered as (t_a, frontal), (t_b, side), (t_a, side), (t_b, frontal), side =
    ``yaw`` (30 deg); the mean ArcFace cosine over ``ID_PAIRS``. The generator runs on the CPU, ArcFace on its device."""
    gen = torch.Generator().manual_seed(40_000 + seed)
    frontal, side = canonical_camera(1), pose_vector(yaw, -0.05)
    device, embeddings = _device_of(arcface), []
    for start in range(0, n, batch):
        b = min(batch, n - start)
        z = torch.randn(b, g.config.z_dim, generator=gen)
        zm = torch.randn(b, g.config.z_motion_dim, generator=gen)
        t_a, t_b = (torch.randint(frames, (b, 1), generator=gen) / (frames - 1) for _ in range(2))
        ws = g.map(z, frontal.expand(b, 25))
        planes_a, planes_b = (g.synthesize(ws, zm * t, noise_mode="const") for t in (t_a, t_b))
        views = [(planes_a, frontal), (planes_b, side), (planes_a, side), (planes_b, frontal)]
        images = [g.render(p, ws, c.expand(b, 25), generator=gen)["image"] for p, c in views]
        faces = torch.stack(images, dim=1).flatten(0, 1)  # [b * 4, 3, H, W]
        embeddings.append(arcface.embed(faces.to(device)).cpu().reshape(b, len(views), -1))
    return identity_similarity(torch.cat(embeddings))


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
