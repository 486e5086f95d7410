"""PV3D generator: EG3D tri-plane generator whose low-resolution blocks carry motion layers (PV3D Sec. 3.2).

Frame i of video v: planes = Synthesis(w_v; z_motion_v * t_i), rendered along camera c_i, super-resolved. A
``MotionLayer`` sits in every block of resolution <= ``motion_max_res``: x <- x + ModConv(x; MLP(z_motion * t))
(after conv1 in block 4, between conv0 and conv1 elsewhere); at t = 0 the branch sees 0, a constant style.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pv3d import ops
from pv3d.cameras import split_camera
from pv3d.config import GeneratorConfig
from pv3d.models.layers import FullyConnectedLayer, MappingNetwork, SynthesisLayer, ToRGBLayer
from pv3d.models.rendering import ray_bundle, render_rays, sample_triplane
from visioncore.hub import PretrainedMixin

__all__ = [
    "MotionLayer",
    "OSGDecoder",
    "SuperResolution",
    "SynthesisBlock",
    "SynthesisNetwork",
    "TriPlaneGenerator",
]


class MotionLayer(nn.Module):
    """x + SynthesisLayer(x; m), m = FC(FC_lrelu(FC_lrelu(z_motion * t))) (PV3D's motion layer, Eq. 2)."""

    def __init__(self, z_motion_dim: int, motion_dim: int, channels: int, resolution: int):
        super().__init__()
        self.affine = FullyConnectedLayer(z_motion_dim, motion_dim, activation="lrelu")
        self.motion_mlp = nn.Sequential(
            FullyConnectedLayer(motion_dim, motion_dim, activation="lrelu"),
            FullyConnectedLayer(motion_dim, motion_dim),
        )
        self.conv = SynthesisLayer(channels, channels, w_dim=motion_dim, resolution=resolution)

    def forward(self, x: torch.Tensor, motion_in: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        """``motion_in`` [N, z_motion_dim] is z_motion * t (multiplied first, never concatenated or embedded)."""
        m = self.motion_mlp(self.affine(motion_in))
        return x + self.conv(x, m, noise_mode=noise_mode)


class SynthesisBlock(nn.Module):
    """StyleGAN2 'skip' block: [2x-up conv0] -> [motion] -> conv1 -> ToRGB added to the upsampled skip image."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        conv_clamp: float | None,
        motion: tuple[int, int] | None = None,
    ):
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp
            )
        if motion is not None:
            self.motion = MotionLayer(motion[0], motion[1], out_channels, resolution)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.register_buffer("resample_filter", ops.setup_filter([1, 3, 3, 1]))
        self.num_conv = 1 if in_channels == 0 else 2

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        motion_in: torch.Tensor | None = None,
        noise_mode: str = "random",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w = ws.unbind(dim=1)
        has_motion = hasattr(self, "motion") and motion_in is not None
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, w[0], noise_mode=noise_mode)
            if has_motion:
                x = self.motion(x, motion_in, noise_mode)
        else:
            x = self.conv0(x, w[0], noise_mode=noise_mode)
            if has_motion:
                x = self.motion(x, motion_in, noise_mode)
            x = self.conv1(x, w[1], noise_mode=noise_mode)
        y = self.torgb(x, w[self.num_conv])
        img = y if img is None else ops.upsample2d(img, self.resample_filter) + y
        return x, img


def _channels(res: int, base: int, cmax: int) -> int:
    return min(base // res, cmax)


class SynthesisNetwork(nn.Module):
    """Blocks 4 ... ``resolution`` (channels min(base / res, max)), motion layers at res <= ``motion_max_res``."""

    def __init__(
        self,
        w_dim: int,
        resolution: int,
        img_channels: int,
        channel_base: int,
        channel_max: int,
        conv_clamp: float | None,
        z_motion_dim: int,
        motion_dim: int,
        motion_max_res: int,
    ):
        super().__init__()
        self.resolutions = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
        self.num_ws = 0
        for res in self.resolutions:
            in_ch = _channels(res // 2, channel_base, channel_max) if res > 4 else 0
            motion = (z_motion_dim, motion_dim) if res <= motion_max_res else None
            block = SynthesisBlock(
                in_ch, _channels(res, channel_base, channel_max), w_dim, res, img_channels, conv_clamp, motion
            )
            setattr(self, f"b{res}", block)
            self.num_ws += block.num_conv
        self.num_ws += 1  # the last block's ToRGB

    def forward(
        self, ws: torch.Tensor, motion_in: torch.Tensor | None, noise_mode: str = "random"
    ) -> torch.Tensor:
        x = img = None
        idx = 0
        for res in self.resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, idx : idx + block.num_conv + 1], motion_in, noise_mode)
            idx += block.num_conv
        return img


class OSGDecoder(nn.Module):
    """Mean of the three plane features -> FC -> softplus -> FC: sigma (raw) and features sigmoid * 1.002 - 0.001."""

    def __init__(self, in_features: int, hidden: int = 64, out_features: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            FullyConnectedLayer(in_features, hidden),
            nn.Softplus(),
            FullyConnectedLayer(hidden, 1 + out_features),
        )

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, 3, N, C] plane samples -> (rgb features [B, N, out], sigma [B, N, 1])."""
        x = self.net(features.mean(dim=1))
        return torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001, x[..., :1]


class SuperResolution(nn.Module):
    """EG3D SuperresolutionHybrid: resize features and raw RGB to ``in_resolution`` (antialiased bilinear), then
    2x synthesis blocks up to ``out_resolution``, all modulated by the last w; noise off."""

    def __init__(
        self, channels: int, w_dim: int, in_resolution: int, out_resolution: int, block_channels: list[int]
    ):
        super().__init__()
        self.in_resolution = in_resolution
        n = int(math.log2(out_resolution // in_resolution))
        if len(block_channels) != n or in_resolution * 2**n != out_resolution:
            raise ValueError(
                f"super-resolution {in_resolution}->{out_resolution} needs {n} block channel counts"
            )
        prev = channels
        for i, ch in enumerate(block_channels):
            block = SynthesisBlock(prev, ch, w_dim, in_resolution * 2 ** (i + 1), 3, conv_clamp=256)
            setattr(self, f"block{i}", block)
            prev = ch
        self.num_blocks = n

    def forward(self, rgb: torch.Tensor, x: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        ws = ws[:, -1:].repeat(1, 3, 1)
        x = ops.filtered_resize(x, self.in_resolution)
        rgb = ops.filtered_resize(rgb, self.in_resolution)
        for i in range(self.num_blocks):
            x, rgb = getattr(self, f"block{i}")(x, rgb, ws, noise_mode="none")
        return rgb


class TriPlaneGenerator(nn.Module, PretrainedMixin):
    """PV3D generator. ``forward(z, z_motion, t [B, T], c)`` -> dict of [B, T, ...] images, raw images, depth, opacity.

    ``config.renderer = "image2d"`` is the 2-D baseline: the same synthesis network (with motion layers) emits the
    feature image directly; the camera enters only through the mapping network (and the discriminators).
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        if isinstance(config, dict):  # from config.json
            config = GeneratorConfig(**config)
        self.config = cfg = config
        feat = cfg.plane_channels
        img_channels = 3 * feat if cfg.renderer == "triplane" else feat
        self.synthesis = SynthesisNetwork(
            cfg.w_dim,
            cfg.plane_resolution,
            img_channels,
            cfg.channel_base,
            cfg.channel_max,
            cfg.conv_clamp,
            cfg.z_motion_dim,
            cfg.motion_dim,
            cfg.motion_max_res if cfg.motion_layers else 0,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            cfg.z_dim, cfg.c_dim, cfg.w_dim, self.num_ws, num_layers=cfg.mapping_layers
        )
        self.decoder = OSGDecoder(feat, cfg.decoder_hidden, feat)
        self.to_img_raw = ToRGBLayer(feat, 3, cfg.w_dim, conv_clamp=256)
        self.superresolution = SuperResolution(
            feat, cfg.w_dim, cfg.sr_in_resolution, cfg.image_resolution, list(cfg.sr_channels)
        )

    def map(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1.0, update_emas: bool = False):
        """ws [N, num_ws, w_dim] from z [N, z_dim] and the conditioning camera c [N, 25] (times c_scale)."""
        return self.mapping(
            z, c * self.config.c_scale, truncation_psi=truncation_psi, update_emas=update_emas
        )

    def synthesize(self, ws: torch.Tensor, motion_in: torch.Tensor | None, noise_mode: str = "random"):
        """Tri-planes [N, 3, C, P, P] (or the image2d feature image [N, C, P, P]); motion_in = z_motion * t."""
        out = self.synthesis(ws, motion_in if self.config.motion_layers else None, noise_mode)
        if self.config.renderer == "triplane":
            return out.reshape(out.shape[0], 3, self.config.plane_channels, out.shape[-2], out.shape[-1])
        return out

    def density(self, planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Raw sigma [N, M, 1] at ``points`` [N, M, 3] (for the density regulariser and geometry export)."""
        _, sigma = self.decoder(sample_triplane(planes, points, self.config.box_warp))
        return sigma

    def render(
        self,
        planes: torch.Tensor,
        ws: torch.Tensor,
        c: torch.Tensor,
        generator: torch.Generator | None = None,
        jitter: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Render [N, ...] frames of ``planes`` seen from cameras ``c`` [N, 25]; SR modulated by ws."""
        cfg, n, r = self.config, planes.shape[0], self.config.render_resolution
        split_camera(c)  # validates the 25-d layout
        if cfg.renderer == "triplane":
            origins, dirs = ray_bundle(c, r)
            feat, depth, opacity = render_rays(
                planes,
                self.decoder,
                origins,
                dirs,
                n_coarse=cfg.n_coarse,
                n_fine=cfg.n_fine,
                near=cfg.ray_start,
                far=cfg.ray_end,
                box_warp=cfg.box_warp,
                generator=generator,
                jitter=jitter,
            )
            feature_image = feat.permute(0, 2, 1).reshape(n, -1, r, r)
            depth = depth.permute(0, 2, 1).reshape(n, 1, r, r)
            opacity = opacity.permute(0, 2, 1).reshape(n, 1, r, r)
        else:
            feature_image = ops.filtered_resize(planes, r)
            depth = torch.zeros(n, 1, r, r, device=planes.device)
            opacity = torch.ones(n, 1, r, r, device=planes.device)
        raw = self.to_img_raw(feature_image, ws[:, 0])
        image = self.superresolution(raw, feature_image, ws)
        return {"image": image, "image_raw": raw, "image_depth": depth, "weights_sum": opacity}

    def forward(
        self,
        z: torch.Tensor,
        z_motion: torch.Tensor,
        t: torch.Tensor,
        c: torch.Tensor,
        c_render: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        noise_mode: str = "random",
        update_emas: bool = False,
        generator: torch.Generator | None = None,
        jitter: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """z [B, z_dim], z_motion [B, z_motion_dim], t [B, T], c [B, 25] (or per-frame [B, T, 25]) for the mapping
        network; c_render [B, T, 25] (default: c) for rendering. Returns ``image``, ``image_raw``, ``image_depth``,
        ``weights_sum``, each [B, T, ...]."""
        b, nt = t.shape
        if c.dim() == 3:  # per-frame conditioning (training)
            ws = self.map(z.repeat_interleave(nt, 0), c.reshape(b * nt, -1), truncation_psi, update_emas)
        else:
            ws = self.map(z, c, truncation_psi, update_emas).repeat_interleave(nt, 0)
        if c_render is None:
            c_render = c if c.dim() == 3 else c[:, None].expand(b, nt, c.shape[-1])
        motion_in = z_motion.repeat_interleave(nt, 0) * t.reshape(b * nt, 1)
        planes = self.synthesize(ws, motion_in, noise_mode)
        out = self.render(planes, ws, c_render.reshape(b * nt, -1), generator, jitter)
        return {k: v.reshape(b, nt, *v.shape[1:]) for k, v in out.items()}
