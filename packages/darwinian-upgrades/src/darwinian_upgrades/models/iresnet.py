"""Our iResNet (the insightface face backbone family) for the MS1M → IJB-C upgrades: iResNet-18 (old) → 50 (new).

Stem conv3×3(64) + BN + PReLU, then four stages (64, 128, 256, 512 channels, each starting with stride 2) of
"improved" basic blocks BN → conv3×3 → BN → PReLU → conv3×3 → BN (+ shortcut), and a final BN. The map
[B, 512, 7, 7] for 112×112 faces goes to GeM + ``fc_emb`` like every backbone here (insightface flattens it into
an FC layer instead).
"""

from __future__ import annotations

import torch
from torch import nn


class IBasicBlock(nn.Module):
    def __init__(self, in_chans: int, chans: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_chans, eps=1e-5),
            nn.Conv2d(in_chans, chans, 3, padding=1, bias=False),
            nn.BatchNorm2d(chans, eps=1e-5),
            nn.PReLU(chans),
            nn.Conv2d(chans, chans, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(chans, eps=1e-5),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and in_chans == chans
            else nn.Sequential(
                nn.Conv2d(in_chans, chans, 1, stride=stride, bias=False), nn.BatchNorm2d(chans)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class IResNet(nn.Module):
    LAYERS = {18: (2, 2, 2, 2), 50: (3, 4, 14, 3)}

    def __init__(self, depth: int = 50, width: float = 1.0):
        super().__init__()
        if depth not in self.LAYERS:
            raise ValueError(f"iresnet depth must be one of {sorted(self.LAYERS)}, got {depth}")
        chans = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        self.stem = nn.Sequential(
            nn.Conv2d(3, chans[0], 3, padding=1, bias=False), nn.BatchNorm2d(chans[0]), nn.PReLU(chans[0])
        )
        blocks: list[nn.Module] = []
        prev = chans[0]
        for c, n in zip(chans, self.LAYERS[depth]):
            for i in range(n):
                blocks.append(IBasicBlock(prev, c, 2 if i == 0 else 1))
                prev = c
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.BatchNorm2d(prev)
        self.out_channels = prev

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.stem(images)))
