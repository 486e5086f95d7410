"""`--init-from`: initialise a FacePartMAE from a local MAE checkpoint in one of three layouts.

- transformers `ViTMAEForPreTraining` (a saved folder or its weights file; v4 `vit.encoder.layer.N.attention.attention.
  query` or v5 `vit.layers.N.attention.q_proj` names): encoder AND decoder.
- facebookresearch/mae `{"model": ...}` (timm block names plus `decoder_blocks.N`, `decoder_embed`, ...): both.
- timm `VisionTransformer` (encoder only): the decoder starts fresh, which is logged.
Position embeddings are never copied: both sides use the same fixed sin-cos table, at our grid. Any shape mismatch or
unknown key is a CheckpointError naming the file and the keys.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from deepfake_mae.models.mae import FacePartMAE
from visioncore.hub import CheckpointError

log = logging.getLogger("deepfake_mae")

_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_SKIP = re.compile(r"(^|\.)(pos_embed|position_embeddings|decoder_pos_embed)$")
# Inner names of a transformers ViT layer -> timm Block names (v5 first, then v4).
_HF_BLOCK = {
    "attention.o_proj.": "attn.proj.",
    "attention.output.dense.": "attn.proj.",
    "layernorm_before.": "norm1.",
    "layernorm_after.": "norm2.",
    "mlp.fc1.": "mlp.fc1.",
    "mlp.fc2.": "mlp.fc2.",
    "intermediate.dense.": "mlp.fc1.",
    "output.dense.": "mlp.fc2.",
}
_HF_QKV = (
    ("attention.q_proj.", "attention.k_proj.", "attention.v_proj."),
    ("attention.attention.query.", "attention.attention.key.", "attention.attention.value."),
)
_HF_TOP = {
    "vit.embeddings.cls_token": "encoder.timm_model.cls_token",
    "vit.embeddings.patch_embeddings.projection.": "encoder.timm_model.patch_embed.proj.",
    "vit.layernorm.": "encoder.timm_model.norm.",
    "decoder.mask_token": "decoder.mask_token",
    "decoder.decoder_embed.": "decoder.embed.",
    "decoder.decoder_norm.": "decoder.norm.",
    "decoder.decoder_pred.": "decoder.pred.",
}
_MAE_DECODER = {
    "mask_token": "decoder.mask_token",
    "decoder_embed.": "decoder.embed.",
    "decoder_blocks.": "decoder.blocks.",
    "decoder_norm.": "decoder.norm.",
    "decoder_pred.": "decoder.pred.",
}


def _torch_load(path: Path) -> object:
    """``torch.load(weights_only=True)`` plus ``argparse.Namespace``: MAE's own training checkpoints
    (``checkpoint-N.pth``: model, optimizer, epoch, scaler and the run's ``args`` Namespace) load; any other global (a
    ``defaultdict``, a ``PosixPath`` inside ``args``) is refused naming the file and the global, without running it."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        name = found.group(1) if found else str(err).strip().splitlines()[0]
        raise CheckpointError(
            f"{path}: refused to unpickle the global {name} (not a plain tensor checkpoint)"
        ) from None


def read_state(path: str | Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """Tensors of a checkpoint file or a transformers folder (safetensors or torch.load(weights_only=True))."""
    path = Path(path)
    if path.is_dir():
        found = next((path / n for n in _HF_WEIGHT_FILES if (path / n).is_file()), None)
        if found is None:
            raise CheckpointError(f"{path}: no {' or '.join(_HF_WEIGHT_FILES)} in this folder")
        path = found
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = load_file(path) if path.suffix == ".safetensors" else _torch_load(path)
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointError(f"{path}: cannot read checkpoint: {str(err).splitlines()[0]}") from None
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: not a state dict")
    return path, {k.removeprefix("module."): v for k, v in obj.items() if torch.is_tensor(v)}


def _replace_prefix(key: str, table: dict[str, str]) -> str | None:
    for old, new in table.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def from_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers ViTMAEForPreTraining (v4 or v5 names) -> FacePartMAE keys (q, k, v fused into timm's qkv)."""
    out: dict[str, torch.Tensor] = {}
    # transformers 5.x writes the decoder layers as `decoder.decoder_encoder.layer.N` (hub files: `decoder_layers.N`).
    layer = re.compile(
        r"^(vit\.layers|vit\.encoder\.layer|decoder\.decoder_layers|decoder\.decoder_encoder\.layer)\.(\d+)\.(.+)$"
    )
    key_or_value = tuple(names[i] + kind for names in _HF_QKV for i in (1, 2) for kind in ("weight", "bias"))
    for key, value in state.items():
        if _SKIP.search(key):
            continue
        m = layer.match(key)
        if m is None:
            new = _replace_prefix(key, _HF_TOP)
            out[new if new is not None else "unexpected:" + key] = value
            continue
        kind_of_block = (
            "decoder.blocks." if m.group(1).startswith("decoder") else "encoder.timm_model.blocks."
        )
        dst, rest, src = kind_of_block + m.group(2) + ".", m.group(3), key[: -len(m.group(3))]
        if rest in key_or_value:
            continue  # fused together with the query below
        qkv = next(
            ((q, k, v, kind) for q, k, v in _HF_QKV for kind in ("weight", "bias") if rest == q + kind), None
        )
        if qkv is not None:
            q, k, v, kind = qkv
            out[dst + "attn.qkv." + kind] = torch.cat(
                [state[src + q + kind], state[src + k + kind], state[src + v + kind]]
            )
            continue
        new = _replace_prefix(rest, _HF_BLOCK)
        out[dst + new if new is not None else "unexpected:" + key] = value
    return out


def from_timm(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    """timm ViT / facebookresearch/mae keys -> FacePartMAE keys; returns (state, has_decoder)."""
    out, has_decoder = {}, False
    for key, value in state.items():
        if _SKIP.search(key) or key.startswith(("head.", "fc_norm.")):
            continue  # fixed sin-cos positions on both sides; classifier heads are not part of the MAE
        new = _replace_prefix(key, _MAE_DECODER)
        if new is not None:
            has_decoder = True
            out[new] = value
        else:
            out["encoder.timm_model." + key] = value
    return out, has_decoder


def load_pretrained_mae(model: FacePartMAE, path: str | Path) -> list[str]:
    """Load a transformers / MAE / timm checkpoint into `model`; returns the model keys left at their init values."""
    file, state = read_state(path)
    if any(k.startswith("vit.") for k in state):
        mapped, has_decoder = from_transformers(state), True
    else:
        mapped, has_decoder = from_timm(state)
    own = model.state_dict()
    unexpected = sorted(k.removeprefix("unexpected:") for k in mapped if k not in own)
    bad = [
        f"{k} (checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)})"
        for k, v in mapped.items()
        if k in own and v.shape != own[k].shape
    ]
    if unexpected or bad:
        detail = "; ".join(
            filter(
                None,
                [
                    f"{len(bad)} shape mismatch(es): {', '.join(bad[:4])}" if bad else "",
                    f"{len(unexpected)} unknown key(s): {', '.join(unexpected[:4])}" if unexpected else "",
                ],
            )
        )
        raise CheckpointError(f"{file}: checkpoint does not fit FacePartMAE({model.img_size}px): {detail}")
    fresh_ok = ("pos_embed",) if has_decoder else ("pos_embed", "decoder.")
    missing = sorted(k for k in own if k not in mapped)
    hard = [k for k in missing if not any(s in k for s in fresh_ok)]
    if hard:
        raise CheckpointError(
            f"{file}: {len(hard)} weight(s) missing from the checkpoint: {', '.join(hard[:4])}"
        )
    model.load_state_dict(mapped, strict=False)
    if not has_decoder:
        log.warning("%s: encoder-only (timm) checkpoint; the MAE decoder starts from random weights", file)
    return missing
