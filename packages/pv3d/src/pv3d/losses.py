"""PV3D losses (Sec. 3.3 and the official ``adv_video`` loss): non-saturating GAN terms for the image and video
discriminators, lazy R1 on real inputs (the video D's including its dt plane), EG3D's density regulariser,
the real/fake blur and the camera-swap and EMA schedules (all counted in images seen, not iterations)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pv3d import ops
from pv3d.models.discriminator import ImageDiscriminator, VideoDiscriminator, video_input

__all__ = [
    "blur",
    "blur_sigma",
    "d_logits",
    "density_reg",
    "ema_beta",
    "r1_penalty",
    "swap_prob",
]


def blur_sigma(nimg: int, init_sigma: float, fade_kimg: float) -> float:
    """Blur std in pixels, fading linearly from ``init_sigma`` to 0 over ``fade_kimg`` thousand images."""
    if fade_kimg <= 0:
        return 0.0
    return max(1 - nimg / (fade_kimg * 1e3), 0.0) * init_sigma


def blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (EG3D's discriminator-input blur): taps over +-3 sigma, same size."""
    if sigma <= 0:
        return img
    size = math.floor(sigma * 3)
    taps = (
        torch.arange(-size, size + 1, device=img.device, dtype=torch.float32).div(sigma).square().neg().exp2()
    )
    return ops.filter2d(img, ops.setup_filter(taps).to(img.device))


def swap_prob(nimg: int, start: float, end: float, fade_kimg: float) -> float:
    """Probability of conditioning the mapping network on another sample's cameras (EG3D GPC), fading start -> end."""
    if fade_kimg <= 0:
        return end
    return start + (end - start) * min(nimg / (fade_kimg * 1e3), 1.0)


def ema_beta(nimg: int, batch: int, ema_kimg: float, rampup: float | None) -> float:
    """EMA decay per step: 0.5 ** (batch / ema_nimg), ema_nimg ramped up to ``rampup`` x images seen."""
    ema_nimg = ema_kimg * 1000
    if rampup is not None:
        ema_nimg = min(ema_nimg, nimg * rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


def d_logits(
    d_img: ImageDiscriminator,
    d_vid: VideoDiscriminator,
    image: torch.Tensor,
    image_raw: torch.Tensor,
    t: torch.Tensor,
    c: torch.Tensor,
    sigma: float = 0.0,
    video: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Image-D logits [B*2, 1] (every frame) and video-D logits [B, 1] (None without ``video``) of two-frame clips
    [B, 2, 3, H, W]."""
    b = image.shape[0]
    image, image_raw = blur(image.flatten(0, 1), sigma), blur(image_raw.flatten(0, 1), sigma)
    logits_img = d_img(image, image_raw, c.flatten(0, 1))
    if not video:
        return logits_img, None
    x, cc = video_input(image.reshape(b, 2, *image.shape[1:]), t, c)
    return logits_img, d_vid(x, cc)


def r1_penalty(
    d_img: ImageDiscriminator,
    d_vid: VideoDiscriminator,
    image: torch.Tensor,
    image_raw: torch.Tensor,
    t: torch.Tensor,
    c: torch.Tensor,
    sigma: float = 0.0,
    video: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """R1 = ||grad_x D(x)||^2 on real inputs: image D w.r.t. image and raw image, video D w.r.t. all 7 channels."""
    b = image.shape[0]
    img = blur(image.flatten(0, 1), sigma).detach().requires_grad_(True)
    raw = blur(image_raw.flatten(0, 1), sigma).detach().requires_grad_(True)
    logits_img = d_img(img, raw, c.flatten(0, 1))
    g_img, g_raw = torch.autograd.grad(logits_img.sum(), [img, raw], create_graph=True)
    pen_img = g_img.square().sum(dim=[1, 2, 3]) + g_raw.square().sum(dim=[1, 2, 3])
    if not video:
        return pen_img, None
    x, cc = video_input(img.detach().reshape(b, 2, *img.shape[1:]), t, c)
    x = x.requires_grad_(True)
    (g_vid,) = torch.autograd.grad(d_vid(x, cc).sum(), [x], create_graph=True)
    return pen_img, g_vid.square().sum(dim=[1, 2, 3])


def density_reg(
    density_fn, planes: torch.Tensor, n_points: int, noise: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """EG3D density regulariser: mean |sigma(p) - sigma(p + N(0, noise^2))| over uniform points in [-1, 1]^3."""
    b = planes.shape[0]
    points = torch.rand(b, n_points, 3, device=planes.device, generator=generator) * 2 - 1
    shifted = points + torch.randn(points.shape, device=planes.device, generator=generator) * noise
    sigma = density_fn(planes, torch.cat([points, shifted], dim=1))
    return F.l1_loss(sigma[:, :n_points], sigma[:, n_points:])
