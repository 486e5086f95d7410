"""Curriculum Designer (paper Sec. 4; spec "Curriculum Designer, exact computation").

1. class prototypes = mean embedding of N samples per class (mean of per-batch means, batch 64),
2. D = cosine (or Euclidean) distance between prototypes, zero diagonal,
3. row normalisation D~[i, j] = D[i, j] / sum_j D[i, j],
4. v_i = Var_j D~[i, :] (zero diagonal included), normalised to sum 1,
5. score of c = (c1..cn): S = 1 - v_c1, then for t = 1, 2, ...: S += (1 - D~[cur, c_{n+1-t}]) + D~[cur, c_{t+1}],
   cur = c_{t+1}, stopping once 1 + 2t >= n ("far next, near mirror"),
6. generator: the 2 lowest-variance first classes; the back filled with the nearest unused class and the front with
   the farthest unused one, every choice relative to the first class (the official code never advances it).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.distance import cdist

from curriculum_cl.errors import CurriculumError

METRICS = ("cosine", "euclidean")


def class_prototypes(features: torch.Tensor | np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Prototype of one class: the mean of per-batch means (as the official notebook), shape [D]."""
    feats = torch.as_tensor(features, dtype=torch.float64)
    means = torch.stack([chunk.mean(0) for chunk in feats.split(batch_size)])
    return means.mean(0).numpy()


def distance_matrix(prototypes: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Pairwise prototype distances with an exact zero diagonal."""
    if metric not in METRICS:
        raise CurriculumError(f"designer.metric: unknown metric {metric!r}; choose one of {METRICS}")
    dist = cdist(np.asarray(prototypes, dtype=float), np.asarray(prototypes, dtype=float), metric=metric)
    np.fill_diagonal(dist, 0.0)
    return dist


def normalise_rows(distances: np.ndarray) -> np.ndarray:
    """D~[i, j] = D[i, j] / sum_j D[i, j]."""
    distances = _check_distances(distances)
    return distances / distances.sum(axis=1, keepdims=True)


def variance_weights(normalised: np.ndarray) -> np.ndarray:
    """v_i = Var_j D~[i, :] including the zero diagonal, normalised to sum 1 (low = 'central' class)."""
    var = np.var(normalised, axis=1)
    return var / var.sum()


def score_order(distances: np.ndarray, order: tuple[int, ...] | list[int]) -> float:
    """Designer score of a class order, from the raw distance matrix (zero diagonal); higher is better."""
    dn = normalise_rows(distances)
    v = variance_weights(dn)
    order = [int(c) for c in order]
    n = len(order)
    if sorted(order) != list(range(n)) or n != len(dn):
        raise CurriculumError(f"order {order} is not a permutation of 0..{len(dn) - 1}")
    score = 1.0 - v[order[0]]
    cur = order[0]
    t = 1
    while True:
        score += (1.0 - dn[cur, order[n - t]]) + dn[cur, order[t]]
        cur = order[t]
        if 1 + 2 * t >= n:
            break
        t += 1
    return float(score)


def rank_orders(distances: np.ndarray, orders: list[tuple[int, ...]]) -> np.ndarray:
    """Designer scores of many orders (same indexing as ``orders``)."""
    return np.array([score_order(distances, o) for o in orders])


def generate_curricula(distances: np.ndarray, num_starts: int = 2) -> list[tuple[int, ...]]:
    """The designer's generated orders, one per low-variance first class (official GenerateCurriculum)."""
    dn = normalise_rows(distances)
    v = variance_weights(dn)
    n = len(dn)
    out = []
    for first in np.argsort(v, kind="stable")[:num_starts]:
        order: list[int | None] = [None] * n
        order[0] = int(first)
        unused = [c for c in range(n) if c != first]
        front, back = 1, n - 1
        fill_back = True
        while unused:
            # Every choice is relative to the first class: the official code never advances it.
            by_distance = sorted(unused, key=lambda c: dn[first, c])
            if fill_back:
                chosen, order[back] = by_distance[0], by_distance[0]
                back -= 1
            else:
                chosen, order[front] = by_distance[-1], by_distance[-1]
                front += 1
            unused.remove(chosen)
            fill_back = not fill_back
        out.append(tuple(int(c) for c in order))
    return out


def _check_distances(distances: np.ndarray) -> np.ndarray:
    distances = np.asarray(distances, dtype=float)
    if distances.ndim != 2 or distances.shape[0] != distances.shape[1]:
        raise CurriculumError(f"distance matrix must be square, got shape {distances.shape}")
    if not np.allclose(np.diag(distances), 0.0):
        raise CurriculumError("distance matrix must have a zero diagonal")
    return distances
