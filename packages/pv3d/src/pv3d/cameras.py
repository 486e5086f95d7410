"""25-d EG3D camera vectors: flattened 4x4 cam2world (OpenCV: x right, y down, z forward) + 3x3 normalised K.

World convention (EG3D): y up, the frontal camera sits on +z looking at the head. ``yaw`` = EG3D's horizontal angle
minus pi/2 (positive yaw moves the camera towards +x); ``pitch`` offsets EG3D's vertical angle from pi/2.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "FOCAL",
    "PIVOT",
    "RADIUS",
    "LookAtPoseSampler",
    "camera_vector",
    "canonical_camera",
    "cam2world_lookat",
    "intrinsics",
    "mirror_camera",
    "pose_vector",
    "split_camera",
]

FOCAL = 4.2647  # normalised focal length (18.837 mm on a 4.4167 mm sensor, EG3D's FFHQ cameras)
RADIUS = 2.7
PIVOT = (0.0, 0.0, 0.2)
_MIRROR_ENTRIES = (1, 2, 3, 4, 8)  # cam2world entries that change sign under a horizontal flip (x -> -x)


def intrinsics(
    focal: float = FOCAL, batch: int = 1, device: torch.device | str | None = None
) -> torch.Tensor:
    """Normalised intrinsics [batch, 3, 3]: focal in units of the image size, principal point (0.5, 0.5)."""
    k = torch.tensor([[focal, 0.0, 0.5], [0.0, focal, 0.5], [0.0, 0.0, 1.0]], device=device)
    return k.expand(batch, 3, 3).clone()


def cam2world_lookat(origin: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B, 4, 4] cam2world for cameras at ``origin`` [B, 3] looking at ``target`` [B, 3] (world up = +y).

    Columns: right = -normalize(up x forward), up' = normalize(forward x right) (points down in the world, i.e.
    the OpenCV image y axis), forward; translation = origin.
    """
    forward = torch.nn.functional.normalize(target - origin, dim=-1)
    up = torch.zeros_like(forward)
    up[:, 1] = 1.0
    right = -torch.nn.functional.normalize(torch.linalg.cross(up, forward, dim=-1), dim=-1)
    up = torch.nn.functional.normalize(torch.linalg.cross(forward, right, dim=-1), dim=-1)
    m = torch.eye(4, device=origin.device, dtype=origin.dtype).repeat(origin.shape[0], 1, 1)
    m[:, :3, :3] = torch.stack([right, up, forward], dim=-1)
    m[:, :3, 3] = origin
    return m


def camera_vector(cam2world: torch.Tensor, focal: float = FOCAL) -> torch.Tensor:
    """[B, 25] = cam2world.flatten() ++ K.flatten()."""
    b = cam2world.shape[0]
    k = intrinsics(focal, b, cam2world.device).to(cam2world.dtype)
    return torch.cat([cam2world.reshape(b, 16), k.reshape(b, 9)], dim=1)


def split_camera(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., 25] -> (cam2world [..., 4, 4], K [..., 3, 3])."""
    if c.shape[-1] != 25:
        raise ValueError(f"camera vectors must have 25 entries, got shape {tuple(c.shape)}")
    return c[..., :16].reshape(*c.shape[:-1], 4, 4), c[..., 16:25].reshape(*c.shape[:-1], 3, 3)


class LookAtPoseSampler:
    """EG3D's LookAtPoseSampler: horizontal angle h, vertical angle v (pi/2 = level), orbit ``radius`` about ``lookat``.

    The vertical angle is remapped to a polar angle phi = arccos(1 - 2 v / pi) (uniform on the sphere).
    """

    @staticmethod
    def sample(
        horizontal_mean: float,
        vertical_mean: float,
        lookat_position: torch.Tensor | tuple[float, float, float],
        horizontal_stddev: float = 0.0,
        vertical_stddev: float = 0.0,
        radius: float = 1.0,
        batch_size: int = 1,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """[batch_size, 4, 4] cam2world matrices."""
        h = (
            torch.randn(batch_size, 1, device=device, generator=generator) * horizontal_stddev
            + horizontal_mean
        )
        v = torch.randn(batch_size, 1, device=device, generator=generator) * vertical_stddev + vertical_mean
        v = v.clamp(1e-5, math.pi - 1e-5)
        phi = torch.arccos(1 - 2 * v / math.pi)
        origin = torch.cat(
            [
                radius * torch.sin(phi) * torch.cos(math.pi - h),
                radius * torch.cos(phi),
                radius * torch.sin(phi) * torch.sin(math.pi - h),
            ],
            dim=1,
        )
        target = torch.as_tensor(lookat_position, dtype=origin.dtype, device=device).reshape(1, 3)
        return cam2world_lookat(origin + target, target.expand(batch_size, 3))


def pose_vector(
    yaw: float | torch.Tensor,
    pitch: float | torch.Tensor = 0.0,
    radius: float = RADIUS,
    pivot: tuple[float, float, float] = PIVOT,
    focal: float = FOCAL,
) -> torch.Tensor:
    """[B, 25] cameras at ``yaw`` (h = pi/2 + yaw) and ``pitch`` (v = pi/2 + pitch) looking at ``pivot``."""
    yaw_t = torch.as_tensor(yaw, dtype=torch.float32).reshape(-1)
    pitch_t = torch.as_tensor(pitch, dtype=torch.float32).reshape(-1).expand_as(yaw_t)
    mats = [
        LookAtPoseSampler.sample(math.pi / 2 + float(y), math.pi / 2 + float(p), pivot, radius=radius)
        for y, p in zip(yaw_t, pitch_t)
    ]
    return camera_vector(torch.cat(mats), focal)


def canonical_camera(batch: int = 1, device: torch.device | str = "cpu") -> torch.Tensor:
    """[batch, 25] EG3D's conditioning camera for the mapping network: LookAt(pi/2, pi/2, origin, 2.7).

    (The yaw-0 *render* camera is ``pose_vector(0.0, -0.05)``, which looks at the pivot (0, 0, 0.2).)
    """
    c = pose_vector(0.0, 0.0, RADIUS, (0.0, 0.0, 0.0))
    return c.expand(batch, 25).clone().to(device)


def mirror_camera(c: torch.Tensor) -> torch.Tensor:
    """The camera of the horizontally flipped image: negate cam2world entries 1, 2, 3, 4, 8 (x -> -x on both sides)."""
    if c.shape[-1] != 25:
        raise ValueError(f"camera vectors must have 25 entries, got shape {tuple(c.shape)}")
    out = c.clone()
    out[..., list(_MIRROR_ENTRIES)] = -out[..., list(_MIRROR_ENTRIES)]
    return out
