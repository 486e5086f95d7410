"""A tiny latent "autoencoder" for the CPU experiments: a fixed, invertible 1x1 colour transform to luma and chroma.

Why (README, acceptance section): in RGB pixel space a red and a blue object on black share almost nothing (their
differences from the background are nearly orthogonal), so the DDIM-inverted noise of a red square tells a model that
follows "blue" nothing about where the square is, and an edited prompt loses the source's structure. Stable
Diffusion edits in a VAE latent in which an object's layout dominates and its colour is a smaller component. This
latent keeps that property by construction: channel 0 is ``luma_scale`` x (the mean of R, G, B + 1), the object's
layout whatever its colour, 0 on black (a near-zero-mean latent, as SD's: a large constant offset is what a briefly
trained model gets wrong when it samples from pure noise); channels 1-2 are ``chroma_scale`` x two orthonormal
colour-difference axes. Encoding is exact and
decoding is its inverse (no learning, no blur), with the ``encode(x).latent_dist`` / ``decode(z).sample`` interface
of diffusers' ``AutoencoderKL`` so that :class:`~tune_a_video.pipeline.TuneAVideoPipeline` uses it as its ``vae``.
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKLOutput
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_utils import ModelMixin


def luma_chroma_matrix(luma_scale: float, chroma_scale: float) -> torch.Tensor:
    """(3, 3) map RGB -> (luma, R-G, R+G-2B), rows orthogonal; luma = mean of R, G, B times ``luma_scale``."""
    if luma_scale <= 0 or chroma_scale <= 0:
        raise ValueError(f"luma_scale and chroma_scale must be positive, got {luma_scale}, {chroma_scale}")
    s2, s6 = 1 / math.sqrt(2), 1 / math.sqrt(6)
    return torch.tensor(
        [
            [luma_scale / 3, luma_scale / 3, luma_scale / 3],
            [chroma_scale * s2, -chroma_scale * s2, 0.0],
            [chroma_scale * s6, chroma_scale * s6, -2 * chroma_scale * s6],
        ],
        dtype=torch.float64,
    )


class LumaChromaAutoencoder(ModelMixin, ConfigMixin):
    """Exact, invertible per-pixel latent (3 channels, no downsampling): RGB in [-1, 1] -> (luma, chroma, chroma)."""

    spatial_scale = 1  # the pipeline's ``vae_scale_factor``

    @register_to_config
    def __init__(
        self, luma_scale: float = 4.0, chroma_scale: float = 1.0, scaling_factor: float = 1.0
    ) -> None:
        super().__init__()
        matrix = luma_chroma_matrix(luma_scale, chroma_scale)
        self.register_buffer("encoder_matrix", matrix.float(), persistent=False)
        self.register_buffer("decoder_matrix", torch.linalg.inv(matrix).float(), persistent=False)
        self.register_buffer("offset", torch.tensor([luma_scale, 0.0, 0.0]), persistent=False)  # black -> 0

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder: str | None = None, **kwargs):
        """Built from ``config.json`` alone: the map has no weights (``save_pretrained`` writes none), so a pipeline
        folder holding this latent loads with ``TuneAVideoPipeline.from_pretrained``."""
        config = cls.load_config(pretrained_model_name_or_path, subfolder=subfolder)
        model = cls.from_config(config).eval()
        dtype = kwargs.get("torch_dtype")
        return model if dtype is None else model.to(dtype)

    @staticmethod
    def _transform(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (b, 3, h, w), got shape {tuple(x.shape)}")
        return torch.einsum("ij,bjhw->bihw", matrix.to(x.dtype), x)

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> AutoencoderKLOutput:
        """A deterministic posterior: ``latent_dist.mode()`` and ``.sample()`` both return the latent."""
        mean = self._transform(self.encoder_matrix, x) + self.offset.to(x.dtype)[:, None, None]
        dist = DiagonalGaussianDistribution(
            torch.cat([mean, torch.zeros_like(mean)], dim=1), deterministic=True
        )
        return AutoencoderKLOutput(latent_dist=dist)

    def decode(self, z: torch.Tensor, return_dict: bool = True) -> DecoderOutput:
        return DecoderOutput(
            sample=self._transform(self.decoder_matrix, z - self.offset.to(z.dtype)[:, None, None])
        )
