"""MaskGIT (Chang et al. 2022): a bidirectional transformer that predicts masked tokens; iterative parallel decoding.

The non-autoregressive ("NAR") generator of SeQ-GAN (Sec. 5). Sequence = [class token, 16x16 image tokens]; class id
``num_classes`` is the null class (unconditional). Training masks ``ceil(cos(pi r / 2) * L)`` tokens, r ~ U(0, 1);
sampling runs ``steps`` rounds of the same cosine schedule, keeping the most confident predictions (confidence =
sampled token's probability plus annealed Gumbel noise, MaskGIT's "randomised confidence").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seq_gan.models.transformer import TransformerBody
from visioncore.hub import PretrainedMixin


def cosine_schedule(r: torch.Tensor | float) -> torch.Tensor:
    """Mask ratio gamma(r) = cos(pi r / 2): 1 at r = 0 (all masked), 0 at r = 1."""
    return torch.cos(math.pi * torch.as_tensor(r, dtype=torch.float64) / 2)


def gumbel(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, device=device).clamp(1e-20, 1.0)
    return -torch.log(-torch.log(u).clamp_min(1e-20))


class MaskGIT(nn.Module, PretrainedMixin):
    def __init__(
        self,
        num_codes: int = 1024,
        grid: int = 16,
        num_classes: int = 1000,
        dim: int = 768,
        depth: int = 24,
        heads: int = 16,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.num_codes, self.grid, self.num_classes = num_codes, grid, num_classes
        self.length = grid * grid
        self.mask_id = num_codes  # [MASK]
        # vocabulary: codes, [MASK], then one class token per class plus the null class
        vocab = num_codes + 1 + num_classes + 1
        self.body = TransformerBody(vocab, num_codes, self.length + 1, dim, depth, heads, mlp_ratio, dropout)

    def class_ids(self, labels: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        if labels is None:
            labels = torch.full((batch,), self.num_classes, dtype=torch.long, device=device)
        return (labels.long() + self.num_codes + 1).view(-1, 1)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, L] (codes or ``mask_id``) -> logits over codes [B, L, K]."""
        b = tokens.shape[0]
        ids = torch.cat([self.class_ids(labels, b, tokens.device), tokens.long()], dim=1)
        return self.body(ids, causal=False)[:, 1:]

    def mask_tokens(
        self, tokens: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training input: (masked tokens [B, L], mask [B, L] bool) with ceil(cos(pi r / 2) L) >= 1 masked per row."""
        b, n = tokens.shape
        r = torch.rand(b, generator=generator, device=tokens.device)
        count = torch.ceil(cosine_schedule(r).to(tokens.device) * n).clamp(1, n).long()
        order = torch.rand(b, n, generator=generator, device=tokens.device).argsort(1).argsort(1)
        mask = order < count[:, None]
        return tokens.masked_fill(mask, self.mask_id), mask

    def loss(
        self,
        tokens: torch.Tensor,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Cross-entropy on the masked positions (MaskGIT Eq. 1)."""
        inp, mask = self.mask_tokens(tokens, generator)
        logits = self(inp, labels)
        return F.cross_entropy(logits[mask], tokens.long()[mask])

    @torch.no_grad()
    def sample(
        self,
        labels: torch.Tensor | None,
        num: int | None = None,
        steps: int = 12,
        temperature: float = 1.0,
        confidence_noise: float = 4.5,
        generator: torch.Generator | None = None,
        return_trace: bool = False,
    ):
        """Iterative decoding: ``steps`` rounds; after round t, ``floor(cos(pi/2 (t+1)/steps) L)`` tokens stay masked.

        Returns token grids [B, grid, grid]; with ``return_trace`` also the number of masked tokens after each round.
        """
        device = next(self.parameters()).device
        b = num if labels is None else labels.shape[0]
        tokens = torch.full((b, self.length), self.mask_id, dtype=torch.long, device=device)
        trace = []
        for t in range(steps):
            masked = tokens == self.mask_id
            logits = self(tokens, labels).float() / max(temperature, 1e-6)
            probs = logits.softmax(-1)
            drawn = torch.multinomial(probs.view(-1, self.num_codes), 1, generator=generator).view(
                b, self.length
            )
            drawn = torch.where(masked, drawn, tokens)
            conf = torch.log(torch.gather(probs, -1, drawn[..., None])[..., 0].clamp_min(1e-20))
            conf = conf + confidence_noise * (1.0 - (t + 1) / steps) * gumbel(conf.shape, generator, device)
            conf = torch.where(masked, conf, torch.full_like(conf, math.inf))
            keep_masked = int(math.floor(float(cosine_schedule((t + 1) / steps)) * self.length))
            keep_masked = min(keep_masked, int(masked.sum(1).min()) - 1) if t + 1 < steps else 0
            keep_masked = max(keep_masked, 0)
            tokens = drawn
            if keep_masked > 0:
                lowest = conf.argsort(1)[:, :keep_masked]
                tokens = tokens.scatter(1, lowest, self.mask_id)
            trace.append(int((tokens == self.mask_id).sum(1).max()))
        grids = tokens.view(b, self.grid, self.grid)
        return (grids, trace) if return_trace else grids
