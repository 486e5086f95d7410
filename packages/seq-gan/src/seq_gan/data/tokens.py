"""Token caches: int16 grids [N, h, w] + labels, stamped with the tokenizer's token-space hash (safetensors)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file

from visioncore.files import atomic_path


@dataclass
class TokenCache:
    tokens: torch.Tensor  # [N, h, w] int16
    labels: torch.Tensor  # [N] int64 (-1: unlabelled)
    tokenizer_hash: str
    num_codes: int


def save_tokens(path: str | os.PathLike, cache: TokenCache) -> None:
    if cache.tokens.ndim != 3 or cache.tokens.shape[0] != cache.labels.shape[0]:
        raise ValueError(
            f"tokens must be [N, h, w] with N labels, got {tuple(cache.tokens.shape)} and {tuple(cache.labels.shape)}"
        )
    meta = {"tokenizer_hash": cache.tokenizer_hash, "num_codes": str(cache.num_codes)}
    tensors = {
        "tokens": cache.tokens.to(torch.int16).contiguous(),
        "labels": cache.labels.long().contiguous(),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_tokens(
    path: str | os.PathLike,
    *,
    expected_hash: str | None = None,
    grid: int | None = None,
    num_codes: int | None = None,
) -> TokenCache:
    """Read a cache; refuse one of another tokenizer (hash), another grid or vocabulary, or a malformed file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: token cache not found (write one with `seq-gan encode`)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tokens, labels = f.get_tensor("tokens"), f.get_tensor("labels")
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path}: not a seq-gan token cache ({str(err).splitlines()[0]})") from None
    if "tokenizer_hash" not in meta or "num_codes" not in meta:
        raise ValueError(f"{path}: token cache without tokenizer hash / num_codes metadata")
    if tokens.ndim != 3 or tokens.shape[1] != tokens.shape[2] or labels.shape != (tokens.shape[0],):
        raise ValueError(
            f"{path}: tokens must be square grids [N, h, h] with N labels, got {tuple(tokens.shape)}"
        )
    if grid is not None and tokens.shape[1] != grid:
        raise ValueError(
            f"{path}: token grids are {tokens.shape[1]}x{tokens.shape[2]}, the model expects {grid}x{grid}"
        )
    if expected_hash is not None and meta["tokenizer_hash"] != expected_hash:
        raise ValueError(
            f"{path}: tokens come from another tokenizer (hash {meta['tokenizer_hash']}, this tokenizer {expected_hash})"
        )
    cache = TokenCache(tokens, labels, meta["tokenizer_hash"], int(meta["num_codes"]))
    if num_codes is not None and cache.num_codes != num_codes:
        raise ValueError(f"{path}: tokens use {cache.num_codes} codes, the model expects {num_codes}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= cache.num_codes):
        raise ValueError(f"{path}: token ids outside [0, {cache.num_codes})")
    return cache
