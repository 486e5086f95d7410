"""Evaluation metrics of the paper packages: numpy/torch in, Python float out.

Fractions (AUC, AP, accuracy, ARI, mBO, mIoU, recall, mAP) are in [0, 1], never percentages; cosine
similarities are raw cosines in [-1, 1] (papers often print them x100). scikit-learn and scipy do the
arithmetic where they fit; this module adds input checks and the paper conventions. Every invalid input
(empty, length or shape mismatch, NaN/inf, a single class where two are needed) raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import scipy.special
import torch
from sklearn.metrics import adjusted_rand_score, average_precision_score, roc_auc_score
from sklearn.metrics.cluster import contingency_matrix

__all__ = [
    "accuracy",
    "adjusted_rand_index",
    "average_precision",
    "clip_frame_consistency",
    "clip_text_alignment",
    "fid",
    "frechet_distance",
    "inception_score",
    "mean_best_overlap",
    "miou",
    "recall_at_k",
    "retrieval_map",
    "roc_auc",
    "video_level_auc",
]

ArrayLike = np.ndarray | torch.Tensor | Sequence[Any]
Positives = Sequence[int | Iterable[int]] | np.ndarray | torch.Tensor


# --------------------------------------------------------------------------------------------------- helpers
def _np(x: Any, name: str) -> np.ndarray:
    """Any array-like (torch tensor on any device, list, numpy) as a numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        return x.numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{name}: cannot convert to an array ({e})") from e


def _float_array(x: Any, name: str, ndim: int | tuple[int, ...]) -> np.ndarray:
    a = _np(x, name)
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if a.ndim not in ndims:
        raise ValueError(f"{name}: expected {' or '.join(f'{d}-D' for d in ndims)}, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: empty input")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name}: expected numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def _int_array(x: Any, name: str) -> np.ndarray:
    """Integer values (int or bool dtype, or floats that are whole numbers) as int64."""
    a = _np(x, name)
    if a.size == 0:
        raise ValueError(f"{name}: empty input")
    if a.dtype == bool or np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64)
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: contains NaN or inf")
        if np.all(a == np.round(a)):
            return a.astype(np.int64)
    raise ValueError(f"{name}: expected integer labels, got dtype {a.dtype}")


def _check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {name_a} has {len(a)} entries, {name_b} has {len(b)}")


def _binary_inputs(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = _float_array(scores, "scores", 1)
    y = _int_array(labels, "labels")
    if y.ndim != 1:
        raise ValueError(f"labels: expected 1-D, got shape {y.shape}")
    _check_same_length(s, y, "scores", "labels")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"labels: expected binary 0/1 labels, got values {np.unique(y)[:10].tolist()}")
    if y.min() == y.max():
        raise ValueError(f"labels: only one class present (all {int(y[0])}); need both 0 and 1")
    return s, y


def _seg_pair(true_seg: ArrayLike, pred_seg: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Integer maps as [B, H, W] (a single [H, W] map becomes B=1)."""
    t, p = _int_array(true_seg, "true_seg"), _int_array(pred_seg, "pred_seg")
    if t.shape != p.shape:
        raise ValueError(f"shape mismatch: true_seg {t.shape} vs pred_seg {p.shape}")
    if t.ndim == 2:
        t, p = t[None], p[None]
    if t.ndim != 3:
        raise ValueError(f"segmentation maps: expected [H, W] or [B, H, W], got shape {t.shape}")
    return t, p


def _unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{name}: contains an all-zero embedding (cosine similarity undefined)")
    return x / norms


# --------------------------------------------------------------------------------------------- classification
def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve (sklearn); label 1 is positive, higher score = more positive.

    Tied positive/negative pairs get half credit (the Mann-Whitney convention).
    """
    s, y = _binary_inputs(scores, labels)
    return float(roc_auc_score(y, s))


def average_precision(scores: ArrayLike, labels: ArrayLike) -> float:
    """Average precision (sklearn): sum_n (R_n - R_{n-1}) P_n, no interpolation; tied scores are one threshold."""
    s, y = _binary_inputs(scores, labels)
    return float(average_precision_score(y, s))


def accuracy(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Top-1 accuracy. ``predictions`` are class ids [N] or logits/probabilities [N, C] (argmax)."""
    p = _np(predictions, "predictions")
    if p.ndim == 2:
        p = _float_array(p, "predictions", 2).argmax(axis=1)
    elif p.ndim == 1:
        p = _int_array(p, "predictions")
    else:
        raise ValueError(f"predictions: expected class ids [N] or logits [N, C], got shape {p.shape}")
    y = _int_array(labels, "labels")
    if y.ndim != 1:
        raise ValueError(f"labels: expected 1-D, got shape {y.shape}")
    _check_same_length(p, y, "predictions", "labels")
    return float(np.mean(p == y))


def video_level_auc(clip_scores: ArrayLike, video_ids: ArrayLike, labels: ArrayLike) -> float:
    """ROC AUC over videos: the mean clip score of each video against its label.

    ``labels`` are per clip and must agree within a video. ``video_ids`` may be ints or strings.
    """
    s = _float_array(clip_scores, "clip_scores", 1)
    ids = _np(video_ids, "video_ids")
    y = _int_array(labels, "labels")
    if ids.ndim != 1 or y.ndim != 1:
        raise ValueError(f"video_ids and labels must be 1-D, got shapes {ids.shape} and {y.shape}")
    _check_same_length(s, ids, "clip_scores", "video_ids")
    _check_same_length(s, y, "clip_scores", "labels")
    uniq, inverse = np.unique(ids, return_inverse=True)
    n = len(uniq)
    lo = np.full(n, np.iinfo(np.int64).max)
    hi = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(lo, inverse, y)
    np.maximum.at(hi, inverse, y)
    if np.any(lo != hi):
        bad = uniq[lo != hi][:5].tolist()
        raise ValueError(f"labels disagree within video(s) {bad}: one label per video expected")
    video_scores = np.bincount(inverse, weights=s, minlength=n) / np.bincount(inverse, minlength=n)
    return roc_auc(video_scores, lo)


# ------------------------------------------------------------------------------------------------ segmentation
def adjusted_rand_index(
    true_seg: ArrayLike, pred_seg: ArrayLike, *, foreground_only: bool = False, ignore_index: int = 255
) -> float:
    """Adjusted Rand index (sklearn) per image on integer maps [B, H, W] or [H, W], averaged over images.

    Pixels where ``true_seg == ignore_index`` are dropped. ``foreground_only=True`` also drops true label 0
    (FG-ARI of the object-centric papers). Degenerate cases:

    * an image with no pixels left (e.g. no foreground in FG-ARI) is skipped; ValueError if all are skipped;
    * sklearn's convention is kept: two labelings that are both a single cluster score 1.0 (e.g. one true
      object predicted as one segment), while a single true cluster split into several scores 0.0.
    """
    t, p = _seg_pair(true_seg, pred_seg)
    scores = []
    for ti, pi in zip(t, p):
        keep = ti != ignore_index
        if foreground_only:
            keep &= ti != 0
        if keep.any():
            scores.append(adjusted_rand_score(ti[keep], pi[keep]))
    if not scores:
        what = "foreground " if foreground_only else ""
        raise ValueError(
            f"adjusted_rand_index: no image has {what}pixels outside ignore_index={ignore_index}"
        )
    return float(np.mean(scores))


def mean_best_overlap(true_seg: ArrayLike, pred_seg: ArrayLike, *, ignore_index: int = 255) -> float:
    """Mean best overlap (mBO): per image, each true segment except background 0 takes its max IoU over all
    predicted segments (every predicted label, 0 included, is a candidate); these are averaged per image,
    then over images.

    Pixels where ``true_seg == ignore_index`` are dropped from both maps. Images without a true foreground
    segment are skipped; ValueError if all are skipped.
    """
    t, p = _seg_pair(true_seg, pred_seg)
    per_image = []
    for ti, pi in zip(t, p):
        keep = ti != ignore_index
        t_labels, t_inv = np.unique(ti[keep], return_inverse=True)
        if not np.any(t_labels != 0):
            continue
        inter = contingency_matrix(t_inv, pi[keep]).astype(np.float64)  # [true segments, pred segments]
        union = inter.sum(1, keepdims=True) + inter.sum(0, keepdims=True) - inter
        best = (inter / union).max(axis=1)
        per_image.append(best[t_labels != 0].mean())
    if not per_image:
        raise ValueError("mean_best_overlap: no image has a true foreground segment (labels other than 0)")
    return float(np.mean(per_image))


def miou(true_seg: ArrayLike, pred_seg: ArrayLike, num_classes: int, *, ignore_index: int = 255) -> float:
    """Mean IoU of semantic segmentation over the whole set (not per image).

    One confusion matrix is accumulated over every image; IoU_c = TP / (TP + FP + FN) for each class c in
    ``range(num_classes)``; the mean is over classes present in the truth or the prediction (a class absent
    from both is left out, not counted as 0 or 1). Pixels where ``true_seg == ignore_index`` are dropped;
    any other label outside ``[0, num_classes)`` raises ValueError.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    t, p = _seg_pair(true_seg, pred_seg)
    keep = t != ignore_index
    t, p = t[keep], p[keep]
    if t.size == 0:
        raise ValueError(f"miou: every pixel is ignore_index={ignore_index}")
    for a, name in ((t, "true_seg"), (p, "pred_seg")):
        bad = (a < 0) | (a >= num_classes)
        if bad.any():
            raise ValueError(f"{name}: labels {np.unique(a[bad])[:10].tolist()} outside [0, {num_classes})")
    conf = np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    return float(np.mean(tp[present] / union[present]))


# --------------------------------------------------------------------------------------------------- retrieval
def _positive_lists(positives: Positives, q: int, g: int) -> list[np.ndarray]:
    """Positives as one int array per query: from a boolean mask [Q, G] or a sequence of ints/lists/sets."""
    if isinstance(positives, torch.Tensor | np.ndarray) and _np(positives, "positives").dtype == bool:
        mask = _np(positives, "positives")
        if mask.shape != (q, g):
            raise ValueError(f"shape mismatch: positives mask {mask.shape} vs similarity {(q, g)}")
        return [np.flatnonzero(row) for row in mask]
    if len(positives) != q:
        raise ValueError(
            f"length mismatch: similarity has {q} queries (rows), positives has {len(positives)}"
        )
    lists = []
    for i, ps in enumerate(positives):
        a = np.atleast_1d(_np(sorted(ps) if isinstance(ps, set | frozenset) else ps, "positives"))
        if a.size == 0:
            raise ValueError(f"positives: query {i} has no positive gallery item")
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"positives: query {i} has non-integer indices {a.tolist()}")
        if a.min() < 0 or a.max() >= g:
            raise ValueError(f"positives: query {i} has indices {a.tolist()} outside the gallery [0, {g})")
        lists.append(a)
    return lists


def _ranking(similarity: ArrayLike, positives: Positives) -> list[np.ndarray]:
    """Per query: the sorted 0-based ranks of its positives (descending score, ties by lower column index)."""
    sim = _float_array(similarity, "similarity", 2)
    q, g = sim.shape
    pos_lists = _positive_lists(positives, q, g)
    order = np.argsort(-sim, axis=1, kind="stable")
    rank_of = np.empty_like(order)
    rank_of[np.arange(q)[:, None], order] = np.arange(g)
    ranks = []
    for i, ps in enumerate(pos_lists):
        if ps.size == 0:
            raise ValueError(f"positives: query {i} has no positive gallery item")
        ranks.append(np.sort(rank_of[i, np.unique(ps)]))
    return ranks


def recall_at_k(
    similarity: ArrayLike, positives: Positives, ks: Iterable[int] = (1, 5, 10)
) -> dict[int, float]:
    """Recall@k of retrieval: the fraction of queries with at least one positive among the top k.

    ``similarity`` is [queries, gallery] (higher = better); ``positives[q]`` is the int, list or set of
    correct gallery columns of query q (e.g. Flickr30K's 5 captions per image; an int array [Q, P] works
    too), or a boolean mask shaped like ``similarity``. Ties are broken by the lower column index; a k beyond the gallery size means the whole
    gallery.
    """
    ranks = _ranking(similarity, positives)
    first = np.array([r[0] for r in ranks])
    out = {}
    for k in ks:
        if int(k) != k or k < 1:
            raise ValueError(f"ks: every k must be a positive integer, got {k}")
        out[int(k)] = float(np.mean(first < k))
    return out


def retrieval_map(similarity: ArrayLike, positives: Positives) -> float:
    """Mean average precision of retrieval: per query, the mean over its positives of precision at the rank
    of that positive; then the mean over queries. Same inputs and tie rule as :func:`recall_at_k`.
    """
    ranks = _ranking(similarity, positives)
    aps = [np.mean(np.arange(1, len(r) + 1) / (r + 1)) for r in ranks]
    return float(np.mean(aps))


# -------------------------------------------------------------------------------------------------- generation
class _Identity(torch.nn.Module):
    """Features in, features out: lets torchmetrics' FID accumulate features computed elsewhere."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _torchmetrics_fid(num_features: int):
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=_Identity(num_features), reset_real_features=True).double()


def frechet_distance(feats_a: ArrayLike, feats_b: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to features [N, D]:
    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), computed by torchmetrics' ``FrechetInceptionDistance``
    (float64 moments, the trace of the square root from the eigenvalues of S_a S_b).
    """
    a = _float_array(feats_a, "feats_a", 2)
    b = _float_array(feats_b, "feats_b", 2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dim mismatch: feats_a has D={a.shape[1]}, feats_b has D={b.shape[1]}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 samples per set for a covariance, got {len(a)} and {len(b)}")
    metric = _torchmetrics_fid(a.shape[1])
    metric.update(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)), real=True)
    metric.update(torch.from_numpy(np.ascontiguousarray(b, dtype=np.float64)), real=False)
    return float(metric.compute())


def _as_unit_images(images: ArrayLike, name: str) -> torch.Tensor:
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(_np(images, name))
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected a batch of images [N, ...], got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected uint8 or float images in [0, 1], got dtype {x.dtype}")
    x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or inf")
    if x.min() < 0 or x.max() > 1:
        raise ValueError(f"{name}: float images must lie in [0, 1], got [{x.min():.3g}, {x.max():.3g}]")
    return x


@torch.inference_mode()
def _features(
    extractor: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int
) -> np.ndarray:
    params = extractor.parameters() if isinstance(extractor, torch.nn.Module) else iter(())
    device = next(params, torch.empty(0)).device
    feats = [
        extractor(x[i : i + batch_size].to(device)).flatten(1).double().cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(feats).numpy()


def fid(
    images_a: ArrayLike,
    images_b: ArrayLike,
    feature_extractor: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 64,
) -> float:
    """Fréchet Inception Distance with an injected extractor (e.g. a locally loaded Inception pool3).

    Images are uint8 (divided by 255) or float in [0, 1]; the extractor receives float32 batches in [0, 1]
    on its own device and does any resizing/normalisation itself; its output is flattened to [N, D]. It runs
    in eval mode (its training flag is restored afterwards). Nothing is downloaded.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    xa, xb = _as_unit_images(images_a, "images_a"), _as_unit_images(images_b, "images_b")
    if xa.shape[1:] != xb.shape[1:]:
        raise ValueError(
            f"image shape mismatch: images_a {tuple(xa.shape[1:])} vs images_b {tuple(xb.shape[1:])}"
        )
    was_training = getattr(feature_extractor, "training", None)
    if was_training is not None:
        feature_extractor.eval()
    try:
        fa, fb = _features(feature_extractor, xa, batch_size), _features(feature_extractor, xb, batch_size)
    finally:
        if was_training:
            feature_extractor.train()
    return frechet_distance(fa, fb)


def inception_score(logits: ArrayLike, splits: int = 10) -> tuple[float, float]:
    """Inception Score from classifier logits [N, C]: exp(E_x KL(p(y|x) || p(y))) on each of ``splits``
    contiguous chunks (p(y) = chunk mean); returns (mean, std) over chunks (population std, as in the
    original code). Ranges from 1 (uniform or identical predictions) to C (confident and balanced).

    Kept here rather than torchmetrics' ``InceptionScore``, which shuffles the samples before splitting and reports
    the unbiased std: neither matches the reference code, and the shuffle makes the score depend on the global RNG.
    """
    lg = _float_array(logits, "logits", 2)
    if not 1 <= splits <= len(lg):
        raise ValueError(f"splits must be in [1, N={len(lg)}], got {splits}")
    scores = []
    for chunk in np.array_split(lg, splits):
        log_p = scipy.special.log_softmax(chunk, axis=1)
        log_py = scipy.special.logsumexp(log_p, axis=0) - np.log(len(chunk))
        kl = np.sum(np.exp(log_p) * (log_p - log_py), axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def clip_frame_consistency(frame_embeds: ArrayLike) -> float:
    """Tune-A-Video frame consistency: mean cosine similarity of consecutive frames' CLIP image embeddings.

    ``frame_embeds`` is [T, D] (T >= 2) or [B, T, D] (mean per video, then over videos). Raw cosine, not x100.
    """
    e = _float_array(frame_embeds, "frame_embeds", (2, 3))
    e = _unit_rows(e if e.ndim == 3 else e[None], "frame_embeds")
    if e.shape[1] < 2:
        raise ValueError(f"frame_embeds: need at least 2 frames, got {e.shape[1]}")
    cos = np.sum(e[:, 1:] * e[:, :-1], axis=-1)  # [B, T-1]
    return float(cos.mean(axis=1).mean())


def clip_text_alignment(frame_embeds: ArrayLike, text_embed: ArrayLike) -> float:
    """Tune-A-Video textual alignment: mean cosine similarity of each frame's CLIP image embedding with the
    prompt's CLIP text embedding. ``frame_embeds`` [T, D] with ``text_embed`` [D] (or [1, D]), or
    [B, T, D] with [B, D] (one prompt per video) or [D] (shared); mean per video, then over videos.
    """
    e = _float_array(frame_embeds, "frame_embeds", (2, 3))
    t = _float_array(text_embed, "text_embed", (1, 2))
    e = e if e.ndim == 3 else e[None]
    t = t if t.ndim == 2 else t[None]
    if t.shape[0] not in (1, e.shape[0]):
        raise ValueError(
            f"text_embed: expected 1 or {e.shape[0]} prompts for {e.shape[0]} videos, got {t.shape[0]}"
        )
    if t.shape[1] != e.shape[2]:
        raise ValueError(f"embedding dim mismatch: frame_embeds D={e.shape[2]}, text_embed D={t.shape[1]}")
    cos = np.sum(_unit_rows(e, "frame_embeds") * _unit_rows(t, "text_embed")[:, None, :], axis=-1)  # [B, T]
    return float(cos.mean(axis=1).mean())
