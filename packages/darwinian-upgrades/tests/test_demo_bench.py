import json

from darwinian_upgrades.cli import main


def test_demo_shows_the_direction_of_the_effect(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["effect_shown"] is True
    assert metrics["map_dmu_new_adapted"] > metrics["map_bct_new_old"]
    assert (
        metrics["map_indep_new_old"] < metrics["map_old_old"] - 0.3
    )  # no compatibility without training for it


def test_bench_tiny_reports_step_costs_and_backfill_ratio(capsys):
    assert main(["bench", "--sizes", "tiny", "--device", "cpu", "--gallery", "64"]) == 0
    result = json.loads(capsys.readouterr().out)["tiny"]
    for role in ("independent", "bct", "dmu"):
        assert result[f"{role}_step_s"] > 0 and result[f"{role}_peak_mib"] > 0
    assert 0 < result["backfill_cost_ratio"] < 1  # ψ on stored features is cheaper than re-extraction
