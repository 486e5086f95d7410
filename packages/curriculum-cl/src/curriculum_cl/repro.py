"""The acceptance experiment (``curriculum-cl repro``): the machinery of the paper at CPU scale on real data.

scikit-learn digits: a small CNN pre-trained on digits 5-9 (>= 95 % test accuracy) and frozen; all 120 orders of
digits 0-4 x 3 seeds x {naive, EWC, LwF}, batch 16 and 10 passes per experience (~80 Adam steps). Digits is too small
for the curriculum effect to rise above seed noise, so this checks the machinery: the forgetting signature, that the
strategies act (the EWC penalty curve over lambda in {1, 1e2, 1e4, 1e6} with both Fisher modes; LwF at alpha 10,
logit drift with and without a common shift), and that the ANOVA is calibrated under shuffled labels.

The curriculum effect itself is tested on ``--dataset structured`` (``configs/structured.yaml``): synthetic features
with two near class pairs and a far class, all 120 orders x 3 seeds x {replay, LwF}; keys ``structured_*``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from curriculum_cl import analysis
from curriculum_cl.config import Config, load
from curriculum_cl.engine import FISHER_MODES, RunSpec, run_heads
from curriculum_cl.evaluate import compare, per_algorithm
from curriculum_cl.train import prepare, pretrain_teacher, read_results, sweep
from visioncore.files import atomic_write_json


def structured_effect(
    sweep_dir: Path, null_shuffles: int, seed: int = 0
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, float]]]]:
    """The curriculum effect of a sweep, per strategy (issue 13, ``structured_*`` keys), and its per-seed values.

    ``anova_p``: one-way ANOVA of per-run F across curricula; ``spearman_designer_vs_f`` against its null (designer
    scores shuffled across curricula ``null_shuffles`` times, 95th percentile); ``top3_gain_in_seed_std``: mean F of
    the designer's top-3 curricula minus the mean F of all curricula, in units of the across-seed std of F. Per seed
    (strategy -> seed -> value): the Spearman and the top-3 gain on that seed's F alone, in units of the same
    across-seed std; the ANOVA has no per-seed value (its replicates are the seeds).
    """
    rows = read_results(sweep_dir / "results.csv")
    scores = np.array(json.loads((sweep_dir / "designer.json").read_text())["scores"])
    rng = np.random.default_rng(seed)
    effect: dict[str, dict[str, float]] = {
        k: {} for k in ("anova_p", "spearman_designer_vs_f", "spearman_null_p95", "top3_gain_in_seed_std")
    }
    per_seed: dict[str, dict[str, dict[str, float]]] = {}
    for alg, v in per_algorithm(rows, len(scores)).items():
        ran = np.flatnonzero(~np.isnan(v["f"]))
        f, cd = v["f"][ran], scores[ran]
        null = [analysis.spearman(rng.permutation(cd), f) for _ in range(null_shuffles)]
        top3 = ran[np.argsort(-cd, kind="stable")[:3]]
        seed_std = analysis.seed_std(v["f_run"], v["cids"])
        effect["anova_p"][alg] = analysis.anova_p(v["f_run"], v["cids"])
        effect["spearman_designer_vs_f"][alg] = analysis.spearman(cd, f)
        effect["spearman_null_p95"][alg] = float(np.nanpercentile(null, 95))
        effect["top3_gain_in_seed_std"][alg] = float((v["f"][top3].mean() - f.mean()) / seed_std)
        seeds = np.array([r["seed"] for r in rows if r["algorithm"] == alg])
        per_seed[alg] = {}
        for s in np.unique(seeds):
            cids, f_seed = v["cids"][seeds == s], v["f_run"][seeds == s]
            top3_seed = np.argsort(-scores[cids], kind="stable")[:3]
            per_seed[alg][str(s)] = {
                "spearman_designer_vs_f": analysis.spearman(scores[cids], f_seed),
                "top3_gain_in_seed_std": float((f_seed[top3_seed].mean() - f_seed.mean()) / seed_std),
            }
    return effect, per_seed


def structured_gate(m: dict) -> bool:
    """For one strategy: ANOVA p < 0.01, Spearman above its null's 95th percentile and a top-3 gain >= 1 seed std."""
    return any(
        m["structured_anova_p"][a] < 0.01
        and m["structured_spearman_designer_vs_f"][a] > m["structured_spearman_null_p95"][a]
        and m["structured_top3_gain_in_seed_std"][a] >= 1
        for a in m["structured_anova_p"]
    )


GATES = {
    "beta_naive": ("beta_naive >= 0.9", lambda m: m["beta_naive"] >= 0.9),
    "alpha_naive": ("|alpha_naive - 1/5| <= 0.05", lambda m: abs(m["alpha_naive"] - 0.2) <= 0.05),
    "ewc_penalty_curve": (
        "min beta over lambda and Fisher mode <= 0.5",
        lambda m: min(b for curve in m["ewc_penalty_curve"].values() for b in curve.values()) <= 0.5,
    ),
    "lwf_drift_ratio_centered": (
        "lwf_drift_ratio_centered <= 0.5",
        lambda m: m["lwf_drift_ratio_centered"] <= 0.5,
    ),
    "null_ks_p": ("null_ks_p > 0.01", lambda m: m["null_ks_p"] > 0.01),
    "structured": (
        "one strategy: anova_p < 0.01, spearman > null p95, top3 gain >= 1 seed std",
        structured_gate,
    ),
}


def run_repro(
    cfg: Config,
    out: str | Path,
    *,
    show_progress: bool = True,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    teacher_dir = out / "teacher"
    _, teacher_acc = pretrain_teacher(cfg, teacher_dir, device=device, dtype=dtype)
    cfg = dataclasses.replace(cfg, extractor=dataclasses.replace(cfg.extractor, weights=str(teacher_dir)))

    sweep_dir = out / "sweep"
    t0 = time.perf_counter()
    sweep(cfg, sweep_dir, show_progress=show_progress, device=device, dtype=dtype)
    sweep_seconds = time.perf_counter() - t0
    rows = read_results(sweep_dir / "results.csv")
    table = compare(sweep_dir, cfg.analysis)
    algs = per_algorithm(rows, len(json.loads((sweep_dir / "designer.json").read_text())["orders"]))

    # Stress settings: does each strategy act at all? (same runs, same seeds)
    prepared = prepare(cfg, sweep_dir, show_progress=False, device=device, dtype=dtype)
    runs = [
        RunSpec(c, s, prepared.space.experiences(c))
        for c in range(len(prepared.space))
        for s in range(cfg.sweep.seeds)
    ]
    forgetting = lambda acc: float(np.mean(acc[:, 0, 0] - acc[:, -1, 0]))  # noqa: E731
    seed_of_run = np.array([r.seed for r in runs])
    ewc_runs = {
        (mode, lam): run_heads(
            prepared.features,
            runs,
            "ewc",
            dataclasses.replace(cfg.learner, ewc_lambda=lam, ewc_fisher=mode),
            base_seed=cfg.sweep.base_seed,
        ).acc
        for mode in FISHER_MODES
        for lam in cfg.repro.ewc_curve_lambdas
    }
    ewc_curve = {
        mode: {f"{lam:g}": forgetting(ewc_runs[mode, lam]) for lam in cfg.repro.ewc_curve_lambdas}
        for mode in FISHER_MODES
    }
    naive_drift = run_heads(
        prepared.features, runs, "naive", cfg.learner, base_seed=cfg.sweep.base_seed, record_drift=True
    )
    lwf_stress = run_heads(
        prepared.features,
        runs,
        "lwf",
        dataclasses.replace(cfg.learner, lwf_alpha=[cfg.repro.lwf_stress_alpha]),
        base_seed=cfg.sweep.base_seed,
        record_drift=True,
    )
    naive = algs["naive"]
    naive_seeds = np.array([r["seed"] for r in rows if r["algorithm"] == "naive"])
    null_p = analysis.null_anova_pvalues(
        naive["f_run"], naive["cids"], cfg.repro.null_shuffles, seed=cfg.sweep.base_seed
    )
    per_alg = table["algorithms"]
    structured_cfg = load(cfg.repro.structured_config)
    structured_dir = out / "structured"
    sweep(structured_cfg, structured_dir, show_progress=show_progress, device=device, dtype=dtype)
    effect, effect_per_seed = structured_effect(
        structured_dir, cfg.repro.null_shuffles, seed=cfg.sweep.base_seed
    )
    metrics = {
        "beta_naive": float(np.mean(naive["beta"])),
        "alpha_naive": float(np.mean(naive["alpha"])),
        "ewc_penalty_curve": ewc_curve,
        "lwf_drift_ratio": float(np.nanmean(lwf_stress.drift) / np.nanmean(naive_drift.drift)),
        "lwf_drift_ratio_centered": float(
            np.nanmean(lwf_stress.drift_centered) / np.nanmean(naive_drift.drift_centered)
        ),
        "null_ks_p": analysis.ks_uniform_p(null_p),
        "anova_p": {a: v["anova_p"] for a, v in per_alg.items()},
        "seed_std_f": {a: v["seed_std_f"] for a, v in per_alg.items()},
        "spearman_designer_vs_f": {a: v["spearman_designer_vs_f"] for a, v in per_alg.items()},
        "hamming_designer": {a: v["hamming_designer"] for a, v in per_alg.items()},
        "hamming_random": {a: v["hamming_random"] for a, v in per_alg.items()},
        "hamming_between_algorithms": table["hamming_between_algorithms"],
        **{f"structured_{k}": v for k, v in effect.items()},
        "runs_per_second": len(rows) / sweep_seconds,
        "seconds_total": time.perf_counter() - start,
    }
    atomic_write_json(out / "metrics.json", metrics, indent=1)
    per_seed = {
        str(s): {
            "beta_naive": float(np.mean(naive["beta"][naive_seeds == s])),
            "alpha_naive": float(np.mean(naive["alpha"][naive_seeds == s])),
            "ewc_penalty_curve_min": min(forgetting(acc[seed_of_run == s]) for acc in ewc_runs.values()),
            "lwf_drift_ratio": float(
                np.nanmean(lwf_stress.drift[seed_of_run == s])
                / np.nanmean(naive_drift.drift[seed_of_run == s])
            ),
            "lwf_drift_ratio_centered": float(
                np.nanmean(lwf_stress.drift_centered[seed_of_run == s])
                / np.nanmean(naive_drift.drift_centered[seed_of_run == s])
            ),
        }
        for s in range(cfg.sweep.seeds)
    }
    report = {
        "teacher_test_accuracy": teacher_acc,
        "runs": len(rows),
        "gates": {k: {"rule": rule, "passed": bool(check(metrics))} for k, (rule, check) in GATES.items()},
        "context": {
            "beta_lwf_stress": forgetting(lwf_stress.acc),
            "beta_ewc": per_alg["ewc"]["beta_mean"] if "ewc" in per_alg else None,
            "beta_lwf": per_alg["lwf"]["beta_mean"] if "lwf" in per_alg else None,
            "null_p_mean": float(np.mean(null_p)),
        },
        "per_seed": per_seed,
        "structured_per_seed": effect_per_seed,
    }
    atomic_write_json(out / "repro_report.json", report, indent=1)
    print(format_table(metrics, report))
    return metrics


def format_table(metrics: dict, report: dict) -> str:
    lines = [
        f"teacher test accuracy: {report['teacher_test_accuracy']:.3f}; runs: {report['runs']}",
        f"{'metric':<28}{'value':>10}  gate",
        "-" * 72,
    ]
    for key, gate in report["gates"].items():
        mark = "PASS" if gate["passed"] else "FAIL"
        value = metrics.get(key, {})
        if isinstance(value, dict):  # the EWC penalty curve: one line per Fisher mode
            lines.append(f"{key:<28}{'':>10}  {gate['rule']}: {mark}")
            for mode, curve in value.items():
                lines.append(
                    f"  {mode:<26}" + ", ".join(f"lambda {lam}: {b:.3f}" for lam, b in curve.items())
                )
        else:
            lines.append(f"{key:<28}{value:>10.4f}  {gate['rule']}: {mark}")
    lines.append(f"{'lwf_drift_ratio (raw)':<28}{metrics['lwf_drift_ratio']:>10.4f}  reported")
    for key in (
        "anova_p", "seed_std_f", "spearman_designer_vs_f", "hamming_designer", "hamming_random",
        "structured_anova_p", "structured_spearman_designer_vs_f", "structured_spearman_null_p95",
        "structured_top3_gain_in_seed_std",
    ):  # fmt: skip
        vals = ", ".join(f"{a}={v:.3g}" for a, v in metrics[key].items())
        lines.append(f"{key:<28}{vals}")
    lines.append(f"{'hamming_between_algorithms':<28}{metrics['hamming_between_algorithms']:>10.4f}")
    lines.append(f"{'runs_per_second':<28}{metrics['runs_per_second']:>10.1f}")
    lines.append(f"{'seconds_total':<28}{metrics['seconds_total']:>10.1f}")
    for key, value in report["context"].items():
        lines.append(f"  ({key}: {value:.4f})" if isinstance(value, float) else f"  ({key}: {value})")
    return "\n".join(lines)
