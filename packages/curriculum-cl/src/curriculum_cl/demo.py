"""``curriculum-cl demo``: a SMOKE CHECK (<= 40 s) of the whole path on scikit-learn digits with the ``tiny`` config:
teacher pre-training, feature cache, sweep of 6 curricula x 2 seeds x {naive, EWC, LwF}, designer and comparison.

Digits cannot show the paper's curriculum effect (the repro's ANOVA p is 0.17-1.0 there); what the demo numbers show
is the forgetting signature of class-incremental learning (beta near 1 for naive fine-tuning). The evidence for the
paper's questions is ``curriculum-cl repro`` (README, acceptance table).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from curriculum_cl import config as config_mod
from curriculum_cl.evaluate import compare
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
    metrics = {
        "kind": "smoke check (digits cannot show the curriculum effect; see the repro)",
        "teacher_test_accuracy": teacher_acc,
        "runs": runs,
        "runs_per_second": runs / sweep_s,
        **{f"alpha_{a}": r["alpha_mean"] for a, r in table["algorithms"].items()},
        **{f"beta_{a}": r["beta_mean"] for a, r in table["algorithms"].items()},
        **{f"f_{a}": r["f_mean"] for a, r in table["algorithms"].items()},
        "seconds": time.perf_counter() - start,
    }
    atomic_write_json(out / "metrics.json", metrics, indent=1)
    print(json.dumps(metrics, indent=1))
    return metrics
