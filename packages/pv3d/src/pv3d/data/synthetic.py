"""Toy heads in the VoxCeleb layout: analytic renders of a striped, shaded sphere with a talking "mouth".

Each clip: a sphere of radius 0.25 at the pivot (0, 0, 0.2); identity = two colours in 2-4 longitude stripes;
Lambertian shading under a fixed world light (the colour of a surface point does not depend on the view, so clips
are exactly multi-view consistent); a dark mouth on the front whose height follows a per-clip sinusoid in t; black
background; the camera follows a per-clip yaw trajectory within +-0.35 rad at radius 2.7 (focal 4.2647). Rays come
from ``pv3d.models.rendering.ray_bundle``: data and generator share one camera convention. Depth (distance along the
unit ray) and silhouettes are returned to callers, never read by the loader.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pv3d.cameras import PIVOT, pose_vector
from pv3d.models.handset import sphere_depth
from pv3d.models.rendering import ray_bundle

__all__ = [
    "HEAD_RADIUS",
    "ToyHead",
    "head_cameras",
    "load_heads",
    "make_toy_heads",
    "random_head",
    "render_head",
]

HEAD_RADIUS = 0.25
MAX_YAW = 0.35
_LIGHT = torch.nn.functional.normalize(torch.tensor([0.4, 0.5, 1.0]), dim=0)
_MOUTH_LAT = -0.45  # radians below the equator
_MOUTH_HALF_WIDTH = 0.45  # radians of longitude


@dataclass
class ToyHead:
    """One clip's identity, motion and camera trajectory."""

    colour_a: list[float]
    colour_b: list[float]
    stripes: int
    stripe_phase: float
    mouth_freq: float
    mouth_phase: float
    yaw_amp: float
    yaw_freq: float
    yaw_phase: float

    def mouth_half_height(self, t: torch.Tensor) -> torch.Tensor:
        """Half-height (radians of latitude) of the mouth at times ``t`` in [0, 1]."""
        return 0.13 + 0.11 * torch.sin(2 * math.pi * (self.mouth_freq * t + self.mouth_phase))

    def yaw(self, t: torch.Tensor) -> torch.Tensor:
        return self.yaw_amp * torch.sin(2 * math.pi * (self.yaw_freq * t + self.yaw_phase))


def random_head(rng: np.random.Generator) -> ToyHead:
    """A random identity (two saturated colours, 2-4 stripes), mouth sinusoid and yaw trajectory."""
    colours = rng.uniform(0.15, 1.0, size=(2, 3))
    while np.abs(colours[0] - colours[1]).sum() < 0.6:  # the two stripe colours must be distinguishable
        colours = rng.uniform(0.15, 1.0, size=(2, 3))
    return ToyHead(
        colour_a=colours[0].round(4).tolist(),
        colour_b=colours[1].round(4).tolist(),
        stripes=int(rng.integers(2, 5)),
        stripe_phase=float(rng.uniform(0, 2 * math.pi)),
        mouth_freq=float(rng.uniform(0.5, 1.5)),
        mouth_phase=float(rng.uniform(0, 1)),
        yaw_amp=float(rng.uniform(0.15, MAX_YAW)),
        yaw_freq=float(rng.uniform(0.3, 1.0)),
        yaw_phase=float(rng.uniform(0, 1)),
    )


def render_head(
    head: ToyHead, t: torch.Tensor, c: torch.Tensor, resolution: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Analytic render of ``head`` at times ``t`` [N] from cameras ``c`` [N, 25].

    Returns (rgb [N, 3, R, R] in [0, 1], depth [N, 1, R, R] along the unit ray (inf off the head), mask [N, 1, R, R]).
    """
    origins, dirs = ray_bundle(c.float(), resolution)
    centre = torch.tensor(PIVOT)
    depth, hit = sphere_depth(origins, dirs, PIVOT, HEAD_RADIUS)
    depth, hit = depth[..., 0], hit[..., 0]
    normal = torch.nn.functional.normalize(origins + depth.clamp(max=1e3)[..., None] * dirs - centre, dim=-1)
    lon = torch.atan2(normal[..., 0], normal[..., 2])  # 0 on the front (+z), around the vertical axis
    lat = torch.asin(normal[..., 1].clamp(-1, 1))
    stripe = torch.floor((lon + math.pi + head.stripe_phase) / (2 * math.pi) * 2 * head.stripes) % 2
    albedo = torch.where(
        stripe[..., None] > 0, torch.tensor(head.colour_a), torch.tensor(head.colour_b)
    )  # [N, R*R, 3]
    half = head.mouth_half_height(t.float())[:, None]
    mouth = (lon.abs() < _MOUTH_HALF_WIDTH) & ((lat - _MOUTH_LAT).abs() < half)
    albedo = torch.where(mouth[..., None], torch.full_like(albedo, 0.05), albedo)
    shade = 0.35 + 0.65 * (normal @ _LIGHT).clamp_min(0)
    rgb = torch.where(hit[..., None], albedo * shade[..., None], torch.zeros_like(albedo))
    n = c.shape[0]
    rgb = rgb.permute(0, 2, 1).reshape(n, 3, resolution, resolution)
    depth = torch.where(hit, depth, torch.full_like(depth, math.inf)).reshape(n, 1, resolution, resolution)
    return rgb, depth, hit.reshape(n, 1, resolution, resolution)


def analytic_sphere(
    c: torch.Tensor, resolution: int, centre: tuple[float, float, float], radius: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The writer's analytic render of a plain sphere: (depth [N, 1, R, R], silhouette [N, 1, R, R])."""
    origins, dirs = ray_bundle(c.float(), resolution)
    depth, hit = sphere_depth(origins, dirs, centre, radius)
    n = c.shape[0]
    return depth.reshape(n, 1, resolution, resolution), hit.reshape(n, 1, resolution, resolution)


def head_cameras(head: ToyHead, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(t [F] = frame / (F - 1), cameras [F, 25]) of a clip."""
    t = torch.arange(num_frames, dtype=torch.float32) / (num_frames - 1)
    return t, pose_vector(head.yaw(t))


def make_toy_heads(
    out: str | Path, num_clips: int = 24, num_frames: int = 16, resolution: int = 32, seed: int = 0
) -> list[ToyHead]:
    """Write ``recrop_faces/*.mp4`` (ffv1, lossless), ``smoothed_camera2world/*.json``, ``voxceleb.list`` and
    ``heads.json`` (the generating parameters, for evaluation only) under ``out``; returns the heads."""
    from visioncore.video import write_video

    if num_clips < 1 or num_frames < 2 or resolution < 8 or resolution % 2:
        raise ValueError("make-synthetic needs >= 1 clip, >= 2 frames and an even resolution >= 8")
    root = Path(out)
    (root / "recrop_faces").mkdir(parents=True, exist_ok=True)
    (root / "smoothed_camera2world").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    heads, names = [], []
    for i in range(num_clips):
        head = random_head(rng)
        name = f"toy{i:04d}_head_{i:05d}"
        t, c = head_cameras(head, num_frames)
        rgb, _, _ = render_head(head, t, c, resolution)
        frames = (rgb.clamp(0, 1) * 255).round().to(torch.uint8)
        write_video(root / "recrop_faces" / f"{name}.mp4", frames, fps=25, codec="ffv1")
        cams = [[f"{f:04d}.png", [round(float(v), 7) for v in c[f]]] for f in range(num_frames)]
        (root / "smoothed_camera2world" / f"{name}.json").write_text(json.dumps(cams))
        heads.append(head)
        names.append(name)
    (root / "voxceleb.list").write_text("".join(f"{n}.mp4\n" for n in names))
    (root / "heads.json").write_text(json.dumps({n: asdict(h) for n, h in zip(names, heads)}, indent=1))
    return heads


def load_heads(root: str | Path) -> dict[str, ToyHead]:
    """The generating parameters written by ``make_toy_heads`` (evaluation only; the loader never reads them)."""
    data = json.loads((Path(root) / "heads.json").read_text())
    return {name: ToyHead(**params) for name, params in data.items()}
