"""Explicit timm backbones with a documented feature contract, fixed sin-cos position embeddings, offline weights.

ViTs::

    vit = vit_tiny(img_size=32, patch_size=4, embed_dim=64, depth=3, num_heads=4)  # tiny custom ViT for tests
    tokens = vit.forward_tokens(images)                        # [B, 1 + N, D], last block, before the final norm
    tokens = vit.forward_tokens(images, visible=keep)          # [B, 1 + K, D], blocks run on the kept patches only
    patches = vit.forward_tokens(images, with_cls=False, final_norm=True)  # [B, N, D], final norm applied

``vit_tiny/small/base/large`` build a timm ``VisionTransformer`` (tiny 192/12/3, small 384/12/6, base 768/12/12,
large 1024/24/16 for width/depth/heads) with ``num_classes=0`` and ``dynamic_img_size=True``; every other keyword
(``depth``, ``embed_dim``, ``num_heads``, ``drop_path_rate``, ``qkv_bias``, ``reg_tokens``, ...) goes to timm.
``pos_embed="sincos"`` replaces the learned position embedding by MAE's fixed 2-D sin-cos one (still timm's
``pos_embed`` parameter, with ``requires_grad=False``, so checkpoints keep their layout).

ResNets: ``resnet18/resnet50(...) -> ResNet`` with ``forward_maps(images) -> [B, C, H/32, W/32]``.

Weights never come from the network: ``weights=`` is a local file handed to ``load_weights``, which reads
``.safetensors``, timm ``.pth``/``.bin`` state dicts and original checkpoints (``{"model": ...}``,
``{"state_dict": ...}``, DINO's ``{"teacher": {"backbone.*": ...}}``), always with ``weights_only=True``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from timm.layers import resample_abs_pos_embed
from timm.models import checkpoint_seq
from timm.models.resnet import BasicBlock, Bottleneck
from timm.models.resnet import ResNet as TimmResNet
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from visioncore.hub import CheckpointError, LoadReport, _load_checked, read_state_dict

__all__ = [
    "CheckpointError",
    "LoadReport",
    "ResNet",
    "ViT",
    "load_weights",
    "resnet18",
    "resnet50",
    "resnet101",
    "sincos_pos_embed_2d",
    "vit_base",
    "vit_large",
    "vit_small",
    "vit_tiny",
]

_log = logging.getLogger(__name__)

KeyMap = Callable[[str], str | None] | Mapping[str, str | None]


# --------------------------------------------------------------------------------------------- position embeddings


def _sincos_1d(embed_dim: int, positions: torch.Tensor, temperature: float = 10000.0) -> torch.Tensor:
    """[M] positions -> [M, embed_dim]: first half sin(p * omega), second half cos(p * omega)."""
    omega = 1.0 / temperature ** (torch.arange(embed_dim // 2, dtype=torch.float64) / (embed_dim / 2))
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_pos_embed_2d(
    embed_dim: int, grid_size: int | tuple[int, int], *, cls_token: bool = False, temperature: float = 10000.0
) -> torch.Tensor:
    """MAE's fixed 2-D sin-cos position embedding, float32 ``[(1 +) h * w, embed_dim]``.

    Patches are in timm's row-major order (index ``r * w + c``). As in MAE's ``get_2d_sincos_pos_embed``, the first
    ``embed_dim / 2`` channels encode the column ``c`` and the last half the row ``r``; each half is
    ``[sin(p * omega), cos(p * omega)]`` with ``omega_i = 1 / 10000 ** (i / (embed_dim / 4))``,
    ``i = 0 .. embed_dim / 4 - 1``. With ``cls_token`` a zero row comes first. ``embed_dim`` must be divisible by 4.

    ``temperature`` replaces MAE's 10000 (the name of timm's ``build_sincos2d_pos_embed`` argument). On a small
    grid the default leaves most channels near ``cos(0) = 1`` at every patch (for ``embed_dim=64`` on 3x3 patches
    about 5% of the table's energy varies with position); a small temperature spreads the angles over the grid.
    """
    if embed_dim <= 0 or embed_dim % 4:
        raise ValueError(f"sincos_pos_embed_2d: embed_dim must be a positive multiple of 4, got {embed_dim}")
    if not temperature > 0:
        raise ValueError(f"sincos_pos_embed_2d: temperature must be positive, got {temperature}")
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else tuple(grid_size)
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    emb = torch.cat(
        [
            _sincos_1d(embed_dim // 2, cols.reshape(-1), temperature),
            _sincos_1d(embed_dim // 2, rows.reshape(-1), temperature),
        ],
        dim=1,
    )
    if cls_token:
        emb = torch.cat([torch.zeros(1, embed_dim, dtype=emb.dtype), emb], dim=0)
    return emb.float()


# ------------------------------------------------------------------------------------------------------------- ViT


class ViT(nn.Module):
    """A timm ``VisionTransformer`` behind a small token contract.

    Attributes: ``timm_model``, ``embed_dim`` (D), ``patch_size`` (int; a ``(ph, pw)`` tuple only for non-square
    patches), ``grid_size`` (``(h, w)`` patches at the configured ``img_size``), ``num_patches`` (``h * w``),
    ``num_prefix_tokens`` (1 for the CLS token, plus any register tokens), ``blocks``, ``norm`` (the final norm).
    """

    def __init__(self, timm_model: VisionTransformer):
        super().__init__()
        self.timm_model = timm_model
        self.embed_dim: int = timm_model.embed_dim
        ph, pw = timm_model.patch_embed.patch_size
        self.patch_size: int | tuple[int, int] = ph if ph == pw else (ph, pw)
        self.grid_size: tuple[int, int] = tuple(timm_model.patch_embed.grid_size)
        self.num_patches: int = self.grid_size[0] * self.grid_size[1]
        self.num_prefix_tokens: int = timm_model.num_prefix_tokens

    @property
    def blocks(self) -> nn.Sequential:
        return self.timm_model.blocks

    @property
    def norm(self) -> nn.Module:
        return self.timm_model.norm

    def _patch_pos_embed(self, grid: tuple[int, int]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(prefix-token rows or None, patch rows resampled to ``grid``) of timm's position embedding."""
        tm = self.timm_model
        if tm.pos_embed is None:
            return None, None
        n_prefix = 0 if tm.no_embed_class else tm.num_prefix_tokens
        pos = resample_abs_pos_embed(
            tm.pos_embed, new_size=list(grid), old_size=list(self.grid_size), num_prefix_tokens=n_prefix
        )
        return (pos[:, :n_prefix] if n_prefix else None), pos[:, n_prefix:]

    def forward_tokens(
        self,
        images: torch.Tensor,
        *,
        visible: torch.Tensor | None = None,
        with_cls: bool = True,
        final_norm: bool = False,
    ) -> torch.Tensor:
        """Tokens after the last block: ``[B, P + N, D]`` (``P = num_prefix_tokens`` when ``with_cls``, else 0).

        ``images``: ``[B, C, H, W]`` with H and W multiples of the patch size (position embeddings are interpolated
        to that grid). ``visible``: LongTensor ``[B, K]`` of patch indices (row-major, in ``[0, N)``, not checked
        for range): all patches are embedded and position-encoded, then only these K are gathered (in the given
        order), the prefix tokens prepended, and the blocks run on ``P + K`` tokens (an MAE encoder). By
        default the last block's output is returned; ``final_norm=True`` applies the final norm, as timm's
        ``forward_features`` does. Equal to ``timm_model.forward_features(images)`` for ``final_norm=True``.
        """
        tm = self.timm_model
        x = tm.patch_embed(images)  # NHWC with dynamic_img_size, NLC otherwise
        if x.ndim == 4:
            b, h, w, d = x.shape
            x = x.reshape(b, h * w, d)
        else:
            (h, w), (b, _, d) = tm.patch_embed.grid_size, x.shape
        prefix_pos, patch_pos = self._patch_pos_embed((h, w))
        if patch_pos is not None:
            x = x + patch_pos
        if visible is not None:
            if visible.ndim != 2 or visible.shape[0] != b or visible.dtype != torch.long:
                raise ValueError(
                    f"forward_tokens: visible must be a LongTensor [B={b}, K], got {visible.dtype} "
                    f"{tuple(visible.shape)}"
                )
            x = torch.gather(x, 1, visible[:, :, None].expand(-1, -1, d))
        prefix = [t.expand(b, -1, -1) for t in (tm.cls_token, tm.reg_token) if t is not None]
        if prefix:
            prefix_tokens = torch.cat(prefix, dim=1)
            if prefix_pos is not None:
                prefix_tokens = prefix_tokens + prefix_pos
            x = torch.cat([prefix_tokens, x], dim=1)
        x = tm.pos_drop(x)
        if visible is None:
            x = tm.patch_drop(x)
        x = tm.norm_pre(x)
        if tm.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            x = checkpoint_seq(tm.blocks, x)
        else:
            x = tm.blocks(x)
        if final_norm:
            x = tm.norm(x)
        if not with_cls:
            x = x[:, self.num_prefix_tokens :]
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``forward_tokens(images)`` with the defaults: ``[B, P + N, D]`` before the final norm."""
        return self.forward_tokens(images)


_VIT_SIZES = {
    "tiny": dict(embed_dim=192, depth=12, num_heads=3),
    "small": dict(embed_dim=384, depth=12, num_heads=6),
    "base": dict(embed_dim=768, depth=12, num_heads=12),
    "large": dict(embed_dim=1024, depth=24, num_heads=16),
}


def _vit(
    size: str,
    patch_size: int,
    img_size: int | tuple[int, int],
    weights: str | os.PathLike | None,
    pos_embed: str,
    sincos_temperature: float,
    timm_kwargs: dict[str, Any],
) -> ViT:
    if pos_embed not in ("learn", "sincos", "none"):
        raise ValueError(f"vit_{size}: pos_embed must be 'learn', 'sincos' or 'none', got {pos_embed!r}")
    kwargs: dict[str, Any] = {**_VIT_SIZES[size], "num_classes": 0, "dynamic_img_size": True, **timm_kwargs}
    tm = VisionTransformer(
        img_size=img_size,
        patch_size=patch_size,
        pos_embed="none" if pos_embed == "none" else "learn",
        **kwargs,
    )
    if pos_embed == "sincos":
        n_prefix = 0 if tm.no_embed_class else tm.num_prefix_tokens
        grid = tuple(tm.patch_embed.grid_size)
        table = sincos_pos_embed_2d(tm.embed_dim, grid, temperature=sincos_temperature)
        table = torch.cat([torch.zeros(n_prefix, tm.embed_dim), table], dim=0)
        with torch.no_grad():
            tm.pos_embed.copy_(table[None].to(tm.pos_embed.dtype))
        tm.pos_embed.requires_grad_(False)
    model = ViT(tm)
    if weights is not None:
        load_weights(model, weights)
    return model


def vit_tiny(
    patch_size: int = 16,
    img_size: int | tuple[int, int] = 224,
    weights: str | os.PathLike | None = None,
    *,
    pos_embed: str = "learn",
    sincos_temperature: float = 10000.0,
    **timm_kwargs: Any,
) -> ViT:
    """ViT-Ti (D=192, 12 blocks, 3 heads); ``pos_embed`` is ``"learn"``, ``"sincos"`` (fixed, at
    ``sincos_temperature``) or ``"none"``."""
    return _vit("tiny", patch_size, img_size, weights, pos_embed, sincos_temperature, timm_kwargs)


def vit_small(
    patch_size: int = 16,
    img_size: int | tuple[int, int] = 224,
    weights: str | os.PathLike | None = None,
    *,
    pos_embed: str = "learn",
    sincos_temperature: float = 10000.0,
    **timm_kwargs: Any,
) -> ViT:
    """ViT-S (D=384, 12 blocks, 6 heads); ``pos_embed`` is ``"learn"``, ``"sincos"`` (fixed, at
    ``sincos_temperature``) or ``"none"``."""
    return _vit("small", patch_size, img_size, weights, pos_embed, sincos_temperature, timm_kwargs)


def vit_base(
    patch_size: int = 16,
    img_size: int | tuple[int, int] = 224,
    weights: str | os.PathLike | None = None,
    *,
    pos_embed: str = "learn",
    sincos_temperature: float = 10000.0,
    **timm_kwargs: Any,
) -> ViT:
    """ViT-B (D=768, 12 blocks, 12 heads); ``pos_embed`` is ``"learn"``, ``"sincos"`` (fixed, at
    ``sincos_temperature``) or ``"none"``."""
    return _vit("base", patch_size, img_size, weights, pos_embed, sincos_temperature, timm_kwargs)


def vit_large(
    patch_size: int = 16,
    img_size: int | tuple[int, int] = 224,
    weights: str | os.PathLike | None = None,
    *,
    pos_embed: str = "learn",
    sincos_temperature: float = 10000.0,
    **timm_kwargs: Any,
) -> ViT:
    """ViT-L (D=1024, 24 blocks, 16 heads); ``pos_embed`` is ``"learn"``, ``"sincos"`` (fixed, at
    ``sincos_temperature``) or ``"none"``."""
    return _vit("large", patch_size, img_size, weights, pos_embed, sincos_temperature, timm_kwargs)


# ---------------------------------------------------------------------------------------------------------- ResNet


class ResNet(nn.Module):
    """A timm ``ResNet`` (``num_classes=0``) giving its last stage map: ``forward_maps(images) -> [B, C, h, w]``.

    Attributes: ``timm_model``, ``out_channels`` (C: 512 for resnet18, 2048 for resnet50), ``stride`` (32 by
    default; ``output_stride=8/16`` keyword to the constructors dilates the last stages).
    """

    def __init__(self, timm_model: TimmResNet):
        super().__init__()
        self.timm_model = timm_model
        self.out_channels: int = timm_model.num_features
        self.stride: int = timm_model.feature_info[-1]["reduction"]

    def forward_maps(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W] -> [B, out_channels, H / stride, W / stride]`` (timm's ``forward_features``, ceil-rounded)."""
        return self.timm_model.forward_features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(images)


def _resnet(block: type[nn.Module], layers: tuple[int, ...], weights, timm_kwargs: dict[str, Any]) -> ResNet:
    model = ResNet(TimmResNet(block=block, layers=layers, **{"num_classes": 0, **timm_kwargs}))
    if weights is not None:
        load_weights(model, weights)
    return model


def resnet18(weights: str | os.PathLike | None = None, **timm_kwargs: Any) -> ResNet:
    """ResNet-18 (BasicBlock, 2-2-2-2, 512 output channels); keywords go to timm's ``ResNet``."""
    return _resnet(BasicBlock, (2, 2, 2, 2), weights, timm_kwargs)


def resnet50(weights: str | os.PathLike | None = None, **timm_kwargs: Any) -> ResNet:
    """ResNet-50 (Bottleneck, 3-4-6-3, 2048 output channels); keywords go to timm's ``ResNet``."""
    return _resnet(Bottleneck, (3, 4, 6, 3), weights, timm_kwargs)


def resnet101(weights: str | os.PathLike | None = None, **timm_kwargs: Any) -> ResNet:
    """ResNet-101 (Bottleneck, 3-4-23-3, 2048 output channels); keywords go to timm's ``ResNet``."""
    return _resnet(Bottleneck, (3, 4, 23, 3), weights, timm_kwargs)


# ---------------------------------------------------------------------------------------------------- load_weights

_STRIP_PREFIXES = ("module.", "_orig_mod.", "timm_model.")


def _apply_key_map(state: dict[str, torch.Tensor], key_map: KeyMap) -> dict[str, torch.Tensor]:
    if callable(key_map):
        renamed = {key: key_map(key) for key in state}
    else:
        prefixes = sorted(key_map, key=len, reverse=True)

        def rename(key: str) -> str | None:
            for prefix in prefixes:
                if key.startswith(prefix):
                    new = key_map[prefix]
                    return None if new is None else new + key[len(prefix) :]
            return key

        renamed = {key: rename(key) for key in state}
    return {new: state[old] for old, new in renamed.items() if new is not None}


def _timm_parts(model: nn.Module) -> tuple[nn.Module, str]:
    """(the timm model, its key prefix in ``model.state_dict()``) for our wrappers, else (model, "")."""
    if isinstance(model, ViT | ResNet):
        return model.timm_model, "timm_model."
    return model, ""


def _normalise_keys(
    state: dict[str, torch.Tensor], model: nn.Module, model_keys: set[str], path: Path
) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes, keep a ``backbone.`` subtree, drop a classifier the model lacks, add ``timm_model.``."""

    def uses(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in model_keys)

    strip = tuple(p for p in _STRIP_PREFIXES if not uses(p))

    def stripped(key: str) -> str:
        while key.startswith(strip):
            key = key[len(next(p for p in strip if key.startswith(p))) :]
        return key

    def rekey(pairs: list[tuple[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for key, value in pairs:
            if key in out:
                raise CheckpointError(
                    f"{path}: two checkpoint entries map to the key {key!r} after prefix removal"
                )
            out[key] = value
        return out

    state = rekey([(stripped(k), v) for k, v in state.items()])
    if not uses("backbone.") and any(k.startswith("backbone.") for k in state):
        ignored = [k for k in state if not k.startswith("backbone.")]
        if ignored:
            _log.info("%s: loading the backbone.* entries, ignoring %d others", path, len(ignored))
        state = rekey(
            [(stripped(k[len("backbone.") :]), v) for k, v in state.items() if k.startswith("backbone.")]
        )
    timm_model, prefix = _timm_parts(model)
    classifier = (
        "head."
        if isinstance(timm_model, VisionTransformer)
        else "fc."
        if isinstance(timm_model, TimmResNet)
        else None
    )
    if classifier and getattr(timm_model, "num_classes", None) == 0 and not uses(prefix + classifier):
        dropped = [k for k in state if k.startswith(classifier) or k.startswith(prefix + classifier)]
        if dropped:
            _log.info("%s: model has no classifier, ignoring %s", path, ", ".join(dropped))
        state = {k: v for k, v in state.items() if k not in dropped}
    if prefix:
        state = rekey([(k if k.startswith(prefix) else prefix + k, v) for k, v in state.items()])
    return state


def _resample_pos_embed(state: dict[str, torch.Tensor], model: nn.Module, path: Path) -> None:
    """Resample a checkpoint ``pos_embed`` of another (square) grid to the model's grid, in place."""
    timm_model, prefix = _timm_parts(model)
    if not isinstance(timm_model, VisionTransformer) or timm_model.pos_embed is None:
        return
    key = prefix + "pos_embed"
    theirs, ours = state.get(key), timm_model.pos_embed
    if theirs is None or theirs.shape == ours.shape or theirs.ndim != 3 or theirs.shape[-1] != ours.shape[-1]:
        return
    n_prefix = 0 if timm_model.no_embed_class else timm_model.num_prefix_tokens
    side = math.isqrt(max(theirs.shape[1] - n_prefix, 0))
    if side == 0 or side * side != theirs.shape[1] - n_prefix:
        return  # not a square grid: left for the shape check to report
    new_grid = list(timm_model.patch_embed.grid_size)
    state[key] = resample_abs_pos_embed(
        theirs, new_size=new_grid, old_size=[side, side], num_prefix_tokens=n_prefix
    )
    _log.info("%s: resampled pos_embed from a %dx%d grid to %dx%d", path, side, side, *new_grid)


def load_weights(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    strict: bool = True,
    key_map: KeyMap | None = None,
) -> LoadReport:
    """Load a local checkpoint into ``model`` (never the network) and report ``LoadReport(missing, unexpected)``.

    Reads ``.safetensors`` with safetensors and anything else with ``torch.load(weights_only=True,
    map_location="cpu")``; a dict whose tensors sit under ``"model"``, ``"state_dict"`` or ``"teacher"`` (DINO) is
    unwrapped. Keys then go through, in order:

    1. ``key_map``: a callable ``key -> new key | None`` or a dict ``{old prefix: new prefix | None}`` (longest prefix
       wins); ``None`` drops the entry. Written in terms of the file's keys.
    2. the prefixes ``module.``, ``_orig_mod.`` and ``timm_model.`` are stripped unless the model itself uses them;
    3. if the file has ``backbone.*`` keys and the model none, only that subtree is loaded (DINO heads etc. ignored);
    4. for a ``ViT``/``ResNet`` wrapper (or bare timm ``VisionTransformer``/``ResNet``) without a classifier, the
       file's classifier (``head.*`` / ``fc.*``) is ignored; plain timm keys map onto ``timm_model.*``;
    5. a ViT ``pos_embed`` of another square grid is resampled to the model's grid (timm ``resample_abs_pos_embed``).

    Raises ``CheckpointError`` naming the file when it is missing or unreadable, on any shape mismatch (each key with
    both shapes), and with ``strict`` on missing/unexpected keys (listed); with ``strict=False`` those are returned.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    state = read_state_dict(path)
    if key_map is not None:
        state = _apply_key_map(state, key_map)
    model_keys = set(model.state_dict())
    state = _normalise_keys(state, model, model_keys, path)
    _resample_pos_embed(state, model, path)
    return _load_checked(model, state, source=path, strict=strict)
