"""The acceptance experiment (``curriculum-cl repro``): the machinery of the paper at CPU scale on real data.

scikit-learn digits: a small CNN pre-trained on digits 5-9 (>= 95 % test accuracy) and frozen; all 120 orders of
digits 0-4 x 3 seeds x {naive, EWC, LwF}, batch 16 and 10 passes per experience (~80 Adam steps). Digits is too small
for the curriculum effect to rise above seed noise, so this checks the machinery: the forgetting signature, that the
strategies act (EWC at lambda 1000, LwF at alpha 10), and that the ANOVA is calibrated under shuffled labels.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from curriculum_cl import analysis
from curriculum_cl.config import Config
from curriculum_cl.engine import RunSpec, run_heads
from curriculum_cl.evaluate import compare, per_algorithm
from curriculum_cl.train import prepare, pretrain_teacher, read_results, sweep

GATES = {
    "beta_naive": ("beta_naive >= 0.9", lambda m: m["beta_naive"] >= 0.9),
    "alpha_naive": ("|alpha_naive - 1/5| <= 0.05", lambda m: abs(m["alpha_naive"] - 0.2) <= 0.05),
    "beta_ewc_stress": (
        "beta_ewc_stress <= beta_naive - 0.3",
        lambda m: m["beta_ewc_stress"] <= m["beta_naive"] - 0.3,
    ),
    "lwf_drift_ratio": ("lwf_drift_ratio <= 0.5", lambda m: m["lwf_drift_ratio"] <= 0.5),
    "null_ks_p": ("null_ks_p > 0.01", lambda m: m["null_ks_p"] > 0.01),
}


def run_repro(cfg: Config, out: str | Path, *, show_progress: bool = True) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    teacher_dir = out / "teacher"
    _, teacher_acc = pretrain_teacher(cfg, teacher_dir)
    cfg = dataclasses.replace(cfg, extractor=dataclasses.replace(cfg.extractor, weights=str(teacher_dir)))

    sweep_dir = out / "sweep"
    t0 = time.perf_counter()
    sweep(cfg, sweep_dir, show_progress=show_progress)
    sweep_seconds = time.perf_counter() - t0
    rows = read_results(sweep_dir / "results.csv")
    table = compare(sweep_dir, cfg.analysis)
    algs = per_algorithm(rows, len(json.loads((sweep_dir / "designer.json").read_text())["orders"]))

    # Stress settings: does each strategy act at all? (same runs, same seeds)
    prepared = prepare(cfg, sweep_dir, show_progress=False)
    runs = [
        RunSpec(c, s, prepared.space.experiences(c))
        for c in range(len(prepared.space))
        for s in range(cfg.sweep.seeds)
    ]
    ewc_stress = run_heads(
        prepared.features,
        runs,
        "ewc",
        dataclasses.replace(cfg.learner, ewc_lambda=cfg.repro.ewc_stress_lambda),
        base_seed=cfg.sweep.base_seed,
    )
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
    forgetting = lambda acc: float(np.mean(acc[:, 0, 0] - acc[:, -1, 0]))  # noqa: E731

    naive = algs["naive"]
    null_p = analysis.null_anova_pvalues(
        naive["f_run"], naive["cids"], cfg.repro.null_shuffles, seed=cfg.sweep.base_seed
    )
    per_alg = table["algorithms"]
    metrics = {
        "beta_naive": float(np.mean(naive["beta"])),
        "alpha_naive": float(np.mean(naive["alpha"])),
        "beta_ewc_stress": forgetting(ewc_stress.acc),
        "lwf_drift_ratio": float(np.nanmean(lwf_stress.drift) / np.nanmean(naive_drift.drift)),
        "null_ks_p": analysis.ks_uniform_p(null_p),
        "anova_p": {a: v["anova_p"] for a, v in per_alg.items()},
        "seed_std_f": {a: v["seed_std_f"] for a, v in per_alg.items()},
        "spearman_designer_vs_f": {a: v["spearman_designer_vs_f"] for a, v in per_alg.items()},
        "hamming_designer": {a: v["hamming_designer"] for a, v in per_alg.items()},
        "hamming_random": {a: v["hamming_random"] for a, v in per_alg.items()},
        "hamming_between_algorithms": table["hamming_between_algorithms"],
        "runs_per_second": len(rows) / sweep_seconds,
        "seconds_total": time.perf_counter() - start,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
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
    }
    (out / "repro_report.json").write_text(json.dumps(report, indent=1))
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
        lines.append(f"{key:<28}{metrics[key]:>10.4f}  {gate['rule']}: {mark}")
    for key in ("anova_p", "seed_std_f", "spearman_designer_vs_f", "hamming_designer", "hamming_random"):
        vals = ", ".join(f"{a}={v:.3g}" for a, v in metrics[key].items())
        lines.append(f"{key:<28}{vals}")
    lines.append(f"{'hamming_between_algorithms':<28}{metrics['hamming_between_algorithms']:>10.4f}")
    lines.append(f"{'runs_per_second':<28}{metrics['runs_per_second']:>10.1f}")
    lines.append(f"{'seconds_total':<28}{metrics['seconds_total']:>10.1f}")
    for key, value in report["context"].items():
        lines.append(f"  ({key}: {value:.4f})" if isinstance(value, float) else f"  ({key}: {value})")
    return "\n".join(lines)
