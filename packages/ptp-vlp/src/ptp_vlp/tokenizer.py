"""BLIP's tokenizer: an uncased WordPiece ``vocab.txt`` folder plus ``[DEC]`` (bos) and ``[ENC]`` (30524 ids for BERT).

transformers 5's ``BertTokenizer(vocab_file=...)`` silently ignores the file and maps every word to ``[UNK]``;
``BertTokenizer.from_pretrained(folder)`` reads it. The folder is always a local path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["SPECIAL_TOKENS", "load_tokenizer", "token_ids", "tokenize", "write_vocab"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def load_tokenizer(folder: str | Path) -> Any:
    """``BertTokenizer`` from a local folder holding ``vocab.txt``, with ``[DEC]`` and ``[ENC]`` added (BLIP's
    ``init_tokenizer``)."""
    from transformers import BertTokenizer

    folder = Path(folder)
    if not (folder / "vocab.txt").is_file():
        raise FileNotFoundError(f"tokenizer folder {folder} has no vocab.txt")
    tok = BertTokenizer.from_pretrained(str(folder), local_files_only=True, do_lower_case=True)
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    if tok.convert_tokens_to_ids("the") == tok.unk_token_id and len(tok) > 1000:
        raise ValueError(f"{folder}/vocab.txt was not read (common words map to [UNK])")
    return tok


def token_ids(tok: Any) -> dict[str, int]:
    """The ids a ``BLIPConfig`` needs: vocabulary size and the special tokens."""
    return {
        "vocab_size": len(tok),
        "pad_token_id": tok.pad_token_id,
        "cls_token_id": tok.cls_token_id,
        "sep_token_id": tok.sep_token_id,
        "bos_token_id": tok.convert_tokens_to_ids("[DEC]"),
        "enc_token_id": tok.convert_tokens_to_ids("[ENC]"),
    }


def tokenize(tok: Any, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` padded to ``max_length`` tokens (BLIP pads to the longest; a fixed length
    keeps steps comparable and exactly resumable), truncated there."""
    enc = tok(list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def write_vocab(folder: str | Path, words: Sequence[str]) -> Path:
    """A small WordPiece folder (``vocab.txt``: the BERT specials, then ``words``), e.g. for synthetic data."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = list(SPECIAL_TOKENS) + [w for w in dict.fromkeys(words) if w not in SPECIAL_TOKENS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return folder
