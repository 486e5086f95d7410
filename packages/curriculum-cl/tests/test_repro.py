import json

import pytest
from curriculum_cl.config import load
from curriculum_cl.repro import run_repro

pytestmark = pytest.mark.filterwarnings("ignore")

KEYS = {
    "beta_naive", "alpha_naive", "ewc_penalty_curve", "lwf_drift_ratio", "lwf_drift_ratio_centered", "null_ks_p",
    "anova_p", "seed_std_f", "spearman_designer_vs_f", "hamming_designer", "hamming_random",
    "hamming_between_algorithms", "runs_per_second", "seconds_total", "structured_anova_p",
    "structured_spearman_designer_vs_f", "structured_spearman_null_p95", "structured_top3_gain_in_seed_std",
}  # fmt: skip


def test_repro_at_toy_size_writes_the_issue_keys(tmp_path, capsys):
    structured = tmp_path / "structured.yaml"
    structured.write_text(
        "data: {dataset: structured, classes: '0-4', structured: {n_train: 20, n_test: 10}}\n"
        "sweep: {algorithms: [replay], seeds: 2, curricula: '0-11'}\n"
    )
    cfg = load(
        "tiny",
        ["repro.ewc_curve_lambdas=[1,1e6]", "repro.null_shuffles=5", f"repro.structured_config={structured}"],
    )
    metrics = run_repro(cfg, tmp_path, show_progress=False)
    assert set(metrics) == KEYS
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    curve = metrics["ewc_penalty_curve"]
    assert set(curve) == {"empirical_batch", "per_sample"} and all(
        set(c) == {"1", "1e+06"} for c in curve.values()
    )
    # a stronger penalty never forgets the first class more (beta is a fraction)
    for c in curve.values():
        assert 0 <= c["1e+06"] <= c["1"] + 1e-9 <= 1 + 1e-9
    assert metrics["lwf_drift_ratio_centered"] > 0 and metrics["lwf_drift_ratio"] > 0
    report = json.loads((tmp_path / "repro_report.json").read_text())
    assert set(report["gates"]) == {"beta_naive", "alpha_naive", "ewc_penalty_curve", "lwf_drift_ratio_centered",
                                    "null_ks_p", "structured"}  # fmt: skip
    assert (
        set(metrics["structured_anova_p"]) == {"replay"} and 0 <= metrics["structured_anova_p"]["replay"] <= 1
    )
    design = json.loads((tmp_path / "structured" / "designer.json").read_text())
    assert len(design["scores"]) == 120 and len(design["true_similarity"]) == 5
    # per-seed values average to the seed means (equal runs per seed)
    per_seed = report["per_seed"]
    assert set(per_seed) == {"0", "1"}
    for key in ("beta_naive", "alpha_naive"):
        assert abs(sum(p[key] for p in per_seed.values()) / 2 - metrics[key]) < 1e-9
    best = min(b for c in curve.values() for b in c.values())
    assert min(p["ewc_penalty_curve_min"] for p in per_seed.values()) <= best + 1e-9
    structured_seeds = report["structured_per_seed"]["replay"]
    assert set(structured_seeds) == {"0", "1"}
    assert all(-1 <= p["spearman_designer_vs_f"] <= 1 for p in structured_seeds.values())
    assert "ewc_penalty_curve" in capsys.readouterr().out
