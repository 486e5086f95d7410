"""SACRW: slot attention trained by cyclic walks between parts and whole (paper Sec. 3; spec sheet "Cyclic walks").

The model works on frozen backbone features [B, N, C]; the backbone lives in :mod:`cyclic_walks.models.backbone`
and is never saved with the model (it is loaded from its own local weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from cyclic_walks.losses import WalkLosses, cyclic_walk_losses, positional_prior, walk_transitions
from cyclic_walks.models.slot_attention import SlotEncoder
from visioncore.hub import PretrainedMixin


class CyclicWalks(nn.Module, PretrainedMixin):
    """Slot encoder + the two walk losses; masks and slot representations come from the walk transitions."""

    def __init__(
        self,
        feature_dim: int = 384,
        num_slots: int = 4,
        iters: int = 3,
        mlp_hidden: int = 384,
        tau: float = 0.1,
        affinity_threshold: float = 0.7,
        alpha: float = 1.0,
        beta: float = 100.0,
        position_prior: bool = False,
    ) -> None:
        super().__init__()
        self.feature_dim, self.num_slots = feature_dim, num_slots
        self.tau, self.affinity_threshold = tau, affinity_threshold
        self.alpha, self.beta, self.use_position_prior = alpha, beta, position_prior
        self.encoder = SlotEncoder(feature_dim, iters=iters, mlp_hidden=mlp_hidden)
        # The N x N positional prior depends only on the grid (and tau, dim): built once per grid, device and dtype.
        self._priors: dict[tuple, torch.Tensor] = {}

    def position_prior(self, grid: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        """MOVi's positional prior [N, N] for ``grid`` on ``like``'s device and dtype (cached)."""
        key = (tuple(grid), like.device, like.dtype)
        if key not in self._priors:
            prior = positional_prior(grid_position_embedding(tuple(grid), self.feature_dim), self.tau)
            self._priors[key] = prior.to(like)
        return self._priors[key]

    def forward(self, features: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Frozen features [B, N, C] -> slots [B, K, C] (slot size = feature dim)."""
        slots, _ = self.encoder(features.detach(), self.num_slots, generator=generator)
        return slots

    def losses(self, features: torch.Tensor, slots: torch.Tensor, grid: tuple[int, int]) -> WalkLosses:
        prior = None
        if self.use_position_prior:
            prior = self.position_prior(grid, features)
        return cyclic_walk_losses(features, slots, self.tau, self.affinity_threshold, prior)

    def loss(self, features: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, WalkLosses]:
        """Total alpha * L_wpw + beta * L_pwp (paper Eq. 5) and its parts."""
        parts = self.losses(features, self(features), grid)
        return self.alpha * parts.wpw + self.beta * parts.pwp, parts

    @torch.no_grad()
    def predict(
        self,
        features: torch.Tensor,
        grid: tuple[int, int],
        image_size: tuple[int, int],
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Masks [B, H, W] (argmax of the upsampled A_fs), A_fs maps [B, K, h, w] and slot features A_sf f [B, K, C]."""
        slots = self(features, generator)
        a_fs, a_sf = walk_transitions(features, slots, self.tau)
        return {
            "masks": masks_from_transition(a_fs, grid, image_size),
            "attention": rearrange(a_fs, "b (h w) k -> b k h w", h=grid[0], w=grid[1]),
            "slot_features": a_sf @ F.normalize(features, dim=-1),
            "slots": slots,
        }


def masks_from_transition(
    a_fs: torch.Tensor, grid: tuple[int, int], image_size: tuple[int, int]
) -> torch.Tensor:
    """A_fs [B, N, K] -> per-pixel slot ids [B, H, W]: bilinear upsampling of each slot's map, then argmax over K."""
    maps = rearrange(a_fs, "b (h w) k -> b k h w", h=grid[0], w=grid[1])
    maps = F.interpolate(maps.float(), size=tuple(image_size), mode="bilinear", align_corners=False)
    return maps.argmax(dim=1)


def grid_position_embedding(grid: tuple[int, int], dim: int) -> torch.Tensor:
    """2-D sin-cos position embedding [h*w, dim] for the MOVi positional prior (half the channels per axis)."""
    h, w = grid
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / max(quarter, 1))
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    parts = []
    for coord in (ys.flatten(), xs.flatten()):
        angles = coord[:, None] * omega[None]
        parts += [angles.sin(), angles.cos()]
    pe = torch.cat(parts, dim=1)
    return F.pad(pe, (0, dim - pe.shape[1])).float()
