"""Plain L2 vector quantizer with the straight-through estimator (VQ-VAE / VQGAN; SeQ-GAN Eq. 2)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class QuantizeOutput(NamedTuple):
    """``z_q`` [B, D, h, w] (straight-through), ``indices`` [B, h, w] (long), ``loss`` (scalar)."""

    z_q: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor


def squared_distances(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """||z_i - e_k||^2 for z [N, D], codebook [K, D] -> [N, K]."""
    return z.pow(2).sum(1, keepdim=True) - 2.0 * z @ codebook.t() + codebook.pow(2).sum(1)[None]


class VectorQuantizer(nn.Module):
    """Nearest code by squared L2; ``loss = mean((sg[z] - e)^2) + beta * mean((z - sg[e])^2)`` (element means).

    The codebook is learned by gradient (weight 1 on the codebook side, ``beta`` on the commitment side, as the
    paper's Eq. 2), not by EMA. ``usage`` counts how often each code was picked in training mode; ``freeze()`` fixes
    the token space for phase 2 (no gradients, no counting, no loss).
    """

    def __init__(self, num_codes: int = 1024, dim: int = 256, beta: float = 0.25):
        super().__init__()
        if num_codes < 2 or dim < 1 or beta < 0:
            raise ValueError(
                f"VectorQuantizer needs num_codes >= 2, dim >= 1, beta >= 0; got {num_codes}, {dim}, {beta}"
            )
        self.num_codes, self.dim, self.beta = num_codes, dim, beta
        self.codebook = nn.Embedding(num_codes, dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / num_codes, 1.0 / num_codes)
        self.register_buffer("usage", torch.zeros(num_codes, dtype=torch.long), persistent=False)
        self.frozen = False

    def freeze(self) -> VectorQuantizer:
        """Fix the codebook (phase 2): no gradient, eval mode, no usage counting, zero loss."""
        self.frozen = True
        self.codebook.weight.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> VectorQuantizer:
        return super().train(mode and not self.frozen)

    @torch.no_grad()
    def init_from(self, z: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Data-dependent init: codes = randomly drawn encoder outputs z [N, D] (with small noise if N < K)."""
        n = z.shape[0]
        picks = torch.randint(0, n, (self.num_codes,), generator=generator, device=z.device)
        if n >= self.num_codes:
            picks = torch.randperm(n, generator=generator, device=z.device)[: self.num_codes]
        codes = z[picks].clone()
        if n < self.num_codes:
            codes += 0.01 * z.std() * torch.randn(codes.shape, generator=generator, device=z.device)
        self.codebook.weight.copy_(codes)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for ``indices`` [B, h, w] -> [B, D, h, w]."""
        return self.codebook(indices).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor) -> QuantizeOutput:
        b, d, h, w = z.shape
        if d != self.dim:
            raise ValueError(f"VectorQuantizer: expected {self.dim} channels, got shape {tuple(z.shape)}")
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        codebook = self.codebook.weight
        indices = squared_distances(flat.detach().float(), codebook.detach().float()).argmin(1)
        e = self.lookup(indices.view(b, h, w)).to(z.dtype)
        if self.frozen:
            loss = z.new_zeros(())
        else:
            loss = (z.detach() - e).pow(2).mean() + self.beta * (z - e.detach()).pow(2).mean()
            if self.training:
                self.usage += torch.bincount(indices, minlength=self.num_codes)
        z_q = z + (e - z).detach()
        return QuantizeOutput(z_q, indices.view(b, h, w), loss)
