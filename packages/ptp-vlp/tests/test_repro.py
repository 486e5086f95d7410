"""The acceptance runner on a toy scale: exactly the issue's keys, per-seed values, gates, resumable runs."""

import json

from ptp_vlp.config import Config
from ptp_vlp.repro import KEYS, run_repro

from visioncore.config import load_config


def test_repro_writes_the_issue_keys_and_reuses_finished_runs(tmp_path):
    overrides = [
        "repro.n_train=32", "repro.n_test=9", "repro.seeds=[0]", "repro.workers=1", "train.steps=2",
        "train.batch_size=8", "train.save_every=0", "train.log_every=1", "model.queue_size=16",
        "model.vision_depth=1", "model.text_depth=1",
    ]  # fmt: skip
    cfg = load_config(Config, "repro", overrides, package="ptp_vlp")
    metrics = run_repro(cfg, tmp_path, print_table=False)
    assert tuple(json.loads((tmp_path / "metrics.json").read_text())) == KEYS
    assert all(0.0 <= metrics[k] <= 1.0 for k in KEYS if k.startswith(("fill", "pos", "cls")))
    per_seed = json.loads((tmp_path / "per_seed.json").read_text())
    assert per_seed["0"]["fill_acc_ptp"] == metrics["fill_acc_ptp"] and "pos_r1_ceiling" in per_seed["0"]
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert sorted(r["method"] for r in runs) == ["ceiling", "none", "ptp", "shuffled"]
    assert metrics["prompt_truncated"] == 0
    gates = json.loads((tmp_path / "gates.json").read_text())["gates"]
    assert len(gates) == 13
    # a second invocation reuses the finished runs (same numbers, no training)
    (tmp_path / "runs/seed0_ptp/model").rename(tmp_path / "moved")
    assert run_repro(cfg, tmp_path, print_table=False) == metrics
