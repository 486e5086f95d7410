"""Retrieval metrics of the paper's protocols: GLDv2 mAP@100, negative flips, revisitop E/M/H, IJB-C 1:1 and 1:N.

All functions take a similarity matrix [queries, gallery] (higher = more similar; inner products of L2-normalised
features in this package) and break ties by the lower gallery index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def cosine_similarity(queries: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """Inner products of L2-normalised rows, [Q, G]."""
    if queries.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"feature dimensions differ: queries {queries.shape[1]}, gallery {gallery.shape[1]} (use ψ to map them)"
        )
    return F.normalize(queries.float(), dim=1) @ F.normalize(gallery.float(), dim=1).t()


def _top(similarity: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def map_at_k_gt(similarity, ground_truth: Sequence[Sequence[int]], k: int = 100) -> float:
    """GLDv2 mAP@k with explicit ground truth: per query Σ_{hits j ≤ k} precision@j / min(#GT, k), then the mean.

    Queries without ground truth count as AP 0 and stay in the mean (as upstream's evaluation).
    """
    sim = _np(similarity)
    if len(ground_truth) != sim.shape[0]:
        raise ValueError(f"{sim.shape[0]} queries but {len(ground_truth)} ground-truth lists")
    top = _top(sim, k)
    aps = []
    for row, gt in zip(top, ground_truth):
        gt_set = set(int(g) for g in gt)
        if not gt_set:
            aps.append(0.0)
            continue
        hits = np.array([int(g) in gt_set for g in row])
        precision = np.cumsum(hits) / np.arange(1, len(row) + 1)
        aps.append(float((precision * hits).sum() / min(len(gt_set), k)))
    return float(np.mean(aps)) if aps else 0.0


def map_at_k(similarity, query_labels, gallery_labels, k: int = 100) -> float:
    """GLDv2 mAP@k where a gallery item is relevant to a query of the same label."""
    q, g = _np(query_labels), _np(gallery_labels)
    return map_at_k_gt(similarity, [np.flatnonzero(g == label) for label in q], k)


def recall_at_1(similarity, query_labels, gallery_labels) -> float:
    """Fraction of queries whose top-1 gallery item has their label."""
    top1 = _top(_np(similarity), 1)[:, 0]
    return float(np.mean(_np(gallery_labels)[top1] == _np(query_labels)))


def negative_flip_rate(sim_before, sim_after, query_labels, gallery_labels) -> float:
    """Fraction of queries whose top-1 was right before the upgrade and is wrong after (RACT's negative flips)."""
    q, g = _np(query_labels), _np(gallery_labels)
    right_before = g[_top(_np(sim_before), 1)[:, 0]] == q
    right_after = g[_top(_np(sim_after), 1)[:, 0]] == q
    return float(np.mean(right_before & ~right_after))


# ------------------------------------------------------------------------------------------------------ revisitop
def _revisitop_ap(ranks: np.ndarray, num_positives: int) -> float:
    """revisitop's AP: trapezoid rule over the 0-based ranks of the positives (junk already removed)."""
    ap, step = 0.0, 1.0 / num_positives
    for j, rank in enumerate(ranks):
        p0 = 1.0 if rank == 0 else j / rank
        p1 = (j + 1) / (rank + 1)
        ap += (p0 + p1) * step / 2.0
    return ap


def _protocol(gnd: Mapping, name: str) -> tuple[np.ndarray, np.ndarray]:
    easy, hard, junk = (np.asarray(gnd.get(key, []), dtype=int) for key in ("easy", "hard", "junk"))
    if name == "easy":
        return easy, np.concatenate([junk, hard])
    if name == "medium":
        return np.concatenate([easy, hard]), junk
    return hard, np.concatenate([junk, easy])


def revisitop_map(similarity, gnd: Sequence[Mapping], kappas: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Revisited Oxford/Paris mAP for Easy (ok = easy; junk += hard), Medium (ok = easy + hard) and Hard (ok = hard;
    junk += easy), plus mP@k: junk images are removed from the ranking; queries without positives are skipped;
    the mP@k cutoff is capped at the rank of the last positive (as revisitop's code)."""
    sim = _np(similarity)
    if len(gnd) != sim.shape[0]:
        raise ValueError(f"{sim.shape[0]} queries but {len(gnd)} gnd entries")
    ranking = np.argsort(-sim, axis=1, kind="stable")
    out: dict[str, float] = {}
    for name in ("easy", "medium", "hard"):
        aps, precisions = [], []
        for row, entry in zip(ranking, gnd):
            ok, junk = _protocol(entry, name)
            if ok.size == 0:
                continue
            kept = row[~np.isin(row, junk)]
            ranks = np.flatnonzero(np.isin(kept, ok))
            aps.append(_revisitop_ap(ranks, ok.size))
            last = int(ranks.max()) + 1 if ranks.size else 1  # 1-based rank of the last positive
            precisions.append([float((ranks + 1 <= min(last, k)).sum() / min(last, k)) for k in kappas])
        out[name] = float(np.mean(aps)) if aps else float("nan")
        for i, kappa in enumerate(kappas):
            out[f"{name}_mp@{kappa}"] = (
                float(np.mean([p[i] for p in precisions])) if precisions else float("nan")
            )
    return out


# -------------------------------------------------------------------------------------------------------- IJB-C
def template_features(
    image_feats: torch.Tensor,
    templates: Sequence[int],
    media: Sequence[int],
    weights: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """IJB-C template features: (weighted) mean of image features within each media, summed over the template's
    media, then L2-normalised. Returns (template ids sorted, features [T, d])."""
    feats = _np(image_feats).astype(np.float64)
    if weights is not None:
        feats = feats * _np(weights)[:, None]
    t_arr, m_arr = _np(templates).astype(int), _np(media).astype(int)
    ids = np.unique(t_arr)
    out = np.zeros((ids.size, feats.shape[1]))
    for i, tid in enumerate(ids):
        in_t = t_arr == tid
        for mid in np.unique(m_arr[in_t]):
            out[i] += feats[in_t & (m_arr == mid)].mean(axis=0)
    out /= np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)
    return ids, out


def tar_at_far(scores, labels, fars: Sequence[float] = (1e-4,)) -> dict[float, float]:
    """1:1 verification: TAR at the threshold where the fraction of impostor pairs scoring above it is ≤ FAR."""
    s, y = _np(scores).astype(float), _np(labels).astype(bool)
    impostor = np.sort(s[~y])[::-1]
    genuine = s[y]
    if impostor.size == 0 or genuine.size == 0:
        raise ValueError("tar_at_far needs both genuine and impostor pairs")
    out = {}
    for far in fars:
        allowed = int(np.floor(far * impostor.size))  # impostors allowed strictly above the threshold
        threshold = impostor[allowed] if allowed < impostor.size else -np.inf
        out[far] = float(np.mean(genuine > threshold))
    return out


def tpir_at_fpir(
    similarity, probe_ids, gallery_ids, fpirs: Sequence[float] = (0.01, 0.1), rank: int = 1
) -> dict[float, float]:
    """1:N open-set identification (IJB-C mixed probes): mated probes (subject in the gallery) count as hits when
    the subject is within the top ``rank`` with a score above the threshold; the threshold lets a fraction FPIR of
    the non-mated probes' best scores through."""
    sim, p, g = _np(similarity), _np(probe_ids), _np(gallery_ids)
    mated = np.isin(p, g)
    if not mated.any() or mated.all():
        raise ValueError("tpir_at_fpir needs mated and non-mated probes")
    best = np.sort(sim[~mated].max(axis=1))[::-1]
    top = _top(sim[mated], rank)
    hit_rank = (g[top] == p[mated][:, None]).any(axis=1)
    true_score = np.array([sim[mated][i, g == pid].max() for i, pid in enumerate(p[mated])])
    out = {}
    for fpir in fpirs:
        allowed = int(np.floor(fpir * best.size))
        threshold = best[allowed] if allowed < best.size else -np.inf
        out[fpir] = float(np.mean(hit_rank & (true_score > threshold)))
    return out


def chance_map_at_k(query_labels, gallery_labels, k: int = 100, draws: int = 10, seed: int = 0) -> float:
    """mAP@k of random rankings (mean of ``draws`` draws): the floor an incompatible feature pair sits at."""
    rng = np.random.default_rng(seed)
    q, g = _np(query_labels), _np(gallery_labels)
    return float(np.mean([map_at_k(rng.random((q.size, g.size)), q, g, k) for _ in range(draws)]))
