"""Slot Attention (Locatello et al., 2020) as the cyclic-walks paper uses it (spec sheet, "SlotAttentionEncoder").

Slot size equals the feature dim so that slots and features can be compared by cosine without a projection.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class SlotAttention(nn.Module):
    """Iterative attention with a softmax over slots, a GRU update and a residual MLP (Locatello et al., Alg. 1).

    Slots start from one shared learned Gaussian, mu + exp(log_sigma) * eps, with eps redrawn on every forward; pass
    a seeded ``generator`` to fix the draw (evaluation).
    """

    def __init__(self, dim: int, iters: int = 3, mlp_hidden: int | None = None, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim, self.iters, self.eps = dim, iters, eps
        self.scale = dim**-0.5
        self.slots_mu = nn.Parameter(torch.empty(1, 1, dim))
        self.slots_log_sigma = nn.Parameter(torch.empty(1, 1, dim))
        self.norm_inputs, self.norm_slots, self.norm_mlp = (
            nn.LayerNorm(dim),
            nn.LayerNorm(dim),
            nn.LayerNorm(dim),
        )
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        hidden = mlp_hidden or dim
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.slots_mu)
        nn.init.xavier_uniform_(self.slots_log_sigma)
        for layer in (self.to_q, self.to_k, self.to_v):
            nn.init.xavier_uniform_(layer.weight)
        nn.init.xavier_uniform_(self.gru.weight_ih)
        nn.init.orthogonal_(self.gru.weight_hh)
        nn.init.zeros_(self.gru.bias_ih)
        nn.init.zeros_(self.gru.bias_hh)
        nn.init.kaiming_uniform_(self.mlp[0].weight, nonlinearity="relu")

    def initial_slots(
        self, batch: int, num_slots: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        device = self.slots_mu.device if generator is None else generator.device
        noise = torch.randn(batch, num_slots, self.dim, generator=generator, device=device).to(self.slots_mu)
        return self.slots_mu + self.slots_log_sigma.exp() * noise

    def forward(
        self,
        inputs: torch.Tensor,
        num_slots: int,
        generator: torch.Generator | None = None,
        slots: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs [B, N, D] -> (slots [B, K, D], attention [B, K, N] of the last iteration, softmax over slots)."""
        b = inputs.shape[0]
        slots = self.initial_slots(b, num_slots, generator) if slots is None else slots
        inputs = self.norm_inputs(inputs)
        k, v = self.to_k(inputs) * self.scale, self.to_v(inputs)
        attn = inputs.new_zeros(b, slots.shape[1], inputs.shape[1])
        for _ in range(self.iters):
            previous = slots
            q = self.to_q(self.norm_slots(slots))
            attn = torch.einsum("bkd,bnd->bkn", q, k).softmax(dim=1)  # competition between slots
            weights = (attn + self.eps) / (attn + self.eps).sum(
                dim=-1, keepdim=True
            )  # weighted mean over inputs
            updates = torch.einsum("bkn,bnd->bkd", weights, v)
            slots = self.gru(rearrange(updates, "b k d -> (b k) d"), rearrange(previous, "b k d -> (b k) d"))
            slots = rearrange(slots, "(b k) d -> b k d", b=b)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attn


class SlotEncoder(nn.Module):
    """Input MLP (LayerNorm, Linear, ReLU, Linear) followed by :class:`SlotAttention` (spec sheet)."""

    def __init__(self, feature_dim: int, iters: int = 3, mlp_hidden: int | None = None) -> None:
        super().__init__()
        self.input_mlp = nn.Sequential(
            nn.LayerNorm(feature_dim),
            nn.Linear(feature_dim, feature_dim),
            nn.ReLU(),
            nn.Linear(feature_dim, feature_dim),
        )
        self.slot_attention = SlotAttention(feature_dim, iters=iters, mlp_hidden=mlp_hidden)

    def forward(
        self, features: torch.Tensor, num_slots: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.slot_attention(self.input_mlp(features), num_slots, generator=generator)
