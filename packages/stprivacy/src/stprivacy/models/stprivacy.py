"""The STPrivacy anonymizer: tubelet ViT with privacy sparsification blocks (PSB) and an anonymization block (PAB).

Paper sections 3.2 (PSB: token predictors, Gumbel keep decisions, masked attention) and 3.3 (PAB: the blocks after the
last pruning location rewrite every kept token into its own pixel tubelet). Training runs every token through masked
attention (``forward``); test time keeps a fixed number of tubelets per temporal slice and physically removes the others
(``anonymize``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from visioncore.config import ConfigError
from visioncore.hub import PretrainedMixin

from .layers import Block, TubeletEmbed, tubelets_to_video, video_to_tubelets

__all__ = [
    "AnonymizerOutput",
    "Anonymized",
    "STPrivacy",
    "TokenPredictor",
    "freeze_for_anonymization",
    "tokens_per_slice",
]


def tokens_per_slice(tokens: int, keep_ratio: float, stage: int) -> int:
    """k = int(N * alpha^stage): cumulative keep ratios (stage counted from 1), at least one token."""
    return max(1, int(tokens * keep_ratio**stage + 1e-6))


class TokenPredictor(nn.Module):
    """``PredictorLG``: per-token keep/drop log-probabilities (entry 0 = keep) from local, slice and video features.

    Channels in thirds: local [0, D/3); the keep-weighted mean over the token's temporal slice [D/3, 2D/3); the
    keep-weighted mean over the whole video [2D/3, D). Means divide by a clamped count (a fully dropped slice stays
    finite; upstream divides by zero there).
    """

    def __init__(self, dim: int):
        super().__init__()
        if dim % 12:
            raise ConfigError(
                f"embed_dim {dim} must be divisible by 12 (thirds, then D/2 and D/4 in the predictor)"
            )
        self.in_conv = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU())
        self.out_conv = nn.Sequential(
            nn.Linear(dim, dim // 2),
            nn.GELU(),
            nn.Linear(dim // 2, dim // 4),
            nn.GELU(),
            nn.Linear(dim // 4, 2),
            nn.LogSoftmax(dim=-1),
        )

    def forward(self, x: torch.Tensor, keep: torch.Tensor, slices: int) -> torch.Tensor:
        """x [B, N, D], keep [B, N] -> log-probabilities [B, N, 2]."""
        x = self.in_conv(x)
        b, n, d = x.shape
        c = d // 3
        w = keep.unsqueeze(-1).to(x.dtype)
        per = n // slices
        xs = x[..., c : 2 * c].reshape(b, slices, per, c)
        ws = w.reshape(b, slices, per, 1)
        spatial = (xs * ws).sum(2, keepdim=True) / ws.sum(2, keepdim=True).clamp_min(1e-6)
        spatial = spatial.expand(b, slices, per, c).reshape(b, n, c)
        glob = (x[..., 2 * c :] * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1e-6)
        return self.out_conv(torch.cat([x[..., :c], spatial, glob.expand(b, n, d - 2 * c)], dim=-1))


class AnonymizerOutput(NamedTuple):
    """Training forward: anonymized video, final keep [B, L*N] and the cumulative decisions per stage [B, L, N]."""

    video: torch.Tensor
    keep: torch.Tensor
    decisions: list[torch.Tensor]


class Anonymized(NamedTuple):
    """Test path: anonymized video, kept positions [B, L, k] (ascending per slice) and the keep mask [B, L*N]."""

    video: torch.Tensor
    index: torch.Tensor
    keep: torch.Tensor


class STPrivacy(nn.Module, PretrainedMixin):
    """Anonymizer: tubelet ViT, a ``TokenPredictor`` before each block in ``pruning_loc``, PAB = blocks[last loc:].

    Paper size: 16x112x112 input, tubelet (2, 16, 16) -> 8 slices x 49 tokens, ViT-S (384, 12 blocks, 6 heads),
    ``pruning_loc`` (3, 6, 9), keep ratio 0.7 per stage (cumulative: 34, 24, 16 of 49 per slice).
    ``residual`` (ours): output = input tubelet + head output, head zero-initialised (starts as the identity).
    """

    def __init__(
        self,
        img_size: int = 112,
        num_frames: int = 16,
        tubelet: Sequence[int] = (2, 16, 16),
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        pruning_loc: Sequence[int] = (3, 6, 9),
        keep_ratio: float = 0.7,
        residual: bool = False,
        in_chans: int = 3,
    ):
        super().__init__()
        tubelet = tuple(int(v) for v in tubelet)
        locs = tuple(int(v) for v in pruning_loc)
        if len(tubelet) != 3 or num_frames % tubelet[0] or img_size % tubelet[1] or tubelet[1] != tubelet[2]:
            raise ConfigError(f"tubelet {tubelet} does not tile {num_frames} frames of {img_size}x{img_size}")
        if not locs or list(locs) != sorted(set(locs)) or locs[0] < 1 or locs[-1] >= depth:
            raise ConfigError(
                f"pruning_loc {list(locs)} must be increasing block indices in [1, {depth - 1}]"
            )
        if not 0.0 < keep_ratio <= 1.0:
            raise ConfigError(f"keep_ratio {keep_ratio} must be in (0, 1]")
        self.tubelet = tubelet
        self.grid = (num_frames // tubelet[0], img_size // tubelet[1], img_size // tubelet[2])
        self.slices, self.per_slice = self.grid[0], self.grid[1] * self.grid[2]
        self.pruning_loc = locs
        self.keep_ratio = float(keep_ratio)
        self.residual = residual
        self.in_chans = in_chans
        self.patch_embed = TubeletEmbed(tubelet, embed_dim, in_chans)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.slices * self.per_slice, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.predictors = nn.ModuleList(TokenPredictor(embed_dim) for _ in locs)
        self.norm_recon = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head_recon = nn.Linear(embed_dim, tubelet[0] * tubelet[1] * tubelet[2] * in_chans)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        if self.residual:  # the block starts as the identity on kept tubelets
            nn.init.zeros_(self.head_recon.weight)

    @property
    def num_tokens(self) -> int:
        return self.slices * self.per_slice

    def _embed(self, video: torch.Tensor) -> torch.Tensor:
        if tuple(video.shape[1:]) != (self.in_chans, *(g * p for g, p in zip(self.grid, self.tubelet))):
            raise ValueError(
                f"video of shape {tuple(video.shape)} does not fit the anonymizer "
                f"(expects [B, {self.in_chans}, {self.grid[0] * self.tubelet[0]}, "
                f"{self.grid[1] * self.tubelet[1]}, {self.grid[2] * self.tubelet[2]}])"
            )
        return self.patch_embed(video) + self.pos_embed

    def _rows(self, x: torch.Tensor, video_rows: torch.Tensor | None) -> torch.Tensor:
        rows = self.head_recon(self.norm_recon(x))
        return rows + video_rows if self.residual else rows

    def _topk_slice(self, score: torch.Tensor, k: int) -> torch.Tensor:
        """score [B, L*n] -> slice-local indices [B, L, k] of the k best tokens of every slice."""
        return score.reshape(score.shape[0], self.slices, -1).topk(k, dim=-1).indices

    def forward(self, video: torch.Tensor, *, decide: str = "gumbel", tau: float = 1.0) -> AnonymizerOutput:
        """Training path: every token computed, dropped ones masked out of attention and zeroed in the output.

        ``decide="gumbel"``: hard Gumbel-softmax keep (straight-through) times the previous keep; ``"topk"``: the test
        path's per-slice top-k as a mask (deterministic; used to check masked against gathered computation).
        """
        x = self._embed(video)
        b, n = x.shape[:2]
        keep = torch.ones(b, n, device=x.device, dtype=x.dtype)
        decisions: list[torch.Tensor] = []
        for i, blk in enumerate(self.blocks):
            if i in self.pruning_loc:
                logp = self.predictors[len(decisions)](x, keep, self.slices)
                if decide == "gumbel":
                    hard = F.gumbel_softmax(logp, tau=tau, hard=True)[..., 0]
                elif decide == "topk":
                    score = logp[..., 0].masked_fill(keep == 0, float("-inf"))
                    k = tokens_per_slice(self.per_slice, self.keep_ratio, len(decisions) + 1)
                    idx = self._topk_slice(score, k)
                    hard = torch.zeros(b, self.slices, self.per_slice, device=x.device, dtype=x.dtype)
                    hard = hard.scatter(2, idx, 1.0).reshape(b, n)
                else:
                    raise ValueError(f"decide must be 'gumbel' or 'topk', got {decide!r}")
                keep = hard * keep
                decisions.append(keep.reshape(b, self.slices, self.per_slice))
            x = blk(x, keep if decisions else None)
        rows = self._rows(x, video_to_tubelets(video, self.tubelet) if self.residual else None)
        rows = rows * keep.unsqueeze(
            -1
        )  # dropped tubelets = 0 (the normalised mean colour), also in training
        return AnonymizerOutput(
            tubelets_to_video(rows, self.tubelet, self.grid, self.in_chans), keep, decisions
        )

    @torch.no_grad()
    def anonymize(
        self,
        video: torch.Tensor,
        keep_ratio: float | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Anonymized:
        """Test path: per-slice top-k (k = int(N * alpha^s)), tokens gathered, dropped tubelets zero.

        ``keep_ratio`` overrides the trained alpha (the deployment knob). With a ``generator`` the kept tokens are
        chosen at random instead of by score (the ``random_keep`` control: same counts, same anonymizer).
        """
        alpha = self.keep_ratio if keep_ratio is None else float(keep_ratio)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"keep_ratio {alpha} must be in (0, 1]")
        x = self._embed(video)
        b, n, d = x.shape
        pos = torch.arange(n, device=x.device).expand(b, n)
        for i, blk in enumerate(self.blocks):
            if i in self.pruning_loc:
                stage = self.pruning_loc.index(i) + 1
                if generator is None:
                    ones = torch.ones(b, x.shape[1], device=x.device, dtype=x.dtype)
                    score = self.predictors[stage - 1](x, ones, self.slices)[..., 0]
                else:
                    score = torch.rand(b, x.shape[1], generator=generator, device=x.device)
                idx = self._topk_slice(score, tokens_per_slice(self.per_slice, alpha, stage))
                per = x.shape[1] // self.slices
                x = x.reshape(b, self.slices, per, d).gather(2, idx.unsqueeze(-1).expand(-1, -1, -1, d))
                x = x.reshape(b, -1, d)
                pos = pos.reshape(b, self.slices, per).gather(2, idx).reshape(b, -1)
            x = blk(x)
        video_rows = video_to_tubelets(video, self.tubelet)
        kept_rows = video_rows.gather(1, pos.unsqueeze(-1).expand(-1, -1, video_rows.shape[-1]))
        rows = self._rows(x, kept_rows if self.residual else None)
        out = torch.zeros_like(video_rows).scatter(1, pos.unsqueeze(-1).expand_as(rows), rows)
        keep = torch.zeros(b, n, device=x.device, dtype=x.dtype).scatter(1, pos, 1.0)
        index = pos.reshape(b, self.slices, -1).sort(dim=-1).values
        return Anonymized(tubelets_to_video(out, self.tubelet, self.grid, self.in_chans), index, keep)

    def anonymization_parameters(self) -> list[nn.Parameter]:
        """The PAB: blocks from the last pruning location on, plus the recon norm and head."""
        last = self.pruning_loc[-1]
        params = [p for blk in self.blocks[last:] for p in blk.parameters()]
        return params + list(self.norm_recon.parameters()) + list(self.head_recon.parameters())


def freeze_for_anonymization(model: STPrivacy) -> STPrivacy:
    """Freeze embedding, positions, blocks before the last pruning location and every predictor (upstream's ``< 9``).

    Only the PAB (blocks[last loc:], norm_recon, head_recon) stays trainable: the adversarial phase cannot move the
    keep decisions.
    """
    trainable = {id(p) for p in model.anonymization_parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    return model
