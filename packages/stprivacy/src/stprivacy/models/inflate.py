"""Image -> video weights: a local timm/DeiT ViT-S/16 state dict inflated to the tubelet models, and official keys.

Inflation (upstream ``checkpoint_image2video``): the 2-D patch conv [D, C, p, p] becomes [D, C, t, p, p], either the
image kernel repeated over the t frames and divided by t (``average``: same response on a static clip) or placed on the
centre frame with zeros elsewhere (``central``). ``pos_embed`` loses its CLS slot, is resized bicubically from the
image grid (14x14 at 224 px) to the video grid (7x7 at 112 px) and repeated over the temporal slices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

__all__ = ["OFFICIAL_KEY_MAP", "convert_official_state", "inflate_image_checkpoint"]

# Image-classifier parts without a counterpart in the video models (the video heads start fresh).
_DROPPED = ("cls_token", "dist_token", "head.", "head_dist.", "norm.", "fc_norm.", "pre_logits.")

# Official (ming1993li/stprivacy) parameter names -> ours. Everything else (patch_embed.proj, pos_embed,
# blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}, norm_recon, head_recon, fc_norm) has the same name.
OFFICIAL_KEY_MAP = {"score_predictor.": "predictors.", "head_new.": "head."}


def _inflate_conv(weight: torch.Tensor, frames: int, mode: str) -> torch.Tensor:
    if mode == "average":
        return weight.unsqueeze(2).repeat(1, 1, frames, 1, 1) / frames
    if mode == "central":
        out = weight.new_zeros(weight.shape[0], weight.shape[1], frames, *weight.shape[2:])
        out[:, :, frames // 2] = weight
        return out
    raise ValueError(f"inflation mode must be 'average' or 'central', got {mode!r}")


def _video_pos_embed(pos: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    tokens = pos[:, 1:] if math.isqrt(pos.shape[1] - 1) ** 2 == pos.shape[1] - 1 else pos
    side = math.isqrt(tokens.shape[1])
    if side * side != tokens.shape[1]:
        raise ValueError(
            f"pos_embed with {pos.shape[1]} positions is not a square grid (with or without CLS)"
        )
    d = tokens.shape[-1]
    image = tokens.reshape(1, side, side, d).permute(0, 3, 1, 2).float()
    image = F.interpolate(image, size=grid[1:], mode="bicubic", align_corners=False)
    per_slice = image.permute(0, 2, 3, 1).reshape(1, grid[1] * grid[2], d)
    return per_slice.repeat(1, grid[0], 1).to(pos.dtype)


def inflate_image_checkpoint(
    state: Mapping[str, torch.Tensor],
    mode: str = "average",
    *,
    tubelet_frames: int = 2,
    grid: tuple[int, int, int] = (8, 7, 7),
) -> dict[str, torch.Tensor]:
    """A timm/DeiT ViT state dict -> the trunk of ``STPrivacy`` / ``VideoViT`` (token ``grid`` = (L, h, w)).

    Accepts a bare state dict or one nested under ``model`` / ``state_dict`` (DeiT releases). Image heads, CLS/dist
    tokens and the final norm are dropped; load the result with ``strict=False`` (predictors and heads start fresh).
    """
    for nest in ("model", "state_dict"):
        if nest in state and isinstance(state[nest], Mapping):
            state = state[nest]  # type: ignore[assignment]
    if "patch_embed.proj.weight" not in state or "pos_embed" not in state:
        raise ValueError("not a ViT image checkpoint: patch_embed.proj.weight or pos_embed is missing")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(_DROPPED):
            continue
        if key == "patch_embed.proj.weight":
            value = _inflate_conv(value, tubelet_frames, mode)
        elif key == "pos_embed":
            value = _video_pos_embed(value, grid)
        out[key] = value
    return out


def convert_official_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official STPrivacy / action-recognizer state dict -> our names (``OFFICIAL_KEY_MAP``).

    VideoMAE-style attention stores ``q_bias`` and ``v_bias`` without a k bias; they become one ``qkv.bias`` with a zero
    k part.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, new in OFFICIAL_KEY_MAP.items():
            if key.startswith(old):
                key = new + key[len(old) :]
        out[key] = value
    for key in [k for k in out if k.endswith("attn.q_bias")]:
        prefix = key[: -len("q_bias")]
        q, v = out.pop(key), out.pop(prefix + "v_bias")
        out[prefix + "qkv.bias"] = torch.cat([q, torch.zeros_like(q), v])
    return out
