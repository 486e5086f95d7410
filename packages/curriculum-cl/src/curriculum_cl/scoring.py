"""Per-run outcome scores (paper Sec. 3.3, spec "Outcome metric per curriculum").

A run's accuracy matrix ``acc[i, j]`` is the test accuracy on experience ``j`` after training experience ``i``.
- t1 = ``acc[:, 0]`` (first experience after each experience),
- avg_i = mean_{j <= i} acc[i, j] (experiences seen so far),
- alpha = avg[-1] (final average accuracy), beta = t1[0] - t1[-1] (first-experience forgetting),
- F = 2 alpha / (beta alpha + 1) = 2 / (beta + 1/alpha).
"""

from __future__ import annotations

import numpy as np


def f_score(alpha: float | np.ndarray, beta: float | np.ndarray) -> float | np.ndarray:
    """F = 2*alpha / (beta*alpha + 1): a harmonic mean of alpha and 1/beta (higher is better)."""
    alpha = np.asarray(alpha, dtype=float)
    beta = np.asarray(beta, dtype=float)
    value = 2.0 * alpha / (beta * alpha + 1.0)
    return float(value) if value.ndim == 0 else value


def alpha_beta(acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """alpha and beta from accuracy matrices ``[..., T, T]`` (leading dims are runs)."""
    acc = np.asarray(acc, dtype=float)
    t = acc.shape[-1]
    seen = np.tril(np.ones((t, t)))
    avg = (acc * seen).sum(-1) / seen.sum(-1)
    alpha = avg[..., -1]
    beta = acc[..., 0, 0] - acc[..., -1, 0]
    return alpha, beta


def curriculum_scores(
    curriculum_ids: np.ndarray, alpha: np.ndarray, beta: np.ndarray
) -> dict[int, tuple[float, float, float]]:
    """Per curriculum: (mean alpha, mean beta, F of the means). The paper averages over seeds *before* F."""
    curriculum_ids = np.asarray(curriculum_ids)
    out = {}
    for cid in np.unique(curriculum_ids):
        sel = curriculum_ids == cid
        a, b = float(np.mean(alpha[sel])), float(np.mean(beta[sel]))
        out[int(cid)] = (a, b, float(f_score(a, b)))
    return out
