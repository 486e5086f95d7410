"""``curriculum-cl demo`` (<= 40 s): a smoke check of the whole path on scikit-learn digits with the ``tiny`` config
(teacher pre-training, feature cache, sweep of 6 curricula x 2 seeds x {naive, EWC, LwF}, designer, comparison),
then the paper's effect on the ``structured`` features (two near class pairs and a far class): all 120 orders x 2
seeds with replay, where the order matters (ANOVA p) and the designer's ranking predicts F (Spearman, top-3 gain).

Digits cannot show the curriculum effect (the repro's ANOVA p is 0.17-1.0 there); its numbers show the forgetting
signature (beta near 1 for naive fine-tuning). The full evidence is ``curriculum-cl repro`` (README).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from curriculum_cl import config as config_mod
from curriculum_cl.evaluate import compare
from curriculum_cl.repro import structured_effect
from curriculum_cl.train import pretrain_teacher, sweep
from visioncore.files import atomic_write_json


def run_demo(
    out: str | Path, *, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> dict:
    start = time.perf_counter()
    out = Path(out)
    cfg = config_mod.load("tiny")
    _, teacher_acc = pretrain_teacher(cfg, out / "teacher", device=device, dtype=dtype)
    cfg.extractor.weights = str(out / "teacher")
    t0 = time.perf_counter()
    summary = sweep(cfg, out / "sweep", show_progress=False, device=device, dtype=dtype)
    sweep_s = time.perf_counter() - t0
    table = compare(out / "sweep", cfg.analysis)
    runs = sum(v["runs"] for v in summary.values())
    structured = config_mod.load("structured", ["sweep.seeds=2", "sweep.algorithms=[replay]"])
    sweep(structured, out / "structured", show_progress=False, device=device, dtype=dtype)
    effect, _ = structured_effect(out / "structured", null_shuffles=50)
    metrics = {
        "kind": "smoke check on digits + curriculum effect on structured features",
        "teacher_test_accuracy": teacher_acc,
        "runs": runs,
        "runs_per_second": runs / sweep_s,
        **{f"alpha_{a}": r["alpha_mean"] for a, r in table["algorithms"].items()},
        **{f"beta_{a}": r["beta_mean"] for a, r in table["algorithms"].items()},
        **{f"f_{a}": r["f_mean"] for a, r in table["algorithms"].items()},
        "structured_anova_p_replay": effect["anova_p"]["replay"],
        "structured_spearman_designer_vs_f_replay": effect["spearman_designer_vs_f"]["replay"],
        "structured_spearman_null_p95_replay": effect["spearman_null_p95"]["replay"],
        "structured_top3_gain_in_seed_std_replay": effect["top3_gain_in_seed_std"]["replay"],
        "seconds": time.perf_counter() - start,
    }
    atomic_write_json(out / "metrics.json", metrics, indent=1)
    print(json.dumps(metrics, indent=1))
    return metrics
