"""Conv-only VQGAN encoder/decoder (the paper's 54.5M "baseline VQ", Table 1) and the phase-2 enhanced decoder.

Module names follow taming-transformers' ``Encoder``/``Decoder`` (``down.{i}.block.{j}``, ``mid.block_1``, ...) so
that a taming VQGAN checkpoint maps onto ours with a short key map (``taming_key_map``); the attention blocks of
taming's f16 model are dropped (the paper's baseline is convolution-only).

``EnhancedDecoder`` (Sec. 4, Fig. 7 phase 2) adds two interleaved attention blocks per decoder level in the style of
HiT: a regional (window) block and a dilated (strided-grid) block. Their output projections start at zero, so the
enhanced decoder initially computes exactly what the phase-1 decoder it was loaded from computes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seq_gan.models.quantizer import QuantizeOutput, VectorQuantizer
from visioncore.hub import PretrainedMixin


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.nin_shortcut(x) + h


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # taming's asymmetric padding


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    """x [B, 3, H, W] -> z [B, z_channels, H/f, W/f] with f = 2^(len(ch_mult) - 1)."""

    def __init__(
        self,
        in_channels: int,
        ch: int,
        ch_mult: Sequence[int],
        num_res_blocks: int,
        z_channels: int,
        groups: int,
    ):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = ch
        for level, mult in enumerate(ch_mult):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            for _ in range(num_res_blocks):
                stage.block.append(ResnetBlock(cin, ch * mult, groups))
                cin = ch * mult
            if level != len(ch_mult) - 1:
                stage.downsample = Downsample(cin)
            self.down.append(stage)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.block_2 = ResnetBlock(cin, cin, groups), ResnetBlock(cin, cin, groups)
        self.norm_out, self.conv_out = _norm(cin, groups), nn.Conv2d(cin, z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            for block in stage.block:
                h = block(h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = self.mid.block_2(self.mid.block_1(h))
        return self.conv_out(F.silu(self.norm_out(h)))


class GroupedAttention(nn.Module):
    """Self-attention inside groups of ``window x window`` tokens (HiT-style; Zhao et al. 2021).

    ``dilated=False``: each group is a contiguous window (regional attention). ``dilated=True``: each group takes
    every (H / window)-th token, a grid spread over the whole map (dilated attention). The window shrinks to the
    largest divisor of the map side when the map is smaller or not divisible.
    """

    def __init__(self, channels: int, window: int, dilated: bool, groups: int, head_dim: int = 64):
        super().__init__()
        self.window, self.dilated = window, dilated
        self.heads = max(1, channels // head_dim)
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj_out.weight)  # starts as the identity: phase 2 begins at the phase-1 decoder
        nn.init.zeros_(self.proj_out.bias)

    @staticmethod
    def _side(size: int, window: int) -> int:
        return max(d for d in range(1, min(size, window) + 1) if size % d == 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        wh, ww = self._side(h, self.window), self._side(w, self.window)
        gh, gw = h // wh, w // ww
        qkv = self.qkv(self.norm(x))
        if self.dilated:  # token (i, j) of group (a, b) sits at (i * gh + a, j * gw + b)
            t = qkv.reshape(b, 3, self.heads, c // self.heads, wh, gh, ww, gw).permute(1, 0, 5, 7, 2, 4, 6, 3)
        else:  # token (i, j) of group (a, b) sits at (a * wh + i, b * ww + j)
            t = qkv.reshape(b, 3, self.heads, c // self.heads, gh, wh, gw, ww).permute(1, 0, 4, 6, 2, 5, 7, 3)
        t = t.reshape(3, b * gh * gw, self.heads, wh * ww, c // self.heads)
        out = F.scaled_dot_product_attention(t[0], t[1], t[2])  # [b*g, heads, tokens, dh]
        out = out.view(b, gh, gw, self.heads, wh, ww, c // self.heads)
        if self.dilated:
            out = out.permute(0, 3, 6, 4, 1, 5, 2)  # b, heads, dh, wh, gh, ww, gw
        else:
            out = out.permute(0, 3, 6, 1, 4, 2, 5)  # b, heads, dh, gh, wh, gw, ww
        return x + self.proj_out(out.reshape(b, c, h, w))


class Decoder(nn.Module):
    """z [B, z_channels, h, w] -> x [B, 3, h f, w f]; ``up[i]`` is level i (taming's order; up[-1] runs first)."""

    def __init__(
        self,
        out_channels: int,
        ch: int,
        ch_mult: Sequence[int],
        num_res_blocks: int,
        z_channels: int,
        groups: int,
        hit_window: int = 0,
    ):
        super().__init__()
        cin = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, cin, 3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.block_2 = ResnetBlock(cin, cin, groups), ResnetBlock(cin, cin, groups)
        up: list[nn.Module] = []
        for level in reversed(range(len(ch_mult))):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                stage.block.append(ResnetBlock(cin, ch * ch_mult[level], groups))
                cin = ch * ch_mult[level]
            if hit_window:
                stage.hit = nn.ModuleList(
                    [
                        GroupedAttention(cin, hit_window, False, groups),
                        GroupedAttention(cin, hit_window, True, groups),
                    ]
                )
            if level != 0:
                stage.upsample = Upsample(cin)
            up.insert(0, stage)
        self.up = nn.ModuleList(up)
        self.norm_out, self.conv_out = _norm(cin, groups), nn.Conv2d(cin, out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_2(self.mid.block_1(self.conv_in(z)))
        for stage in reversed(self.up):
            for block in stage.block:
                h = block(h)
            for attn in getattr(stage, "hit", ()):
                h = attn(h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class EnhancedDecoder(Decoder):
    """Phase-2 decoder: the conv decoder plus a window and a dilated attention block per level (HiT-style)."""

    def __init__(self, *args, hit_window: int = 8, **kwargs):
        if hit_window < 1:
            raise ValueError(f"EnhancedDecoder needs hit_window >= 1, got {hit_window}")
        super().__init__(*args, hit_window=hit_window, **kwargs)


class VQTokenizer(nn.Module, PretrainedMixin):
    """Encoder -> quant_conv -> VectorQuantizer -> post_quant_conv -> decoder (conv, or enhanced for phase 2)."""

    def __init__(
        self,
        resolution: int = 256,
        in_channels: int = 3,
        ch: int = 128,
        ch_mult: list[int] | tuple[int, ...] = (1, 1, 2, 2, 4),
        num_res_blocks: int = 2,
        z_channels: int = 256,
        num_codes: int = 1024,
        code_dim: int = 256,
        beta: float = 0.25,
        norm_groups: int = 32,
        decoder: str = "conv",
        hit_window: int = 8,
        token_space_frozen: bool = False,
    ):
        super().__init__()
        if decoder not in ("conv", "enhanced"):
            raise ValueError(f"decoder must be 'conv' or 'enhanced', got {decoder!r}")
        self.resolution, self.factor = resolution, 2 ** (len(ch_mult) - 1)
        if resolution % self.factor:
            raise ValueError(
                f"resolution {resolution} is not divisible by the downsampling factor {self.factor}"
            )
        self.decoder_kind, self.hit_window = decoder, hit_window
        self.encoder = Encoder(in_channels, ch, ch_mult, num_res_blocks, z_channels, norm_groups)
        self.quant_conv = nn.Conv2d(z_channels, code_dim, 1)
        self.quantizer = VectorQuantizer(num_codes, code_dim, beta)
        self.post_quant_conv = nn.Conv2d(code_dim, z_channels, 1)
        dec_args = (in_channels, ch, ch_mult, num_res_blocks, z_channels, norm_groups)
        self.decoder = (
            EnhancedDecoder(*dec_args, hit_window=hit_window) if decoder == "enhanced" else Decoder(*dec_args)
        )
        if token_space_frozen:
            self.freeze_token_space()

    @property
    def grid(self) -> int:
        return self.resolution // self.factor

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    def token_space_modules(self) -> list[nn.Module]:
        return [self.encoder, self.quant_conv, self.quantizer]

    def freeze_token_space(self) -> VQTokenizer:
        """Freeze encoder, quant_conv and codebook (phase 2): the token ids of every image stay fixed."""
        self._hub_mixin_config["token_space_frozen"] = True
        for module in (self.encoder, self.quant_conv):
            module.requires_grad_(False).eval()
        self.quantizer.freeze()
        self._token_space_frozen = True
        return self

    def train(self, mode: bool = True) -> VQTokenizer:
        super().train(mode)
        if getattr(self, "_token_space_frozen", False):
            self.encoder.eval()
            self.quant_conv.eval()
        return self

    def encode_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-quantisation features [B, code_dim, h, w]."""
        return self.quant_conv(self.encoder(x))

    def encode(self, x: torch.Tensor) -> QuantizeOutput:
        return self.quantizer(self.encode_features(x))

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z_q))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Token grids [B, h, w] -> images [B, 3, H, W] (unclamped, nominally [-1, 1])."""
        return self.decode(self.quantizer.lookup(indices.long()))

    def forward(self, x: torch.Tensor, return_features: bool = False):  # noqa: ANN201
        """x -> (reconstruction, QuantizeOutput), plus the pre-quantisation features with ``return_features``."""
        z = self.encode_features(x)
        q = self.quantizer(z)
        x_hat = self.decode(q.z_q)
        return (x_hat, q, z) if return_features else (x_hat, q)

    @property
    def last_layer(self) -> torch.Tensor:
        """The decoder's last weight (for the adaptive GAN weight)."""
        return self.decoder.conv_out.weight

    def enhanced(self, hit_window: int | None = None) -> VQTokenizer:
        """A phase-2 copy: enhanced decoder with every phase-1 weight loaded, token space frozen."""
        cfg = {**self._hub_mixin_config, "decoder": "enhanced", "token_space_frozen": False}
        if hit_window is not None:
            cfg["hit_window"] = hit_window
        model = VQTokenizer(**cfg)
        report = model.load_state_dict(self.state_dict(), strict=False)
        assert not report.unexpected_keys and all(".hit." in k for k in report.missing_keys), report
        return model.freeze_token_space()

    def token_space_hash(self) -> str:
        """SHA-256 (16 hex) of the weights that decide the tokens: encoder, quant_conv, codebook.

        Phase 2 keeps it, so a token cache stays valid for the phase-2 tokenizer; a retrained tokenizer changes it.
        """
        digest = hashlib.sha256()
        for prefix in ("encoder.", "quant_conv.", "quantizer."):
            for key, value in sorted(self.state_dict().items()):
                if key.startswith(prefix):
                    digest.update(key.encode())
                    digest.update(value.detach().cpu().float().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def taming_key_map(key: str) -> str | None:
    """Key map for ``visioncore.backbones.load_weights``: a taming ``VQModel`` checkpoint -> ``VQTokenizer``.

    Renames the codebook, drops taming's attention blocks (our baseline is conv-only), its loss modules (LPIPS,
    discriminator) and its EMA/statistics buffers.
    """
    if key.startswith("loss.") or ".attn" in key:
        return None
    if key == "quantize.embedding.weight":
        return "quantizer.codebook.weight"
    if key.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")):
        return key
    return None
