"""Parity with Avalanche (issue 13, part 1): the same runs through Avalanche 0.6's strategies and ``run_heads``."""

import json

import numpy as np
import pytest
import torch
from curriculum_cl.cli import main
from curriculum_cl.config import load
from curriculum_cl.engine import RunSpec, run_heads
from curriculum_cl.parity import avalanche_run, distillation_v01
from curriculum_cl.train import prepare

pytestmark = pytest.mark.filterwarnings("ignore")
# strong penalties so that EWC and LwF act on this short run (their matrices differ from naive's)
SETS = ["learner.passes=3", "learner.ewc_lambda=1000", "learner.lwf_alpha=[0,10,10]"]
OVERRIDES = [arg for s in SETS for arg in ("--set", s)]


def test_naive_ewc_and_v01_lwf_match_avalanche_within_tolerance(tmp_path, capsys):
    code = main(["parity", "--config", "tiny", *OVERRIDES, "--curricula", "3", "--seeds", "1",
                 "--out", str(tmp_path), "--device", "cpu"])  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "parity.json").read_text())
    algs = result["algorithms"]
    assert set(algs) == {"naive", "ewc", "lwf", "lwf_v01"} and len(algs["naive"]["runs"]) == 3
    for alg in ("naive", "ewc", "lwf_v01"):
        assert algs[alg]["max_abs_diff"] <= 0.02, (alg, algs[alg]["max_abs_diff"])
    # the penalties act here (the matrices differ from naive's), so their agreement is not naive's again
    naive = np.array([r["avalanche_acc"] for r in algs["naive"]["runs"]])
    for alg in ("ewc", "lwf_v01"):
        acc = np.array([r["avalanche_acc"] for r in algs[alg]["runs"]])
        assert np.abs(acc - naive).max() > 0.02, alg
    assert "lwf_v01" in capsys.readouterr().out


def test_avalanche_06_lwf_is_blind_with_one_old_class(tmp_path):
    """The documented cause of the LwF gap: Avalanche 0.6 takes the softmax over the previously active units only,
    so with one old class the distillation is identically 0 and LwF is Naive; 0.1's form (run_heads) is not."""
    out, prev = torch.tensor([[2.0, -1.0, 3.0]]), torch.tensor([[1.0, 0.0, -2.0]])
    assert distillation_v01(out, prev, {0}, 1.0) > 0.1
    cfg = load("tiny", ["learner.lwf_alpha=[0,10]"])  # 10 passes: class 1 is learnt, then guarded or not
    features = prepare(cfg, tmp_path, show_progress=False).features
    run = RunSpec(0, 0, [[1], [2]])
    ava_lwf = avalanche_run(features, run, "lwf", cfg.learner)
    ava_naive = avalanche_run(features, run, "naive", cfg.learner)
    np.testing.assert_array_equal(ava_lwf, ava_naive)
    ours_lwf = run_heads(features, [run], "lwf", cfg.learner).acc[0]
    ours_naive = run_heads(features, [run], "naive", cfg.learner).acc[0]
    np.testing.assert_allclose(ours_naive, ava_naive, atol=0.02)
    assert np.abs(ours_lwf - ours_naive).max() > 0.02
    np.testing.assert_allclose(ours_lwf, avalanche_run(features, run, "lwf_v01", cfg.learner), atol=0.02)


def test_parity_refuses_unknown_strategy_in_one_line(tmp_path, capsys):
    code = main(["parity", "--config", "tiny", "--algorithms", "naive,si", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --algorithms: 'si'") and err.count("\n") == 1
    assert not (tmp_path / "parity.json").exists()
