"""PV3D discriminators (Sec. 3.3): EG3D's dual image D and the new video D, both StyleGAN2 ResNet Ds with camera
projection (Miyato & Koyama 2018): score = <phi(x), cmap(c)> / sqrt(cmap_dim)."""

from __future__ import annotations

import math

import torch
from torch import nn

from pv3d import ops
from pv3d.config import DiscriminatorConfig
from pv3d.models.layers import Conv2dLayer, FullyConnectedLayer, MappingNetwork
from visioncore.hub import PretrainedMixin

__all__ = ["DiscriminatorBlock", "ImageDiscriminator", "VideoDiscriminator", "video_input"]


class DiscriminatorBlock(nn.Module):
    """ResNet block: [fromrgb] -> conv0 -> conv1 (2x down), plus a 1x1 2x-down skip; both halves scaled sqrt(1/2)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int, conv_clamp):
        super().__init__()
        self.in_channels = in_channels
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(
                img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp
            )
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(
            tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp
        )
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)
        self.register_buffer(
            "resample_filter", ops.setup_filter([1, 3, 3, 1])
        )  # unused; EG3D checkpoints hold it

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 0:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class MinibatchStd(nn.Module):
    """Append the mean std over groups of ``group_size`` samples as one extra channel."""

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = math.gcd(min(self.group_size, n), n)  # groups must tile the batch
        y = x.reshape(g, -1, 1, c, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4]).reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class Epilogue(nn.Module):
    """4x4: minibatch std -> conv -> fc -> out (cmap_dim) -> projection onto the camera embedding."""

    def __init__(self, channels: int, cmap_dim: int, mbstd_group: int, conv_clamp):
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStd(mbstd_group)
        self.conv = Conv2dLayer(channels + 1, channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(channels * 16, channels, activation="lrelu")
        self.out = FullyConnectedLayer(channels, cmap_dim)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor) -> torch.Tensor:
        x = self.out(self.fc(self.conv(self.mbstd(x)).flatten(1)))
        return (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)


class _ResNetD(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig, img_channels: int, c_dim: int):
        super().__init__()
        self.resolution = cfg.resolution
        self.resolutions = [2**i for i in range(int(math.log2(cfg.resolution)), 2, -1)]
        ch = {r: min(cfg.channel_base // r, cfg.channel_max) for r in [*self.resolutions, 4]}
        for res in self.resolutions:
            in_ch = ch[res] if res < cfg.resolution else 0
            setattr(
                self,
                f"b{res}",
                DiscriminatorBlock(in_ch, ch[res], ch[res // 2], img_channels, cfg.conv_clamp),
            )
        self.mapping = MappingNetwork(
            0, c_dim, cfg.cmap_dim, num_ws=0, num_layers=cfg.mapping_layers, w_avg_beta=None
        )
        self.b4 = Epilogue(ch[4], cfg.cmap_dim, cfg.mbstd_group, cfg.conv_clamp)

    def score(self, img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if img.shape[-1] != self.resolution:
            raise ValueError(
                f"discriminator expects {self.resolution}x{self.resolution} input, got {tuple(img.shape)}"
            )
        x = None
        for res in self.resolutions:
            x = getattr(self, f"b{res}")(x, img)
        return self.b4(x, self.mapping(None, c))


class ImageDiscriminator(_ResNetD, PretrainedMixin):
    """EG3D dual D: concat(image, filtered_resize(image_raw)) = 6 channels, projection on the 25-d camera."""

    def __init__(self, config: DiscriminatorConfig):
        if isinstance(config, dict):  # from config.json
            config = DiscriminatorConfig(**config)
        super().__init__(config, img_channels=6, c_dim=25)
        self.config = config

    def forward(self, image: torch.Tensor, image_raw: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] image, [N, 3, h, w] raw image, c [N, 25] -> logits [N, 1]."""
        return self.score(torch.cat([image, ops.filtered_resize(image_raw, image.shape[-1])], dim=1), c)


def video_input(frames: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Video-D input from two frames [B, 2, 3, H, W], their times [B, 2] and cameras [B, 2, 25]:
    (concat(frame_a, frame_b, (t_b - t_a) * 1_{HxW}) [B, 7, H, W], concat(c_a, c_b) [B, 50])."""
    if frames.shape[1] != 2 or t.shape[1] != 2 or c.shape[1] != 2:
        raise ValueError("the video discriminator takes exactly two frames per video")
    b, _, _, h, w = frames.shape
    dt = (t[:, 1] - t[:, 0]).reshape(b, 1, 1, 1).expand(b, 1, h, w).to(frames.dtype)
    return torch.cat([frames[:, 0], frames[:, 1], dt], dim=1), c.reshape(b, 50)


class VideoDiscriminator(_ResNetD, PretrainedMixin):
    """PV3D video D: ResNet D on [frame_a, frame_b, dt plane] (7 channels), projection on the 50-d camera pair."""

    def __init__(self, config: DiscriminatorConfig):
        if isinstance(config, dict):  # from config.json
            config = DiscriminatorConfig(**config)
        super().__init__(config, img_channels=7, c_dim=50)
        self.config = config

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x [B, 7, H, W] from ``video_input``, c [B, 50] -> logits [B, 1]."""
        return self.score(x, c)
