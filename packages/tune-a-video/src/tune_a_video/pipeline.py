"""TuneAVideoPipeline: text-to-video sampling with the inflated UNet and DDIM inversion (paper Sec. 4.3).

A ``DiffusionPipeline`` with ``vae``, ``text_encoder``, ``tokenizer``, ``unet`` and a ``DDIMScheduler``. ``vae=None``
runs in pixel space (the UNet then sees RGB in [-1, 1]), which the CPU-scale experiments use. Videos are (b, c, f, h, w).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, DiffusionPipeline
from diffusers.utils import BaseOutput
from einops import rearrange
from PIL import Image

# Schedulers whose config (betas, T, prediction type) a DDIM sampler can be built from; SD v1-4 ships PNDMScheduler.
KNOWN_SCHEDULERS = {
    "DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "LMSDiscreteScheduler", "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler", "DDIMInverseScheduler",
}  # fmt: skip


class UnknownSchedulerError(ValueError):
    """A scheduler config whose class this package cannot turn into DDIM."""


def ddim_from_config(config: dict, source: str = "scheduler") -> DDIMScheduler:
    """A ``DDIMScheduler`` with the same noise schedule as any Stable Diffusion scheduler config."""
    name = config.get("_class_name", "DDIMScheduler")
    if name not in KNOWN_SCHEDULERS:
        raise UnknownSchedulerError(
            f"{source}: unknown scheduler {name!r} (known: {', '.join(sorted(KNOWN_SCHEDULERS))})"
        )
    allowed = set(inspect.signature(DDIMScheduler.__init__).parameters)
    # SD latents are not in [-1, 1]: DDIM's default clip_sample=True would be wrong where the config omits it (PNDM).
    return DDIMScheduler.from_config(
        {"clip_sample": False, **{k: v for k, v in config.items() if k in allowed}}
    )


@dataclass
class TuneAVideoPipelineOutput(BaseOutput):
    videos: torch.Tensor | np.ndarray | list


class TuneAVideoPipeline(DiffusionPipeline):
    """Stable Diffusion with 5-D latents. ``__call__`` samples, :meth:`invert` runs DDIM inversion."""

    _optional_components = ["vae"]
    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(self, vae, text_encoder, tokenizer, unet, scheduler) -> None:
        super().__init__()
        self.register_modules(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler
        )

    # ------------------------------------------------------------------------------------------------ helpers
    @property
    def vae_scale_factor(self) -> int:
        if self.vae is None:
            return 1
        # AutoencoderKL halves the size per level after the first; a latent without levels says its own scale
        return getattr(self.vae, "spatial_scale", None) or 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_scale(self) -> float:
        return 1.0 if self.vae is None else float(self.vae.config.scaling_factor)

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """CLIP token ids padded to the tokenizer's max length (77 for SD), truncated beyond it."""
        return self.tokenizer(
            prompts, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True,
            return_tensors="pt",
        ).input_ids  # fmt: skip

    @torch.no_grad()
    def encode_prompt(
        self, prompt: str | list[str], negative_prompt: str | list[str] | None = None
    ) -> torch.Tensor:
        """Text embeddings (b, n, d); with ``negative_prompt`` the CFG batch [uncond; cond] of 2b."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if negative_prompt is not None:
            negatives = (
                [negative_prompt] * len(prompts)
                if isinstance(negative_prompt, str)
                else list(negative_prompt)
            )
            prompts = negatives + prompts
        ids = self.tokenize(prompts).to(self.text_encoder.device)
        return self.text_encoder(ids)[0].to(self.unet.dtype)

    def encode_video(
        self, video: torch.Tensor, generator: torch.Generator | None = None, sample: bool = False
    ):
        """Video (b, c, f, h, w) in [-1, 1] -> latents (b, 4, f, h/8, w/8), encoded frame by frame.

        ``sample=False`` takes the VAE posterior mean (deterministic inversion); training uses a sample, as upstream.
        """
        if self.vae is None:
            return video.to(self.unet.dtype)
        f = video.shape[2]
        frames = rearrange(video, "b c f h w -> (b f) c h w").to(self.vae.device, self.vae.dtype)
        dist = self.vae.encode(frames).latent_dist
        latents = dist.sample(generator) if sample else dist.mode()
        return rearrange(latents * self.latent_scale, "(b f) c h w -> b c f h w", f=f).to(self.unet.dtype)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (b, c, f, h, w) -> video (b, 3, f, H, W) in [0, 1], decoded frame by frame."""
        if self.vae is None:
            return (latents.float() / 2 + 0.5).clamp(0, 1)
        f = latents.shape[2]
        frames = rearrange(latents / self.latent_scale, "b c f h w -> (b f) c h w").to(self.vae.dtype)
        video = self.vae.decode(frames).sample
        return (rearrange(video, "(b f) c h w -> b c f h w", f=f).float() / 2 + 0.5).clamp(0, 1)

    def _check_size(self, height: int, width: int) -> None:
        if height % 8 or width % 8:
            raise ValueError(f"height and width must be divisible by 8, got {height}x{width}")

    # ------------------------------------------------------------------------------------------------ inversion
    @torch.no_grad()
    def invert(self, latents: torch.Tensor, num_inference_steps: int = 50, prompt: str = "") -> torch.Tensor:
        """DDIM inversion (paper Sec. 4.3) of clean latents (b, c, f, h, w) with the empty prompt and no guidance.

        Uses diffusers' ``DDIMInverseScheduler`` built from the sampler's config; its step is upstream's ``next_step``:
        x_t = sqrt(a_t) x0_hat + sqrt(1 - a_t) eps_hat with x0_hat, eps_hat from the previous (lower) timestep.
        The official ``next_step`` never clips x0_hat, so ``clip_sample`` is off here whatever the config says
        (sampling keeps the scheduler's own setting).
        """
        allowed = set(inspect.signature(DDIMInverseScheduler.__init__).parameters)
        inverse = DDIMInverseScheduler.from_config(
            {**{k: v for k, v in self.scheduler.config.items() if k in allowed}, "clip_sample": False}
        )
        inverse.set_timesteps(num_inference_steps, device=latents.device)
        context = self.encode_prompt([prompt] * latents.shape[0])
        for t in inverse.timesteps:
            model_output = self.unet(latents, t, context).sample
            latents = inverse.step(model_output, t, latents).prev_sample
        return latents

    # ------------------------------------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        video_length: int,
        height: int,
        width: int,
        num_inference_steps: int = 50,
        guidance_scale: float = 12.5,
        latents: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        output_type: str = "pt",
        negative_prompt: str = "",
        eta: float = 0.0,
    ) -> TuneAVideoPipelineOutput:
        """Sample videos (b, c, f, h, w) in [0, 1]; pass the inverted source ``latents`` to edit a tuned video.

        ``eta`` is DDIM's stochasticity (Song et al. Eq. 16): 0 = deterministic DDIM (the paper's sampler, needed
        to follow inverted latents), 1 = ancestral, DDPM-like; its noise comes from ``generator``."""
        self._check_size(height, width)
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta}")
        if output_type not in ("pt", "np", "pil"):
            raise ValueError(f"output_type must be 'pt', 'np' or 'pil', got {output_type!r}")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        do_cfg = guidance_scale > 1.0
        context = self.encode_prompt(prompts, negative_prompt if do_cfg else None)
        shape = (
            len(prompts), self.unet.config.in_channels, video_length,
            height // self.vae_scale_factor, width // self.vae_scale_factor,
        )  # fmt: skip
        device = self.unet.device
        if latents is None:
            # drawn on the generator's device (the model's when none is given), then moved
            source = generator.device if generator is not None else device
            latents = torch.randn(shape, generator=generator, device=source).to(device, self.unet.dtype)
        elif tuple(latents.shape) != shape:
            if latents.shape[0] == 1 and tuple(latents.shape[1:]) == shape[1:]:
                latents = latents.expand(shape)
            else:
                raise ValueError(f"latents have shape {tuple(latents.shape)}, expected {shape}")
        latents = latents.to(device, self.unet.dtype) * self.scheduler.init_noise_sigma

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        for t in self.progress_bar(self.scheduler.timesteps):
            model_input = torch.cat([latents] * 2) if do_cfg else latents
            model_input = self.scheduler.scale_model_input(model_input, t)
            output = self.unet(model_input, t, context).sample
            if do_cfg:
                uncond, cond = output.chunk(2)
                output = uncond + guidance_scale * (cond - uncond)
            step_kwargs = {"eta": eta, "generator": generator} if eta > 0 else {}
            latents = self.scheduler.step(output, t, latents, **step_kwargs).prev_sample

        videos = self.decode_latents(latents)
        if output_type == "np":
            return TuneAVideoPipelineOutput(videos=videos.cpu().numpy())
        if output_type == "pil":
            frames = (
                (rearrange(videos, "b c f h w -> b f h w c").cpu().numpy() * 255).round().astype(np.uint8)
            )
            return TuneAVideoPipelineOutput(
                videos=[[Image.fromarray(fr) for fr in video] for video in frames]
            )
        return TuneAVideoPipelineOutput(videos=videos)
