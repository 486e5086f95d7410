"""Autoregressive (VQGAN-style GPT) transformer on token grids: class-token prefix, raster order, 256 steps at 16x16.

Position i of the input [class, t_0, ..., t_{L-2}] predicts t_i (teacher forcing). ``sample`` decodes one token per
step (L steps); ``teacher_forced_top1`` is the Sec. 3.2 visualisation (one pass, top-1 at every position).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seq_gan.models.transformer import TransformerBody
from visioncore.hub import PretrainedMixin


class ARTransformer(nn.Module, PretrainedMixin):
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
        vocab = num_codes + num_classes + 1  # codes, then class tokens with the null class last
        self.body = TransformerBody(vocab, num_codes, self.length, dim, depth, heads, mlp_ratio, dropout)

    def _prefix(self, labels: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        if labels is None:
            labels = torch.full((batch,), self.num_classes, dtype=torch.long, device=device)
        return (labels.long() + self.num_codes).view(-1, 1)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, n] (n <= L; the first n tokens) -> logits [B, n, K] where row i predicts token i."""
        b = tokens.shape[0]
        ids = torch.cat([self._prefix(labels, b, tokens.device), tokens[:, : self.length - 1].long()], dim=1)
        return self.body(ids[:, : tokens.shape[1]], causal=True)

    def loss(self, tokens: torch.Tensor, labels: torch.Tensor | None = None, generator=None) -> torch.Tensor:
        flat = tokens.reshape(tokens.shape[0], -1)
        return F.cross_entropy(self(flat, labels).reshape(-1, self.num_codes), flat.reshape(-1).long())

    @torch.no_grad()
    def teacher_forced_top1(self, tokens: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """One teacher-forced pass; top-1 prediction at every position (Sec. 3.2) -> [B, grid, grid]."""
        flat = tokens.reshape(tokens.shape[0], -1)
        return self(flat, labels).argmax(-1).view_as(tokens)

    @torch.no_grad()
    def sample(
        self,
        labels: torch.Tensor | None,
        num: int | None = None,
        temperature: float = 1.0,
        top_k: int = 0,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One token per step, L steps -> [B, grid, grid]."""
        device = next(self.parameters()).device
        b = num if labels is None else labels.shape[0]
        tokens = torch.zeros(b, 0, dtype=torch.long, device=device)
        for _ in range(self.length):
            step_in = torch.cat(
                [tokens, tokens.new_zeros(b, 1)], dim=1
            )  # the dummy last token is never attended
            logits = self(step_in, labels)[:, -1].float()
            if greedy:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / max(temperature, 1e-6)
                if top_k:
                    kth = logits.topk(top_k, dim=-1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, -float("inf"))
                nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            tokens = torch.cat([tokens, nxt], dim=1)
        return tokens.view(b, self.grid, self.grid)
