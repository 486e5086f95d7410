"""Agreement between curriculum rankings, and the statistics of the curriculum effect (paper Sec. 5, Figs. 4-6).

- binned normalised Hamming agreement "H" (official ``BinnedStringComparator``): rankings written as position-major
  strings, sliced by F-histogram bins; lower = more agreement; the last bin is reported, normalised so that the
  three comparisons (between algorithms, algorithm vs designer, algorithm vs random) sum to 1,
- top-K overlap with the designer's curricula above the 75th percentile, Recall@K, Spearman correlation,
- one-way ANOVA of per-run F across curricula, and its calibration under shuffled curriculum labels,
- the same agreement views against human results read from a CSV (``curriculum_id,phase,accuracy``).
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
from scipy import stats

from curriculum_cl.errors import DatasetError


def ranking_string(orders: list[tuple[int, ...]], scores: np.ndarray) -> str:
    """Orders sorted by score (highest first), written position-major: all first units, then all second units..."""
    ranked = [orders[i] for i in np.argsort(-np.asarray(scores), kind="stable")]
    return "".join(str(r[p]) for p in range(len(orders[0])) for r in ranked)


def bin_slices(
    scores: np.ndarray, n_bins: int, unit_len: int, *, official_bin_order: bool = True
) -> list[slice]:
    """String slices of each F-histogram bin (index 0 = lowest-score bin).

    The official code walks the bin sizes from the lowest-score bin while the strings run from the highest score:
    ``official_bin_order=True`` keeps that quirk (bin i's slice starts after the sizes of bins 0..i-1);
    ``False`` starts from the highest-score bin so that each slice covers its own bin's curricula.
    """
    counts = np.histogram(np.asarray(scores, dtype=float), bins=n_bins)[0]
    walk = range(n_bins) if official_bin_order else range(n_bins - 1, -1, -1)
    slices: dict[int, slice] = {}
    start = 0
    for i in walk:
        stop = start + unit_len * int(counts[i])
        slices[i] = slice(start, stop)
        start = stop
    return [slices[i] for i in range(n_bins)]


def hamming(a: str, b: str) -> int:
    """Number of differing positions of two equal-length strings."""
    if len(a) != len(b):
        raise ValueError(f"hamming: lengths differ ({len(a)} vs {len(b)})")
    return sum(x != y for x, y in zip(a, b))


def binned_hamming(
    str_a: str, str_b: str, slices_a: list[slice], slices_b: list[slice] | None = None
) -> np.ndarray:
    """Per-bin Hamming distance; with two binnings, the mean over both (as the official between-algorithm view)."""
    out = []
    for i, sa in enumerate(slices_a):
        da = hamming(str_a[sa], str_b[sa])
        if slices_b is None:
            out.append(float(da))
        else:
            sb = slices_b[i]
            out.append((da + hamming(str_a[sb], str_b[sb])) / 2.0)
    return np.array(out)


def hamming_agreement(
    f_by_algorithm: dict[str, np.ndarray],
    reference: np.ndarray,
    orders: list[tuple[int, ...]],
    *,
    n_bins: int = 5,
    official_bin_order: bool = True,
    n_random: int = 100,
    seed: int = 0,
) -> dict:
    """The last-bin (highest-F bin) Hamming views, raw and normalised to sum 1 over the three comparisons.

    ``reference`` is the designer score per curriculum (or a human score). Returns ``between`` (mean over algorithm
    pairs; NaN with one algorithm), per-algorithm ``reference`` and ``random`` distances.
    """
    rng = np.random.default_rng(seed)
    unit_len = len(orders[0])
    strings = {a: ranking_string(orders, f) for a, f in f_by_algorithm.items()}
    slices = {
        a: bin_slices(f, n_bins, unit_len, official_bin_order=official_bin_order)
        for a, f in f_by_algorithm.items()
    }
    ref_string = ranking_string(orders, reference)
    last = n_bins - 1
    pairs = list(itertools.combinations(f_by_algorithm, 2))
    between = [binned_hamming(strings[a], strings[b], slices[a], slices[b])[last] for a, b in pairs]
    to_ref = {a: binned_hamming(strings[a], ref_string, slices[a])[last] for a in f_by_algorithm}
    to_random = {}
    for a in f_by_algorithm:
        draws = []
        for _ in range(n_random):
            random_string = ranking_string(orders, rng.permutation(len(orders)).astype(float))
            draws.append(binned_hamming(strings[a], random_string, slices[a])[last])
        to_random[a] = float(np.mean(draws))
    between_mean = float(np.mean(between)) if between else float("nan")
    parts = [np.mean(list(to_ref.values())), np.mean(list(to_random.values()))]
    if between:
        parts.append(between_mean)
    total = float(np.sum(parts)) or 1.0
    return {
        "between_raw": between_mean,
        "reference_raw": {a: float(v) for a, v in to_ref.items()},
        "random_raw": to_random,
        "between": between_mean / total,
        "reference": {a: float(v) / total for a, v in to_ref.items()},
        "random": {a: float(v) / total for a, v in to_random.items()},
    }


def topk_overlap(f: np.ndarray, reference: np.ndarray, k: int, percentile: float = 75.0) -> tuple[int, float]:
    """|top-k curricula by F ∩ reference above its percentile|, and the count expected by chance."""
    top = set(np.argsort(-np.asarray(f), kind="stable")[:k].tolist())
    good = set(np.flatnonzero(np.asarray(reference) > np.percentile(reference, percentile)).tolist())
    return len(top & good), k * len(good) / len(f)


def recall_at_k(f: np.ndarray, reference: np.ndarray, ks: list[int]) -> dict[int, float]:
    """Fraction of the top-K curricula by F that are also in the reference's top K (random baseline K/n)."""
    order_f = np.argsort(-np.asarray(f), kind="stable")
    order_r = np.argsort(-np.asarray(reference), kind="stable")
    return {k: len(set(order_f[:k].tolist()) & set(order_r[:k].tolist())) / k for k in ks}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (NaN when either side is constant)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def anova_p(f_runs: np.ndarray, curriculum_ids: np.ndarray) -> float:
    """One-way ANOVA of per-run F across curricula (groups = curricula, members = seeds)."""
    groups = [f_runs[curriculum_ids == c] for c in np.unique(curriculum_ids)]
    return float(stats.f_oneway(*groups).pvalue)


def null_anova_pvalues(
    f_runs: np.ndarray, curriculum_ids: np.ndarray, n_shuffles: int, seed: int = 0
) -> np.ndarray:
    """ANOVA p-values with the curriculum labels permuted across runs (should be uniform on [0, 1])."""
    rng = np.random.default_rng(seed)
    return np.array([anova_p(f_runs, rng.permutation(curriculum_ids)) for _ in range(n_shuffles)])


def ks_uniform_p(pvalues: np.ndarray) -> float:
    """Kolmogorov-Smirnov p-value of the sample against Uniform(0, 1)."""
    return float(stats.kstest(pvalues, "uniform").pvalue)


def seed_std(f_runs: np.ndarray, curriculum_ids: np.ndarray) -> float:
    """Mean over curricula of the across-seed standard deviation of F (ddof 1)."""
    return float(np.mean([np.std(f_runs[curriculum_ids == c], ddof=1) for c in np.unique(curriculum_ids)]))


def load_human_scores(path: str | Path) -> dict[int, float]:
    """Human score per curriculum from a CSV with columns ``curriculum_id,phase,accuracy``.

    Each row is one participant's (or the mean) test accuracy (fraction) on all families seen after ``phase``;
    the score of a curriculum is the mean accuracy at its last phase.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"human results CSV not found: {path}")
    rows: dict[int, dict[int, list[float]]] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"curriculum_id", "phase", "accuracy"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(
                f"{path}: missing column(s) {sorted(missing)} (need curriculum_id,phase,accuracy)"
            )
        for line_no, row in enumerate(reader, start=2):
            try:
                cid, phase, acc = int(row["curriculum_id"]), int(row["phase"]), float(row["accuracy"])
            except ValueError:
                raise DatasetError(f"{path}:{line_no}: cannot parse row {row}") from None
            if not 0.0 <= acc <= 1.0:
                raise DatasetError(f"{path}:{line_no}: accuracy {acc} is not a fraction in [0, 1]")
            rows.setdefault(cid, {}).setdefault(phase, []).append(acc)
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return {cid: float(np.mean(phases[max(phases)])) for cid, phases in rows.items()}
