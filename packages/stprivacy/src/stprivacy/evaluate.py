"""Evaluation protocol (Wu et al. TPAMI, as used by SPAct and STPrivacy).

Freeze the anonymizer, anonymize the train and test splits once, train a NEW action model and every attacker of an
ensemble from scratch on the anonymized train split, test on the anonymized test split. Top-1 action accuracy (higher
is better); privacy cMAP = mean per-attribute average precision and F1 = mean binary F1 at probability >= 0.5 (lower
is better), per attacker, worst case (per attribute the strongest attacker) and mean over attackers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.clips import Normalizer, TensorClips
from .models import STPrivacy
from .models.layers import tubelets_to_video

__all__ = [
    "AnonymizedSet",
    "anonymize_set",
    "fit_recognizer",
    "keep_mask_video",
    "predict",
    "privacy_metrics",
    "protocol",
    "worst_case",
]


def privacy_metrics(probs: np.ndarray, labels: np.ndarray, names: Sequence[str] | None = None) -> dict:
    """cMAP and F1 over attributes (fractions). Attributes whose labels are all 0 or all 1 are skipped and named."""
    from sklearn.metrics import average_precision_score, f1_score

    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels).astype(np.int64)
    if probs.shape != labels.shape or probs.ndim != 2:
        raise ValueError(f"probs {probs.shape} and labels {labels.shape} must both be [N, attributes]")
    names = list(names) if names is not None else [str(i) for i in range(labels.shape[1])]
    ap, f1, skipped = {}, {}, []
    for i, name in enumerate(names):
        y = labels[:, i]
        if y.min() == y.max():
            skipped.append(name)
            continue
        ap[name] = float(average_precision_score(y, probs[:, i]))
        f1[name] = float(f1_score(y, probs[:, i] >= 0.5, zero_division=0))
    return {
        "cmap": float(np.mean(list(ap.values()))) if ap else float("nan"),
        "f1": float(np.mean(list(f1.values()))) if f1 else float("nan"),
        "ap": ap,
        "f1_per_attribute": f1,
        "skipped": skipped,
    }


def worst_case(per_attacker: dict[str, dict]) -> dict:
    """Per attribute the strongest attacker (highest AP, highest F1); cMAP/F1 of that worst case, and the means."""
    results = list(per_attacker.values())
    names = list(results[0]["ap"])
    ap = {n: max(r["ap"][n] for r in results) for n in names}
    f1 = {n: max(r["f1_per_attribute"][n] for r in results) for n in names}
    return {
        "cmap": float(np.mean(list(ap.values()))),
        "f1": float(np.mean(list(f1.values()))),
        "ap": ap,
        "f1_per_attribute": f1,
        "cmap_mean_over_attackers": float(np.mean([r["cmap"] for r in results])),
        "f1_mean_over_attackers": float(np.mean([r["f1"] for r in results])),
    }


class AnonymizedSet(NamedTuple):
    """uint8 videos [N, C, T, H, W] as released, and the keep masks [N, L*N'] (None for raw video)."""

    videos: torch.Tensor
    keep: torch.Tensor | None


@torch.no_grad()
def anonymize_set(
    anonymizer: STPrivacy | None,
    clips: TensorClips,
    norm: Normalizer,
    *,
    keep_ratio: float | None = None,
    random_keep_seed: int | None = None,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> AnonymizedSet:
    """Run the test path over every clip; ``random_keep_seed`` keeps random tubelets (same counts) instead."""
    if anonymizer is None:
        return AnonymizedSet(clips.videos, None)
    anonymizer = anonymizer.to(device=device, dtype=dtype).eval()
    gen = (
        torch.Generator(device=device).manual_seed(random_keep_seed) if random_keep_seed is not None else None
    )
    videos, keeps = [], []
    for start in range(0, len(clips), batch_size):
        x = norm(clips.videos[start : start + batch_size].to(device)).to(dtype)
        res = anonymizer.anonymize(x, keep_ratio, generator=gen)
        videos.append(norm.to_uint8(res.video.float()).cpu())
        keeps.append(res.keep.float().cpu())
    return AnonymizedSet(torch.cat(videos), torch.cat(keeps))


def keep_mask_video(keep: torch.Tensor, anonymizer: STPrivacy) -> torch.Tensor:
    """The keep mask alone as a uint8 video (kept tubelets white, dropped black): what the hole pattern gives away."""
    rows = keep.unsqueeze(-1).expand(-1, -1, math.prod(anonymizer.tubelet) * anonymizer.in_chans)
    return (tubelets_to_video(rows, anonymizer.tubelet, anonymizer.grid, anonymizer.in_chans) * 255).to(
        torch.uint8
    )


def fit_recognizer(
    model: nn.Module,
    videos: torch.Tensor,
    targets: torch.Tensor,
    *,
    multilabel: bool,
    norm: Normalizer,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Train a fresh recognizer from scratch (AdamW, cosine lr, batches drawn from a seeded generator)."""
    model = model.to(device=device, dtype=dtype).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    gen = torch.Generator().manual_seed(seed)
    loss_fn: Callable = F.binary_cross_entropy_with_logits if multilabel else F.cross_entropy
    n = len(videos)
    order = torch.randperm(n, generator=gen)
    pos = 0
    for _ in range(steps):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        x = norm(videos[idx].to(device)).to(dtype)
        y = targets[idx].to(device)
        loss = loss_fn(model(x).float(), y.float() if multilabel else y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def predict(
    model: nn.Module,
    videos: torch.Tensor,
    norm: Normalizer,
    *,
    batch_size: int = 128,
    device="cpu",
    dtype=torch.float32,
) -> torch.Tensor:
    model = model.to(device=device, dtype=dtype).eval()
    out = [
        model(norm(videos[s : s + batch_size].to(device)).to(dtype)).float().cpu()
        for s in range(0, len(videos), batch_size)
    ]
    return torch.cat(out)


def protocol(
    train: AnonymizedSet,
    test: AnonymizedSet,
    train_clips: TensorClips,
    test_clips: TensorClips,
    *,
    make_model: Callable[[str, int], nn.Module],
    action_family: str,
    attackers: Sequence[str],
    num_classes: int,
    attribute_names: Sequence[str],
    norm: Normalizer,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    device="cpu",
    dtype=torch.float32,
) -> dict:
    """A fresh action model and a fresh attacker of every family on ``train``, scored on ``test``."""
    common = dict(norm=norm, steps=steps, lr=lr, batch_size=batch_size, device=device, dtype=dtype)
    torch.manual_seed(seed)
    action = fit_recognizer(
        make_model(action_family, num_classes),
        train.videos,
        train_clips.actions,
        multilabel=False,
        seed=seed,
        **common,
    )
    top1 = float(
        (predict(action, test.videos, norm, device=device, dtype=dtype).argmax(1) == test_clips.actions)
        .float()
        .mean()
    )
    per_attacker = {}
    for k, family in enumerate(attackers):
        torch.manual_seed(seed * 1000 + k + 1)
        model = fit_recognizer(
            make_model(family, len(attribute_names)),
            train.videos,
            train_clips.privacy,
            multilabel=True,
            seed=seed * 1000 + k + 1,
            **common,
        )
        probs = torch.sigmoid(predict(model, test.videos, norm, device=device, dtype=dtype)).numpy()
        per_attacker[family] = privacy_metrics(probs, test_clips.privacy.numpy(), attribute_names)
    return {"top1": top1, "attackers": per_attacker, "worst": worst_case(per_attacker)}
