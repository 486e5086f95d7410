import json
import shutil

from stprivacy.repro import CONDITIONS, GATES, run_seed, summarize


def test_one_seed_writes_every_key_of_the_issue(tmp_path, make_config):
    cfg = make_config(tmp_path / "unused")
    metrics = run_seed(cfg, tmp_path, seed=0, num_train=24, num_test=16)
    expected = {
        f"{k}_{c}" for c in CONDITIONS for k in ("top1", "cmap", "f1", "ap_static", "ap_actor", "ap_null")
    }
    expected |= {
        "kept_fraction",
        "kept_actor_tubelets",
        "kept_static_tubelets",
        "ap_static_keepmask",
        "top1_keepmask",
        "ap_actor_full_joint",
        "ap_actor_fresh_minus_joint",
    }
    assert set(metrics) == expected
    assert all(0.0 <= v <= 1.0 for k, v in metrics.items() if k != "ap_actor_fresh_minus_joint")
    assert abs(metrics["kept_fraction"] - 3 / 16) < 1e-6  # k = 3 of 16 per slice at alpha 0.6
    saved = json.loads((tmp_path / "seed_0" / "metrics.json").read_text())
    assert saved["metrics"] == metrics
    assert run_seed(cfg, tmp_path, seed=0, num_train=24, num_test=16) == metrics  # reused, not rerun
    # a seed cut short in the adversarial phase resumes from its finished stages with the same numbers
    (tmp_path / "seed_0" / "metrics.json").unlink()
    shutil.rmtree(tmp_path / "seed_0" / "run" / "adversarial")
    partial = json.loads((tmp_path / "seed_0" / "partial.json").read_text())
    partial["metrics"] = {k: v for k, v in partial["metrics"].items() if "full" not in k}
    (tmp_path / "seed_0" / "partial.json").write_text(json.dumps(partial))
    assert run_seed(cfg, tmp_path, seed=0, num_train=24, num_test=16) == metrics
    means, gates = summarize({0: metrics, 1: metrics})
    assert means == metrics and set(gates) == set(GATES)
