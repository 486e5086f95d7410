"""Evaluation: top-1 accuracy (and top-10 open-ended), per annotation type, per-qid predictions, and where the
synthetic data says which segment answers a question, how often the selector found it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from mist_videoqa.data.dataset import QADataset, collate
from mist_videoqa.models.mist import MIST

__all__ = ["evaluate_model", "model_inputs", "per_qid", "predict", "score"]

_INPUTS = (
    "video",
    "q_feat",
    "question_ids",
    "question_mask",
    "candidate_ids",
    "candidate_mask",
    "event_segment",
)


def model_inputs(
    batch: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """The model's keyword arguments from a collated batch, on ``device`` (float inputs cast to ``dtype``)."""
    out = {}
    for key in _INPUTS:
        if key in batch:
            value = batch[key].to(device)
            out[key] = value.to(dtype) if value.is_floating_point() else value
    return out


@torch.no_grad()
def predict(
    model: MIST,
    dataset: QADataset,
    *,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """Predictions over ``dataset`` in order: top-10 answers, answers, and each layer's chosen segments/regions."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    top, answers, segments, regions = [], [], [], []
    for batch in loader:
        out = model(**model_inputs(batch, device, dtype))
        k = min(10, out.logits.shape[1])
        top.append(out.logits.float().topk(k, dim=1).indices.cpu())
        answers.append(batch["answer"])
        if out.selections[0].segments is not None:
            segments.append(torch.stack([s.segments for s in out.selections], 1).cpu())
            regions.append(torch.stack([s.regions for s in out.selections], 1).cpu())
    result: dict[str, Any] = {
        "top": torch.cat(top).numpy(),
        "answer": torch.cat(answers).numpy(),
        "mode": model.mode,
    }
    if segments:
        result["segments"] = torch.cat(segments).numpy()  # [N, layers, topk]
        result["regions"] = torch.cat(regions).numpy()  # [N, layers, topk*F, topj]
    return result


def _hit_rates(dataset: QADataset, pred: dict[str, Any], frames_per_segment: int) -> dict[str, Any]:
    events = np.array([qa.event_segment for qa in dataset.qas])
    if "segments" not in pred or (events < 0).any():
        return {}
    segs, regs = pred["segments"], pred["regions"]
    n_layers = segs.shape[1]
    seg_hits = (segs == events[:, None, None]).any(axis=2).mean(axis=0)  # per layer
    region_hits = []
    for layer in range(n_layers):
        found = []
        for i, qa in enumerate(dataset.qas):
            slots = np.nonzero(segs[i, layer] == qa.event_segment)[0]
            if not len(slots) or not qa.key_regions:
                continue
            first = slots[0] * frames_per_segment
            found += [qa.key_regions[f] in regs[i, layer, first + f] for f in range(frames_per_segment)]
        region_hits.append(float(np.mean(found)) if found else 0.0)
    out = {
        "segment_hit_rate": float(seg_hits[-1]),
        "region_hit_rate": region_hits[-1],
        "segment_hit_rate_best_layer": float(seg_hits.max()),
    }
    if n_layers > 1:
        out["segment_hit_rate_per_layer"] = [float(h) for h in seg_hits]
        out["region_hit_rate_per_layer"] = region_hits
    return out


def score(dataset: QADataset, pred: dict[str, Any], frames_per_segment: int) -> dict[str, Any]:
    """``acc`` (unknown answers count as wrong), ``acc10`` (open-ended), ``per_type``, hit rates, ``mode``."""
    answers, top = pred["answer"], pred["top"]
    correct = top[:, 0] == answers
    metrics: dict[str, Any] = {"acc": float(correct.mean()), "n": int(len(answers)), "mode": pred["mode"]}
    if top.shape[1] >= 10:
        metrics["acc10"] = float((top == answers[:, None]).any(axis=1).mean())
    per_type: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for qa, ok in zip(dataset.qas, correct):
        for field, values in qa.types.items():
            for value in values:
                per_type[field][value].append(bool(ok))
    metrics["per_type"] = {
        f: {v: float(np.mean(h)) for v, h in sorted(d.items())} for f, d in per_type.items()
    }
    metrics.update(_hit_rates(dataset, pred, frames_per_segment))
    return metrics


def per_qid(dataset: QADataset, pred: dict[str, Any]) -> dict[str, dict[str, int]]:
    """``{qid: {"prediction": id, "answer": id}}`` (the released ``val-{acc}.json``, with the answer beside it)."""
    return {
        qa.qid: {"prediction": int(p), "answer": int(a)}
        for qa, p, a in zip(dataset.qas, pred["top"][:, 0], pred["answer"])
    }


def evaluate_model(
    model: MIST,
    dataset: QADataset,
    *,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, raw predictions) of ``model`` on ``dataset``."""
    pred = predict(model, dataset, batch_size=batch_size, device=device, dtype=dtype)
    return score(dataset, pred, model.config.frames_per_segment), pred
