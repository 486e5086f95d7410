"""The decoder baseline: slot attention + a spatial-broadcast MLP decoder reconstructing the frozen features
(DINOSAUR, Seitzer et al. 2023, MLP-decoder variant). Same slot encoder as :class:`CyclicWalks`, different loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cyclic_walks.losses import feature_reconstruction_loss
from cyclic_walks.models.slot_attention import SlotEncoder
from visioncore.hub import PretrainedMixin


class MLPDecoder(nn.Module):
    """Each slot is broadcast to every token, gets a learned position embedding, and an MLP decodes a feature and
    an alpha logit per token; alphas are a softmax over slots and mix the per-slot features."""

    def __init__(self, dim: int, num_tokens: int, hidden: int, layers: int = 4) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, 1, num_tokens, dim) * 0.02)
        widths = [dim] + [hidden] * (layers - 1)
        blocks: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(a, b), nn.ReLU()]
        self.mlp = nn.Sequential(*blocks, nn.Linear(widths[-1], dim + 1))

    def forward(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """slots [B, K, D] -> (reconstruction [B, N, D], alpha masks [B, K, N])."""
        out = self.mlp(slots[:, :, None, :] + self.pos_embed)  # [B, K, N, D + 1]
        features, alpha_logits = out[..., :-1], out[..., -1]
        alpha = alpha_logits.softmax(dim=1)
        return torch.einsum("bkn,bknd->bnd", alpha, features), alpha


class DecoderBaseline(nn.Module, PretrainedMixin):
    """Slot attention trained by feature reconstruction (MSE on standardised features)."""

    def __init__(
        self,
        feature_dim: int = 384,
        num_slots: int = 4,
        num_tokens: int = 784,
        iters: int = 3,
        mlp_hidden: int = 384,
        decoder_layers: int = 4,
        decoder_hidden: int = 1536,
    ) -> None:
        super().__init__()
        self.num_slots = num_slots
        self.encoder = SlotEncoder(feature_dim, iters=iters, mlp_hidden=mlp_hidden)
        self.decoder = MLPDecoder(feature_dim, num_tokens, decoder_hidden, decoder_layers)

    def forward(
        self, features: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """features [B, N, C] -> (slots, reconstruction [B, N, C], alpha masks [B, K, N])."""
        slots, _ = self.encoder(features.detach(), self.num_slots, generator=generator)
        reconstruction, alpha = self.decoder(slots)
        return slots, reconstruction, alpha

    def loss(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _, reconstruction, _ = self(features)
        return feature_reconstruction_loss(reconstruction, target)

    @torch.no_grad()
    def predict(
        self,
        features: torch.Tensor,
        grid: tuple[int, int],
        image_size: tuple[int, int],
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Masks [B, H, W] from the decoder's alpha masks (DINOSAUR's readout), upsampled bilinearly."""
        slots, _, alpha = self(features, generator)
        maps = alpha.reshape(alpha.shape[0], alpha.shape[1], *grid)
        masks = F.interpolate(maps, size=tuple(image_size), mode="bilinear", align_corners=False).argmax(
            dim=1
        )
        return {"masks": masks, "attention": maps, "slots": slots}
