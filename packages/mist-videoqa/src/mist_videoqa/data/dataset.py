"""The QA dataset on h5 features, BERT tokenisation (local vocab only) and batching."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mist_videoqa.config import DataConfig
from mist_videoqa.data.annotations import QA, load_answer_vocab, load_qas, load_star_row_keys
from mist_videoqa.data.features import FeatureStore
from mist_videoqa.models.config import MISTConfig

__all__ = ["QADataset", "answer_tokens", "build_dataset", "collate", "feature_paths", "load_tokenizer"]


def load_tokenizer(vocab_file: str = "") -> Any:
    """A BERT WordPiece tokenizer from a local ``vocab.txt`` (or a folder holding one); "" = the packaged tiny vocab."""
    from transformers import BertTokenizer

    if vocab_file:
        path = Path(vocab_file)
        path = path / "vocab.txt" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"{path}: BERT vocabulary not found (data.vocab_file)")
    else:
        path = Path(str(resources.files("mist_videoqa") / "data" / "tiny_vocab.txt"))
    lines = path.read_text(encoding="utf-8").splitlines()
    vocab = {token: i for i, token in enumerate(line.rstrip("\n") for line in lines)}
    return BertTokenizer(vocab=vocab, do_lower_case=True)


def feature_paths(data: DataConfig) -> tuple[Path, Path]:
    """The frame/crop and the question feature files of ``data`` (defaults under ``root/feats/<dataset>``)."""
    feats = Path(data.root) / "feats" / data.dataset
    video = Path(data.features) if data.features else feats / "frame_feat" / "clip_patch_feat_all.h5"
    text = Path(data.text_features) if data.text_features else feats / "text_feat" / "clip_text_feat.h5"
    return video, text


def _token_lists(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    if not texts:
        return []
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


def answer_tokens(tokenizer: Any, vocab: dict[str, int], amax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and mask [V, <=amax] of the open-ended answers, row = answer id."""
    answers = [a for a, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    return _pad(_token_lists(tokenizer, answers, amax))


def _pad(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


@dataclass
class _Text:
    question: list[int]
    candidates: list[list[int]]


class QADataset(Dataset):
    """Items: video [T, 1+R, D], q_feat [D], question tokens, answer, (candidates), event segment, index."""

    def __init__(
        self,
        qas: list[QA],
        video: FeatureStore,
        text: FeatureStore,
        tokenizer: Any,
        model: MISTConfig,
        source: str,
        feature_scale: float = 1.0,
    ):
        if not qas:
            raise ValueError(f"{source}: no questions")
        video.check([qa.feature_key for qa in qas], source)
        text.check([qa.qid for qa in qas], source)
        if model.mc and any(len(qa.choices) != model.mc for qa in qas):
            raise ValueError(f"{source}: every question needs model.mc={model.mc} choices")
        if not model.mc and any(qa.choices for qa in qas):
            raise ValueError(f"{source}: multiple-choice annotations need model.mc > 0")
        self.qas, self.video, self.text = qas, video, text
        self.feature_scale = feature_scale
        questions = _token_lists(tokenizer, [qa.question for qa in qas], model.qmax)
        pairs = [f"{qa.question} [SEP] {c}" for qa in qas for c in qa.choices]
        flat = iter(_token_lists(tokenizer, pairs, model.amax))
        self.tokens = [_Text(q, [next(flat) for _ in qa.choices]) for q, qa in zip(questions, qas)]

    def __len__(self) -> int:
        return len(self.qas)

    def _video(self, key: str) -> np.ndarray:
        video = np.asarray(self.video[key], dtype=np.float32)
        return video * np.float32(self.feature_scale) if self.feature_scale != 1.0 else video

    def __getitem__(self, index: int) -> dict[str, Any]:
        qa = self.qas[index]
        return {
            "video": torch.from_numpy(self._video(qa.feature_key)),
            "q_feat": torch.from_numpy(np.asarray(self.text[qa.qid], dtype=np.float32)),
            "question": self.tokens[index].question,
            "candidates": self.tokens[index].candidates,
            "answer": qa.answer,
            "event_segment": qa.event_segment,
            "index": index,
        }


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack features; pad token lists with 0 to the batch maximum (BERT pad id)."""
    ids, mask = _pad([it["question"] for it in items])
    batch = {
        "video": torch.stack([it["video"] for it in items]),
        "q_feat": torch.stack([it["q_feat"] for it in items]),
        "question_ids": ids,
        "question_mask": mask,
        "answer": torch.tensor([it["answer"] for it in items]),
        "event_segment": torch.tensor([it["event_segment"] for it in items]),
        "index": torch.tensor([it["index"] for it in items]),
    }
    if items[0]["candidates"]:
        n = len(items[0]["candidates"])
        cids, cmask = _pad([c for it in items for c in it["candidates"]])
        batch["candidate_ids"], batch["candidate_mask"] = (
            cids.view(len(items), n, -1),
            cmask.view(len(items), n, -1),
        )
    return batch


def build_dataset(
    data: DataConfig,
    model: MISTConfig,
    split: str,
    tokenizer: Any,
    stores: dict[str, FeatureStore] | None = None,
) -> QADataset:
    """The dataset of one split; ``stores`` caches the opened feature files across splits."""
    stores = {} if stores is None else stores
    video_path, text_path = feature_paths(data)
    qas = load_qas(data.root, data.dataset, split)
    if data.max_items:
        qas = qas[: data.max_items]
    if "video" not in stores:
        keys = load_star_row_keys(data.root) if data.dataset == "star" else None
        shape = (model.num_frames, model.num_regions + 1, model.feature_dim)
        stores["video"] = FeatureStore(
            video_path, shape, row_keys=keys, preload=data.preload, what="frame features"
        )
        stores["text"] = FeatureStore(text_path, (model.feature_dim,), preload=True, what="question features")
    if not model.mc and data.dataset in ("agqa", "envqa"):
        vocab = load_answer_vocab(data.root, data.dataset)
        if len(vocab) != model.num_answers:
            raise ValueError(
                f"vocab.json has {len(vocab)} answers but model.num_answers is {model.num_answers}"
            )
    return QADataset(
        qas,
        stores["video"],
        stores["text"],
        tokenizer,
        model,
        f"{data.dataset} split {split!r}",
        feature_scale=data.feature_scale,
    )
