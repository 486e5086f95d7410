"""Tuning objective of Tune-A-Video (paper Eq. 2 / Sec. 4.2): the diffusion denoising loss on video latents."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import nn


def denoising_target(
    scheduler: DDPMScheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """epsilon for SD v1.x, v = sqrt(a) eps - sqrt(1-a) z0 for v-prediction models (SD 2.x)."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"unsupported prediction_type {kind!r} (expected 'epsilon' or 'v_prediction')")


def sample_timesteps(
    scheduler: DDPMScheduler, batch: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One timestep per *video* from U[0, T), shared by all its frames (as upstream)."""
    return torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator)


def diffusion_loss(
    unet: nn.Module,
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    context: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
) -> torch.Tensor:
    """|| target - unet(sqrt(a_t) z0 + sqrt(1 - a_t) eps, t, text) ||^2 for latents (b, c, f, h, w)."""
    timesteps = timesteps.to(latents.device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    prediction = unet(noisy, timesteps, context).sample
    target = denoising_target(scheduler, latents, noise, timesteps)
    return F.mse_loss(prediction.float(), target.float())


@torch.no_grad()
def fixed_pair_loss(
    unet: nn.Module,
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    context: torch.Tensor,
    num_pairs: int = 16,
    seed: int = 0,
) -> float:
    """Mean loss over a fixed, seeded set of (t, noise) pairs: comparable before and after tuning."""
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(num_pairs):
        timesteps = sample_timesteps(scheduler, latents.shape[0], generator)
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        losses.append(diffusion_loss(unet, scheduler, latents, context, noise, timesteps).item())
    return float(sum(losses) / len(losses))
