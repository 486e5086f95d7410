"""``--init-from best_model.pth``: load an official showlab/mist checkpoint into ``MIST`` by renaming prefixes.

The released file is a plain state dict whose keys all start with ``module.``. It also holds the CLIP model (fp16),
an unused transformer (``ttrans``), the matching head and position tables we do not build, BERT ``position_ids``
buffers and poolers: those are skipped and listed, never loaded. Shape mismatches raise ``CheckpointError``.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from torch import nn

from visioncore.backbones import load_weights
from visioncore.hub import CheckpointError

__all__ = ["InitReport", "init_from_official", "official_key"]

_RENAMES = (  # official prefix -> ours (longest first)
    ("amodel.bert.bert.", "answer_bert."),
    ("amodel.linear_text.", "answer_proj."),
    ("bert.bert.", "question_bert."),
    ("ISTA.", "ista."),
    ("encode_vid.", "encode_vid."),
    ("vqproj.", "vqproj."),
)
_UNUSED = ("clip.", "ttrans.", "crossmodal_matching.", "position.", "frame_position_embedding.")
_UNUSED += ("question_position_embedding.", "token_type_embedding.")


class InitReport(NamedTuple):
    loaded: int  # tensors copied into the model
    skipped: list[str]  # official keys deliberately not loaded (unused modules, buffers, poolers)
    unmatched: list[str]  # official keys with no counterpart in this model
    missing: list[str]  # model keys the checkpoint did not provide (they keep their initial values)


def official_key(key: str) -> str | None:
    """Our name for an official key, or None for a module we do not build."""
    key = key.removeprefix("module.")
    if key.startswith(_UNUSED) or key.endswith("position_ids") or ".pooler." in key:
        return None
    for old, new in _RENAMES:
        if key.startswith(old):
            return new + key[len(old) :]
    return key  # reported as unmatched if the model lacks it


def init_from_official(model: nn.Module, path: str | os.PathLike) -> InitReport:
    """Copy the matching tensors of an official ``best_model.pth`` into ``model`` (cast to its dtypes)."""
    skipped: list[str] = []

    def rename(key: str) -> str | None:
        new = official_key(key)
        if new is None:
            skipped.append(key)
        return new

    report = load_weights(model, path, strict=False, key_map=rename)
    total = len(model.state_dict())
    loaded = total - len(report.missing)
    if loaded == 0:
        raise CheckpointError(
            f"{path}: no tensor of the checkpoint matches the MIST model (not an official MIST file?)"
        )
    return InitReport(loaded, sorted(skipped), report.unexpected, report.missing)
