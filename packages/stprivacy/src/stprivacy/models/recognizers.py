"""Recognizers run on (anonymized) videos: the tubelet ``VideoViT`` of the paper and two attacker families of ours.

``VideoViT`` is the VideoMAE-style recognizer of upstream ``action.py``: same tubelets as the anonymizer so the token
grid aligns; ``forward_aligned`` sees only kept tokens (equal counts per sample, the test path), ``forward_masked`` all
tokens with masked attention and a keep-weighted mean pool (variable Gumbel masks in training). The 5-sigmoid privacy
recognizer is the same network with ``num_outputs=5``. ``Conv3dNet``, ``FrameCNN`` and ``PooledMLP`` are further attacker families
for the evaluation ensemble (Wu et al.: unseen attacker families, worst case reported).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from visioncore.config import ConfigError
from visioncore.hub import PretrainedMixin

from .layers import Block, TubeletEmbed

__all__ = ["Conv3dNet", "FrameCNN", "PooledMLP", "TubeletBag", "VideoViT", "build_recognizer", "recognize"]


class VideoViT(nn.Module, PretrainedMixin):
    """Tubelet ViT classifier: embed -> blocks -> mean pool -> ``fc_norm`` -> ``head`` (no CLS token)."""

    def __init__(
        self,
        num_outputs: int = 51,
        img_size: int = 112,
        num_frames: int = 16,
        tubelet: Sequence[int] = (2, 16, 16),
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        init_scale: float = 1.0,
        in_chans: int = 3,
    ):
        super().__init__()
        tubelet = tuple(int(v) for v in tubelet)
        if num_frames % tubelet[0] or img_size % tubelet[1] or img_size % tubelet[2]:
            raise ConfigError(f"tubelet {tubelet} does not tile {num_frames} frames of {img_size}x{img_size}")
        self.tubelet = tubelet
        self.grid = (num_frames // tubelet[0], img_size // tubelet[1], img_size // tubelet[2])
        self.patch_embed = TubeletEmbed(tubelet, embed_dim, in_chans)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1] * self.grid[2], embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.fc_norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_outputs)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.head.weight.mul_(init_scale)

    def _tokens(self, video: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(video) + self.pos_embed

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self._tokens(video)
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.fc_norm(x.mean(1)))

    def forward_aligned(self, video: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Only the tokens at ``index`` ([B, K] or [B, L, k] positions in (t, h*w) order) enter the blocks."""
        x = self._tokens(video)
        index = index.reshape(index.shape[0], -1)
        x = x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.fc_norm(x.mean(1)))

    def forward_masked(self, video: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """All tokens, masked-softmax attention under ``keep`` [B, N], keep-weighted mean pool."""
        x = self._tokens(video)
        for blk in self.blocks:
            x = blk(x, keep)
        w = keep.unsqueeze(-1).to(x.dtype)
        pooled = (x * w).sum(1) / w.sum(1).clamp_min(1e-6)
        return self.head(self.fc_norm(pooled))


class Conv3dNet(nn.Module, PretrainedMixin):
    """A small 3-D CNN: three strided 3x3x3 convs (full temporal resolution first, so 2 px/frame motion stays
    visible), pooled to a 2x2 spatial grid so object position stays readable."""

    def __init__(self, num_outputs: int = 5, width: int = 12, in_chans: int = 3):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv3d(in_chans, w, 3, stride=(1, 2, 2), padding=1),
            nn.GELU(),
            nn.Conv3d(w, 2 * w, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv3d(2 * w, 4 * w, 3, stride=(1, 2, 2), padding=1),
            nn.GELU(),
            nn.AdaptiveAvgPool3d((1, 2, 2)),
        )
        self.head = nn.Linear(16 * w, num_outputs)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(video).flatten(1))


class FrameCNN(nn.Module, PretrainedMixin):
    """A 2-D CNN on the time-averaged frame (appearance only: colours, shapes, positions; no motion)."""

    def __init__(self, num_outputs: int = 5, width: int = 16, in_chans: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.head = nn.Linear(8 * width, num_outputs)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(video.mean(2)).flatten(1))


class PooledMLP(nn.Module, PretrainedMixin):
    """An MLP on average-pooled pixels (``pool`` = (t, h, w) cells): colour statistics and coarse layout."""

    def __init__(
        self, num_outputs: int = 5, pool: Sequence[int] = (2, 4, 4), hidden: int = 128, in_chans: int = 3
    ):
        super().__init__()
        pool = tuple(int(v) for v in pool)
        self.pool = nn.AdaptiveAvgPool3d(pool)
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_chans * pool[0] * pool[1] * pool[2], hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, num_outputs),
        )

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.pool(video))


class TubeletBag(nn.Module, PretrainedMixin):
    """Ours: a bag of kept tubelets, no positions: per-tubelet 3-D conv, keep-weighted mean pool, MLP head.

    Used as the in-training action recognizer of the synthetic experiment: without positions it cannot read the
    action from the layout of dropped tubelets, only from motion inside kept ones, so its gradient pushes the keep
    decisions onto the actor.
    """

    def __init__(
        self, num_outputs: int = 4, tubelet: Sequence[int] = (2, 16, 16), width: int = 16, in_chans: int = 3
    ):
        super().__init__()
        self.tubelet = tuple(int(v) for v in tubelet)
        self.in_chans = in_chans
        self.encoder = nn.Sequential(
            nn.Conv3d(in_chans, width, (self.tubelet[0], 3, 3), padding=(0, 1, 1)),
            nn.GELU(),
            nn.Conv3d(width, width, (1, 3, 3), padding=(0, 1, 1)),
            nn.GELU(),
        )
        self.head = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, num_outputs))

    def forward_masked(self, video: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = video.shape
        pt, ph, pw = self.tubelet
        x = video.reshape(b, c, t // pt, pt, h // ph, ph, w // pw, pw).permute(0, 2, 4, 6, 1, 3, 5, 7)
        feats = (
            self.encoder(x.reshape(-1, c, pt, ph, pw))
            .amax(dim=(2, 3, 4))
            .reshape(b, -1, self.encoder[0].out_channels)
        )
        wts = keep.unsqueeze(-1).to(feats.dtype)
        return self.head((feats * wts).sum(1) / wts.sum(1).clamp_min(1e-6))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = video.shape
        n = (t // self.tubelet[0]) * (h // self.tubelet[1]) * (w // self.tubelet[2])
        return self.forward_masked(video, torch.ones(b, n, device=video.device))


def recognize(model: nn.Module, video: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Logits of any recognizer; token models (``VideoViT``, ``TubeletBag``) use ``keep`` as a mask."""
    if keep is not None and isinstance(model, VideoViT | TubeletBag):
        return model.forward_masked(video, keep)
    return model(video)


def build_recognizer(
    family: str,
    num_outputs: int,
    *,
    video_shape: Sequence[int],
    tubelet: Sequence[int],
    vit: dict | None = None,
) -> nn.Module:
    """One recognizer of ``family`` (``vit``, ``cnn3d``, ``cnn2d``, ``mlp``, ``bag``) for videos of ``video_shape`` (T, H)."""
    frames, size = int(video_shape[0]), int(video_shape[1])
    if family == "vit":
        return VideoViT(num_outputs, img_size=size, num_frames=frames, tubelet=tubelet, **(vit or {}))
    if family == "cnn3d":
        return Conv3dNet(num_outputs)
    if family == "mlp":
        return PooledMLP(num_outputs)
    if family == "cnn2d":
        return FrameCNN(num_outputs)
    if family == "bag":
        return TubeletBag(num_outputs, tubelet=tubelet)
    raise ConfigError(f"unknown recognizer family {family!r} (known: vit, cnn3d, cnn2d, mlp, bag)")
