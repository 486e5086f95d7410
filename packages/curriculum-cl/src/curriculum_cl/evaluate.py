"""``compare``: agreement between the machines' curriculum rankings, the designer's, random and (optionally) humans'.

Reads a sweep folder (``results.csv``, ``designer.json``) and writes ``agreement.json``, ``agreement.csv`` and the
plots ``f_per_curriculum.png`` (F per curriculum, mean +- std over seeds), ``designer_vs_f.png``,
``recall_at_k.png`` and ``distance_heatmap.png``.
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from curriculum_cl import analysis
from curriculum_cl.config import AnalysisConfig
from curriculum_cl.errors import DatasetError
from curriculum_cl.scoring import f_score
from curriculum_cl.train import read_results
from visioncore.files import atomic_path, atomic_write_json
from visioncore.viz import plot_curves


def load_sweep(folder: Path) -> tuple[list[dict], dict]:
    results, designer = folder / "results.csv", folder / "designer.json"
    for path in (results, designer):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (run `curriculum-cl sweep --out {folder}` first)")
    rows = read_results(results)
    if not rows:
        raise DatasetError(f"{results}: no runs")
    return rows, json.loads(designer.read_text())


def per_algorithm(rows: list[dict], num_curricula: int) -> dict[str, dict[str, np.ndarray]]:
    """Per algorithm: per-run arrays and per-curriculum alpha/beta means and F of the means (NaN if not run)."""
    out = {}
    for alg in sorted({r["algorithm"] for r in rows}):
        sel = [r for r in rows if r["algorithm"] == alg]
        cids = np.array([r["curriculum_id"] for r in sel])
        alpha, beta, f_run = (np.array([r[k] for r in sel]) for k in ("alpha", "beta", "f"))
        a_mean = np.full(num_curricula, np.nan)
        b_mean = np.full(num_curricula, np.nan)
        f_std = np.full(num_curricula, np.nan)
        for c in np.unique(cids):
            a_mean[c], b_mean[c] = alpha[cids == c].mean(), beta[cids == c].mean()
            f_std[c] = f_run[cids == c].std()
        out[alg] = {
            "cids": cids,
            "alpha": alpha,
            "beta": beta,
            "f_run": f_run,
            "f": f_score(a_mean, b_mean),
            "f_std": f_std,
            "alpha_mean": a_mean,
            "beta_mean": b_mean,
        }
    return out


def compare(folder: str | Path, cfg: AnalysisConfig, out: str | Path | None = None) -> dict:
    """The agreement table of a sweep (see module docstring)."""
    folder = Path(folder)
    out = Path(out) if out else folder
    out.mkdir(parents=True, exist_ok=True)
    rows, designer = load_sweep(folder)
    orders = [tuple(int(ch) for ch in o) for o in designer["orders"]]
    cd = np.array(designer["scores"])
    algs = per_algorithm(rows, len(orders))
    ran = np.flatnonzero(np.all([np.isfinite(a["f"]) for a in algs.values()], axis=0))
    if len(ran) < 3:
        raise DatasetError(f"{folder}: fewer than 3 curricula ran for every algorithm")
    sub_orders = [orders[i] for i in ran]
    f_by_alg = {a: v["f"][ran] for a, v in algs.items()}
    hamming = analysis.hamming_agreement(
        f_by_alg,
        cd[ran],
        sub_orders,
        n_bins=cfg.n_bins,
        official_bin_order=cfg.official_bin_order,
        n_random=cfg.random_strings,
    )
    table: dict = {"curricula": len(ran), "hamming_between_algorithms": hamming["between"], "algorithms": {}}
    for alg, v in algs.items():
        f = v["f"][ran]
        table["algorithms"][alg] = {
            "runs": len(v["f_run"]),
            "alpha_mean": float(np.mean(v["alpha"])),
            "beta_mean": float(np.mean(v["beta"])),
            "f_mean": float(np.nanmean(f)),
            "anova_p": analysis.anova_p(v["f_run"], v["cids"])
            if len(v["f_run"]) > len(ran)
            else float("nan"),
            "seed_std_f": analysis.seed_std(v["f_run"], v["cids"])
            if len(v["f_run"]) > len(ran)
            else float("nan"),
            "spearman_designer_vs_f": analysis.spearman(cd[ran], f),
            "hamming_designer": hamming["reference"][alg],
            "hamming_random": hamming["random"][alg],
            "topk_overlap": {
                str(k): analysis.topk_overlap(f, cd[ran], k, cfg.percentile)
                for k in cfg.top_k
                if k <= len(ran)
            },
            "recall_at_k": {
                str(k): r
                for k, r in analysis.recall_at_k(
                    f, cd[ran], list(range(1, min(cfg.recall_k, len(ran)) + 1))
                ).items()
            },
            "best_curricula": ["".join(map(str, sub_orders[i])) for i in np.argsort(-f, kind="stable")[:5]],
        }
    table["spearman_between_algorithms"] = {
        f"{a}-{b}": analysis.spearman(f_by_alg[a], f_by_alg[b])
        for a, b in itertools.combinations(f_by_alg, 2)
    }
    if cfg.human_csv:
        table["humans"] = _human_view(cfg, f_by_alg, cd[ran], sub_orders, ran)
    atomic_write_json(out / "agreement.json", table, indent=1)
    _write_csv(out / "agreement.csv", table)
    _plots(out, algs, cd, ran, orders, np.array(designer["distances"]), cfg)
    return table


def _human_view(cfg: AnalysisConfig, f_by_alg, cd, orders, ran) -> dict:
    human = analysis.load_human_scores(cfg.human_csv)
    pos = {int(c): i for i, c in enumerate(ran)}
    shared = [c for c in sorted(human) if c in pos]
    if len(shared) < 3:
        raise DatasetError(f"{cfg.human_csv}: fewer than 3 of its curricula are in the sweep")
    idx = [pos[c] for c in shared]
    h = np.array([human[c] for c in shared])
    sub = [orders[i] for i in idx]
    ham = analysis.hamming_agreement(
        {"humans": h},
        cd[idx],
        sub,
        n_bins=min(cfg.n_bins, len(shared)),
        official_bin_order=cfg.official_bin_order,
        n_random=cfg.random_strings,
    )
    out = {
        "curricula": shared,
        "scores": h.tolist(),
        "spearman_designer_vs_humans": analysis.spearman(cd[idx], h),
        "hamming_designer_vs_humans": ham["reference"]["humans"],
        "hamming_random_vs_humans": ham["random"]["humans"],
    }
    for alg, f in f_by_alg.items():
        out[f"spearman_{alg}_vs_humans"] = analysis.spearman(f[idx], h)
    return out


def _write_csv(path: Path, table: dict) -> None:
    keys = [
        "runs",
        "alpha_mean",
        "beta_mean",
        "f_mean",
        "anova_p",
        "seed_std_f",
        "spearman_designer_vs_f",
        "hamming_designer",
        "hamming_random",
    ]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["algorithm", *keys, "hamming_between_algorithms"])
        for alg, row in table["algorithms"].items():
            writer.writerow(
                [alg, *[f"{row[k]:.6g}" for k in keys], f"{table['hamming_between_algorithms']:.6g}"]
            )


def _plots(
    out: Path, algs: dict, cd: np.ndarray, ran: np.ndarray, orders, distances: np.ndarray, cfg: AnalysisConfig
) -> None:
    fig = Figure(figsize=(10, 3 + len(algs)), layout="constrained")
    for i, (alg, v) in enumerate(algs.items()):
        ax = fig.add_subplot(len(algs), 1, i + 1)
        order = ran[np.argsort(-v["f"][ran], kind="stable")]
        ax.errorbar(
            np.arange(len(order)), v["f"][order], yerr=v["f_std"][order], fmt=".", ms=3, elinewidth=0.6
        )
        ax.set_ylabel(f"F ({alg})")
    ax.set_xlabel("curricula sorted by F (error bars: std over seeds)")
    _save(fig, out / "f_per_curriculum.png")

    fig = Figure(figsize=(4 * len(algs), 3.5), layout="constrained")
    for i, (alg, v) in enumerate(algs.items()):
        ax = fig.add_subplot(1, len(algs), i + 1)
        ax.scatter(cd[ran], v["f"][ran], s=8)
        ax.set_xlabel("designer score")
        ax.set_ylabel("F")
        ax.set_title(alg)
    _save(fig, out / "designer_vs_f.png")

    ks = list(range(1, min(cfg.recall_k, len(ran)) + 1))
    curves = {
        alg: (ks, list(analysis.recall_at_k(v["f"][ran], cd[ran], ks).values())) for alg, v in algs.items()
    }
    curves["random"] = (ks, [k / len(ran) for k in ks])
    with atomic_path(out / "recall_at_k.png") as tmp:
        plot_curves(tmp, curves, title="Recall@K: designer vs top-K by F", xlabel="K")

    fig = Figure(figsize=(4, 3.5), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(distances, cmap="viridis")
    fig.colorbar(im, ax=ax)
    ax.set_title("designer distances between units")
    _save(fig, out / "distance_heatmap.png")


def _save(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
