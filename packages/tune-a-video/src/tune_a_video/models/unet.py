"""The inflated UNet of Tune-A-Video (paper Sec. 4.1): Stable Diffusion's 2-D UNet turned pseudo-3-D.

Parameter names equal those of diffusers' ``UNet2DConditionModel`` plus ``norm_temp``/``attn_temp`` in every
transformer block, so SD v1.x/v2.x weights load by name and the official Tune-A-Video checkpoints (config class
``UNet3DConditionModel``, ``*3D`` block names) load too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from safetensors.torch import load_file
from torch import nn

from .attention import Transformer3DModel
from .resnet import Downsample3D, InflatedConv3d, ResnetBlock3D, Upsample3D

CROSS_ATTN_DOWN, DOWN = "CrossAttnDownBlock3D", "DownBlock3D"
CROSS_ATTN_UP, UP = "CrossAttnUpBlock3D", "UpBlock3D"
MID = "UNetMidBlock3DCrossAttn"
TRAINABLE_SUFFIXES = ("attn1.to_q", "attn2.to_q", "attn_temp")


class CheckpointLayoutError(ValueError):
    """A pretrained folder or checkpoint that cannot be loaded as a (2-D or inflated) UNet."""


@dataclass
class InflatedUNetOutput(BaseOutput):
    sample: torch.Tensor


class _Block(nn.Module):
    """Shared gradient-checkpointing plumbing for the down/mid/up blocks (diffusers >= 0.30 API)."""

    gradient_checkpointing = False

    def _run(self, module: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(module, *args)
        return module(*args)


class DownBlock3D(_Block):
    def __init__(
        self, in_channels: int, out_channels: int, temb_channels: int, num_layers: int, add_downsample: bool,
        cross_attention: bool, heads: int, cross_attention_dim: int, groups: int, eps: float,
        use_linear_projection: bool, upcast_attention: bool, downsample_padding: int = 1,
    ) -> None:  # fmt: skip
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock3D(in_channels if i == 0 else out_channels, out_channels, temb_channels, groups, eps)
            for i in range(num_layers)
        )
        self.attentions = nn.ModuleList(
            Transformer3DModel(
                out_channels, heads, cross_attention_dim, 1, groups, use_linear_projection, upcast_attention
            )
            for _ in range(num_layers if cross_attention else 0)
        )
        self.downsamplers = nn.ModuleList(
            [Downsample3D(out_channels, downsample_padding)] if add_downsample else []
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor):
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = self._run(resnet, x, temb)
            if self.attentions:
                x = self._run(self.attentions[i], x, context)
            skips.append(x)
        for down in self.downsamplers:
            x = down(x)
            skips.append(x)
        return x, skips


class MidBlock3D(_Block):
    def __init__(
        self, channels: int, temb_channels: int, heads: int, cross_attention_dim: int, groups: int, eps: float,
        use_linear_projection: bool, upcast_attention: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock3D(channels, channels, temb_channels, groups, eps) for _ in range(2)
        )
        self.attentions = nn.ModuleList(
            [
                Transformer3DModel(
                    channels, heads, cross_attention_dim, 1, groups, use_linear_projection, upcast_attention
                )
            ]
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self._run(self.resnets[0], x, temb)
        x = self._run(self.attentions[0], x, context)
        return self._run(self.resnets[1], x, temb)


class UpBlock3D(_Block):
    def __init__(
        self, in_channels: int, prev_output_channels: int, out_channels: int, temb_channels: int, num_layers: int,
        add_upsample: bool, cross_attention: bool, heads: int, cross_attention_dim: int, groups: int, eps: float,
        use_linear_projection: bool, upcast_attention: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        resnets = []
        for i in range(num_layers):
            skip_channels = in_channels if i == num_layers - 1 else out_channels
            resnet_in = prev_output_channels if i == 0 else out_channels
            resnets.append(ResnetBlock3D(resnet_in + skip_channels, out_channels, temb_channels, groups, eps))
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(
            Transformer3DModel(
                out_channels, heads, cross_attention_dim, 1, groups, use_linear_projection, upcast_attention
            )
            for _ in range(num_layers if cross_attention else 0)
        )
        self.upsamplers = nn.ModuleList([Upsample3D(out_channels)] if add_upsample else [])

    def forward(self, x, skips: list[torch.Tensor], temb, context, upsample_size=None) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            x = torch.cat([x, skips.pop()], dim=1)
            x = self._run(resnet, x, temb)
            if self.attentions:
                x = self._run(self.attentions[i], x, context)
        for up in self.upsamplers:
            x = up(x, upsample_size)
        return x


def _as_list(value, n: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


class InflatedUNet3DConditionModel(ModelMixin, ConfigMixin):
    """Pseudo-3-D UNet on latents laid out (b, c, f, h, w), built from a Stable Diffusion UNet config.

    ``attention_head_dim`` keeps diffusers' SD-v1 meaning (it is the *number of heads*; 8 for SD v1.x, a per-block list
    for SD 2.x). Temporal parts (``attn_temp``, ``norm_temp``) are new; everything else has the 2-D weights' names.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: tuple[str, ...] = (CROSS_ATTN_DOWN, CROSS_ATTN_DOWN, CROSS_ATTN_DOWN, DOWN),
        mid_block_type: str = MID,
        up_block_types: tuple[str, ...] = (UP, CROSS_ATTN_UP, CROSS_ATTN_UP, CROSS_ATTN_UP),
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        act_fn: str = "silu",
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 768,
        attention_head_dim: int | tuple[int, ...] = 8,
        use_linear_projection: bool = False,
        upcast_attention: bool = False,
    ) -> None:
        super().__init__()
        if act_fn != "silu":
            raise CheckpointLayoutError(f"unsupported act_fn {act_fn!r} (Stable Diffusion uses 'silu')")
        if mid_block_type != MID:
            raise CheckpointLayoutError(f"unsupported mid_block_type {mid_block_type!r}")
        n = len(block_out_channels)
        heads = _as_list(attention_head_dim, n)
        time_dim = block_out_channels[0] * 4
        common = dict(
            cross_attention_dim=cross_attention_dim, groups=norm_num_groups, eps=norm_eps,
            use_linear_projection=use_linear_projection, upcast_attention=upcast_attention,
        )  # fmt: skip

        self.conv_in = InflatedConv3d(in_channels, block_out_channels[0], 3, padding=1)
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], time_dim)

        self.down_blocks = nn.ModuleList()
        out_ch = block_out_channels[0]
        for i, kind in enumerate(down_block_types):
            if kind not in (CROSS_ATTN_DOWN, DOWN):
                raise CheckpointLayoutError(f"unsupported down block type {kind!r}")
            in_ch, out_ch = out_ch, block_out_channels[i]
            self.down_blocks.append(
                DownBlock3D(
                    in_ch, out_ch, time_dim, layers_per_block, add_downsample=i < n - 1,
                    cross_attention=kind == CROSS_ATTN_DOWN, heads=heads[i],
                    downsample_padding=downsample_padding, **common,
                )
            )  # fmt: skip

        self.mid_block = MidBlock3D(block_out_channels[-1], time_dim, heads[-1], **common)

        self.up_blocks = nn.ModuleList()
        reversed_channels, reversed_heads = list(reversed(block_out_channels)), list(reversed(heads))
        out_ch = reversed_channels[0]
        for i, kind in enumerate(up_block_types):
            if kind not in (CROSS_ATTN_UP, UP):
                raise CheckpointLayoutError(f"unsupported up block type {kind!r}")
            prev_ch, out_ch = out_ch, reversed_channels[i]
            in_ch = reversed_channels[min(i + 1, n - 1)]
            self.up_blocks.append(
                UpBlock3D(
                    in_ch, prev_ch, out_ch, time_dim, layers_per_block + 1, add_upsample=i < n - 1,
                    cross_attention=kind == CROSS_ATTN_UP, heads=reversed_heads[i], **common,
                )
            )  # fmt: skip

        self.conv_norm_out = nn.GroupNorm(norm_num_groups, block_out_channels[0], eps=norm_eps)
        self.conv_out = InflatedConv3d(block_out_channels[0], out_channels, 3, padding=1)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        return_dict: bool = True,
    ) -> InflatedUNetOutput | tuple[torch.Tensor]:
        """Predict noise (or v) for latents ``sample`` (b, c, f, h, w) at ``timestep`` given text (b, n, d)."""
        if sample.ndim != 5:
            raise ValueError(f"sample must be (b, c, f, h, w), got shape {tuple(sample.shape)}")
        b = sample.shape[0]
        timesteps = torch.as_tensor(timestep, device=sample.device)
        timesteps = timesteps.reshape(-1).expand(b) if timesteps.numel() == 1 else timesteps.reshape(b)
        temb = self.time_embedding(self.time_proj(timesteps).to(sample.dtype))

        # Upsample to the skip's exact size when the latent is not a multiple of 2**num_downsamples.
        factor = 2 ** (len(self.up_blocks) - 1)
        odd_size = any(s % factor != 0 for s in sample.shape[-2:])

        x = self.conv_in(sample)
        skips: list[torch.Tensor] = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb, encoder_hidden_states)
            skips.extend(block_skips)
        x = self.mid_block(x, temb, encoder_hidden_states)
        for i, block in enumerate(self.up_blocks):
            n_res = len(block.resnets)
            block_skips, skips = skips[-n_res:], skips[:-n_res]
            upsample_size = tuple(skips[-1].shape[-2:]) if odd_size and i < len(self.up_blocks) - 1 else None
            x = block(x, block_skips, temb, encoder_hidden_states, upsample_size)
        x = F.silu(self.conv_norm_out(x))  # 5-D GroupNorm: statistics over all frames, as upstream
        x = self.conv_out(x)
        return InflatedUNetOutput(sample=x) if return_dict else (x,)

    # ----------------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained_2d(
        cls, path: str | Path, subfolder: str | None = "unet"
    ) -> InflatedUNet3DConditionModel:
        """Inflate a Stable Diffusion UNet folder (diffusers layout) or load an official Tune-A-Video UNet folder.

        Reads ``config.json`` (2-D block names are rewritten to ``*3D``), loads ``diffusion_pytorch_model.safetensors``
        when present and otherwise ``diffusion_pytorch_model.bin`` with ``weights_only=True``. Keys containing
        ``_temp.`` that the checkpoint lacks keep their fresh init; any other missing or unexpected key is an error.
        """
        folder = Path(path) / subfolder if subfolder else Path(path)
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(
                f"no UNet config at {config_file} (expected a Stable Diffusion folder with unet/)"
            )
        config = json.loads(config_file.read_text())
        config["down_block_types"] = [t.replace("2D", "3D") for t in config["down_block_types"]]
        config["up_block_types"] = [t.replace("2D", "3D") for t in config["up_block_types"]]
        config["mid_block_type"] = str(config.get("mid_block_type") or MID).replace("2D", "3D")
        if config.get("num_attention_heads") is not None:  # newer SD configs name the head count explicitly
            config["attention_head_dim"] = config["num_attention_heads"]
        check_unimplemented_keys(config, config_file)
        known = {k: v for k, v in config.items() if k in _init_arg_names()}
        model = cls(**known)
        state = load_unet_weights(folder)
        model.load_inflated_state_dict(state, source=str(folder))
        return model

    def load_inflated_state_dict(self, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
        """Load 2-D (or official 3-D) weights; only temporal (``_temp.``) keys may be missing."""
        own = self.state_dict()
        unexpected = sorted(k for k in state if k not in own)
        missing = sorted(k for k in own if k not in state and "_temp." not in k)
        if unexpected or missing:
            raise CheckpointLayoutError(
                f"{source}: weights do not match the UNet config "
                f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})"
            )
        for k, v in state.items():
            if v.shape != own[k].shape:
                raise CheckpointLayoutError(
                    f"{source}: shape mismatch for {k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
                )
        self.load_state_dict(state, strict=False)


def _init_arg_names() -> set[str]:
    import inspect

    return set(inspect.signature(InflatedUNet3DConditionModel.__init__).parameters) - {"self"}


# Keys read by the loader itself (a head count under its newer name), beyond the constructor's arguments.
_LOADER_KEYS = {"num_attention_heads"}


def _is_default(value: object, default: object) -> bool:
    """``value`` equals ``default``; a per-block list counts as default when every entry is the scalar default."""
    if isinstance(value, list | tuple):
        if isinstance(default, list | tuple):
            return list(value) == list(default)
        return all(v == default for v in value)
    return value == default


def check_unimplemented_keys(config: dict, source: str | Path) -> None:
    """Refuse a UNet config that asks for something this UNet does not compute (issue 23, item 3).

    Keys of diffusers' ``UNet2DConditionModel`` (and of the official ``UNet3DConditionModel``) that we do not implement
    (``center_input_sample``, ``resnet_time_scale_shift``, ``class_embed_type``, ``transformer_layers_per_block``,
    ``attention_type``, ``conv_in_kernel``, ...) pass only at their default value; bookkeeping keys (``_class_name``,
    ``_diffusers_version``, any ``_``-prefixed key) always pass; a key unknown to both must be null.
    """
    import inspect

    from diffusers import UNet2DConditionModel

    official = {
        name: p.default
        for name, p in inspect.signature(UNet2DConditionModel.__init__).parameters.items()
        if name != "self"
    }
    implemented = _init_arg_names() | _LOADER_KEYS
    for key, value in config.items():
        if key.startswith("_") or key in implemented:
            continue
        if key not in official:
            if value is not None:
                raise CheckpointLayoutError(f"{source}: unknown UNet config key {key!r} = {value!r}")
        elif not _is_default(value, official[key]):
            raise CheckpointLayoutError(
                f"{source}: UNet config key {key!r} = {value!r} is not implemented "
                f"(only its default {official[key]!r} is supported)"
            )


def load_unet_weights(folder: Path) -> dict[str, torch.Tensor]:
    """``diffusion_pytorch_model.safetensors`` first, else the ``.bin`` via ``torch.load(weights_only=True)``."""
    safetensors_file = folder / "diffusion_pytorch_model.safetensors"
    bin_file = folder / "diffusion_pytorch_model.bin"
    if safetensors_file.is_file():
        return load_file(str(safetensors_file))
    if bin_file.is_file():
        return torch.load(bin_file, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"no diffusion_pytorch_model.safetensors or .bin in {folder}")


def freeze_for_tuning(unet: nn.Module, suffixes: tuple[str, ...] = TRAINABLE_SUFFIXES) -> list[str]:
    """Freeze everything except ``attn1.to_q``, ``attn2.to_q`` and ``attn_temp`` (paper Sec. 4.2); return the names
    of the trainable parameters."""
    trainable = []
    unet.requires_grad_(False)
    for name, module in unet.named_modules():
        if name.endswith(tuple(suffixes)):
            for p_name, p in module.named_parameters():
                p.requires_grad_(True)
                trainable.append(f"{name}.{p_name}")
    if not trainable:
        raise ValueError(f"trainable_modules {list(suffixes)} match no module of the UNet")
    return sorted(set(trainable))
