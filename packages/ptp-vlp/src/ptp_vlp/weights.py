"""Weights from local files only: DeiT/ViT + ``bert-base-uncased`` initialisation, official BLIP/PTP checkpoints.

Official checkpoints (``Pretrain_concated_pred_4m.pth``, ``zero_shot_coco_checkpoint_4m.pth``,
``flickr30k_ft_4m.pth``) are ``{"model": state_dict}`` with BLIP's keys; ours differ only by the ViT's
``timm_model.`` level, ``ptr_queue`` (retrieval) for ``queue_ptr``, and the unused ``*.position_ids`` buffers.
Everything is read with ``torch.load(weights_only=True)`` or safetensors.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from visioncore.backbones import load_weights
from visioncore.hub import CheckpointError, LoadReport, _load_checked, read_state_dict

__all__ = ["blip_key", "init_from_pretrained", "load_blip_checkpoint"]

_log = logging.getLogger(__name__)
_VIT_PREFIXES = ("visual_encoder.", "visual_encoder_m.")


def blip_key(key: str) -> str | None:
    """BLIP checkpoint key -> ours (None: drop)."""
    if key.endswith("position_ids"):
        return None
    if key == "ptr_queue":
        return "queue_ptr"
    for prefix in _VIT_PREFIXES:
        if key.startswith(prefix) and not key.startswith(prefix + "timm_model."):
            return prefix + "timm_model." + key[len(prefix) :]
    return key


def _resize_pos_embed(state: dict[str, torch.Tensor], model: nn.Module) -> None:
    """Interpolate ViT position embeddings to the model's grid (BLIP does so for 384-px fine-tuning)."""
    from timm.layers import resample_abs_pos_embed

    own = model.state_dict()
    for prefix in _VIT_PREFIXES:
        key = prefix + "timm_model.pos_embed"
        if key in state and key in own and state[key].shape != own[key].shape:
            n_old = int(round((state[key].shape[1] - 1) ** 0.5))
            n_new = int(round((own[key].shape[1] - 1) ** 0.5))
            state[key] = resample_abs_pos_embed(state[key], new_size=[n_new, n_new], old_size=[n_old, n_old])


def _restore_ties(state: dict[str, torch.Tensor]) -> None:
    """safetensors stores one name of each tied tensor: give the encoder back the modules it shares with the
    decoder (embeddings, cross-attention, feed-forward) and the decoder its LM head weight."""
    for key in list(state):
        if key.startswith("text_decoder.bert.") and ".attention." not in key:
            state.setdefault("text_encoder." + key[len("text_decoder.bert.") :], state[key])
    for key in list(state):
        if (
            key.startswith("text_encoder.")
            and not key.startswith("text_encoder_m")
            and ".attention." not in key
        ):
            state.setdefault("text_decoder.bert." + key[len("text_encoder.") :], state[key])
    words = state.get("text_decoder.bert.embeddings.word_embeddings.weight")
    if words is not None:
        state.setdefault("text_decoder.cls.predictions.decoder.weight", words)


def load_blip_checkpoint(model: nn.Module, path: str | Path) -> LoadReport:
    """Load an official BLIP/PTP checkpoint into a ``BLIPPretrain``/``BLIPRetrieval``/``BLIPCaption``.

    Keys the model does not have (e.g. a pretraining checkpoint's decoder in a retrieval model) are ignored; a key
    the model needs that the file lacks, or a tensor of the wrong shape, raises ``CheckpointError`` naming the file
    and the keys. Momentum encoders absent from the file (fine-tuned checkpoints) are copied from the online ones.
    """
    raw = read_state_dict(path)
    state = {new: v for k, v in raw.items() if (new := blip_key(k)) is not None}
    _resize_pos_embed(state, model)
    own = model.state_dict()
    _restore_ties(state)
    if "idx_queue" in own and "idx_queue" not in state:  # a pretraining checkpoint into a retrieval model
        state["idx_queue"] = torch.full_like(own["idx_queue"], -100)
    if "queue_ptr" in state and "queue_ptr" in own:
        state["queue_ptr"] = state["queue_ptr"].reshape(own["queue_ptr"].shape).long()
    momentum = [
        k
        for k in own
        if any(
            k.startswith(p)
            for p in ("visual_encoder_m.", "vision_proj_m.", "text_encoder_m.", "text_proj_m.")
        )
    ]
    without_momentum = not any(k in state for k in momentum)
    kept = {k: v for k, v in state.items() if k in own}
    report = _load_checked(model, kept, source=path, strict=False)
    missing = [k for k in report.missing if not (without_momentum and k in momentum)]
    if missing:
        shown = ", ".join(missing[:8]) + (f", ... and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise CheckpointError(
            f"{path}: checkpoint does not fit {type(model).__name__}: {len(missing)} missing key(s): {shown}"
        )
    if without_momentum and hasattr(model, "copy_params"):
        model.copy_params()
    return LoadReport(missing, sorted(set(state) - set(own)))


def init_from_pretrained(model: nn.Module, vit: str | Path | None, bert: str | Path | None) -> None:
    """BLIP's pretraining start: ViT from a DeiT/ViT file, text encoder and decoder from a ``bert-base-uncased``
    folder (``model.safetensors`` or ``pytorch_model.bin``); cross-attention starts fresh (logged). The word
    embeddings grow from 30522 to the tokenizer's size (``[DEC]``, ``[ENC]`` rows stay random)."""
    if vit:
        load_weights(model.visual_encoder, vit)
    if bert:
        folder = Path(bert)
        files = [folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()]
        if not files:
            raise FileNotFoundError(
                f"{folder}: no model.safetensors or pytorch_model.bin (a bert-base-uncased folder)"
            )
        state = read_state_dict(files[0])
        for target in (model.text_encoder, getattr(model, "text_decoder", None)):
            if target is not None:
                _load_bert(target, state, files[0])
    if hasattr(model, "copy_params"):
        model.copy_params()


def _load_bert(target: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    is_lm = hasattr(target, "cls")
    own = target.state_dict()
    mapped = {}
    for key, value in state.items():
        name = key[len("bert.") :] if key.startswith("bert.") else key
        if key.startswith("cls."):
            name = key if is_lm else None
        elif is_lm:
            name = "bert." + name
        if name is None or name not in own or name.endswith(("position_ids", "predictions.decoder.weight")):
            continue  # the LM head's weight is tied to the word embeddings
        if value.shape != own[name].shape and (
            "word_embeddings" in name or name.endswith("predictions.bias")
        ):
            grown = own[name].clone()
            grown[: value.shape[0]] = value
            value = grown
        mapped[name] = value
    report = _load_checked(target, mapped, source=source, strict=False)
    fresh = sorted({k.split(".crossattention")[0] for k in report.missing if "crossattention" in k})
    _log.info(
        "%s: %d keys from %s; fresh: %d cross-attention layers, %d other keys",
        type(target).__name__,
        len(mapped),
        source,
        len(fresh),
        len([k for k in report.missing if "crossattention" not in k]),
    )
