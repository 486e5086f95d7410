import json

import curriculum_cl.train as train_mod
import numpy as np
import pytest
from curriculum_cl.cli import main
from curriculum_cl.config import load
from curriculum_cl.data.synthetic import write_synthetic
from curriculum_cl.errors import ResumeMismatchError
from curriculum_cl.evaluate import compare
from curriculum_cl.train import read_results, sweep

pytestmark = pytest.mark.filterwarnings("ignore:extractor")


def _key(rows):
    return {(r["algorithm"], r["curriculum_id"], r["seed"]): (r["alpha"], r["beta"], r["t1"]) for r in rows}


def test_killed_sweep_resumes_to_the_same_table(tmp_path, monkeypatch):
    cfg = load("tiny")
    full = sweep(cfg, tmp_path / "full", show_progress=False)
    assert set(full) == {"naive", "ewc", "lwf"} and full["naive"]["runs"] == 6 * 2
    calls = {"n": 0}
    real = train_mod.run_heads

    def dies_on_third_unit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "run_heads", dies_on_third_unit)
    with pytest.raises(KeyboardInterrupt):
        sweep(cfg, tmp_path / "killed", show_progress=False)
    partial = read_results(tmp_path / "killed" / "results.csv")
    assert 0 < len(partial) < 36
    monkeypatch.setattr(train_mod, "run_heads", real)
    sweep(cfg, tmp_path / "killed", show_progress=False)
    resumed = read_results(tmp_path / "killed" / "results.csv")
    assert len(resumed) == 36 and _key(resumed) == _key(read_results(tmp_path / "full" / "results.csv"))
    # another configuration must not be mixed into the table
    cfg.learner.lr = 0.01
    with pytest.raises(ResumeMismatchError, match="another configuration"):
        sweep(cfg, tmp_path / "killed", show_progress=False)


def test_compare_writes_table_and_plots(tmp_path):
    cfg = load("tiny")
    sweep(cfg, tmp_path, show_progress=False)
    (tmp_path / "humans.csv").write_text("curriculum_id,phase,accuracy\n0,2,0.9\n1,2,0.5\n3,2,0.7\n")
    cfg.analysis.human_csv = str(tmp_path / "humans.csv")
    table = compare(tmp_path, cfg.analysis)
    for name in (
        "f_per_curriculum.png",
        "designer_vs_f.png",
        "distance_heatmap.png",
        "recall_at_k.png",
        "agreement.csv",
    ):
        assert (tmp_path / name).stat().st_size > 0
    row = table["algorithms"]["naive"]
    assert 0 <= row["anova_p"] <= 1 and -1 <= row["spearman_designer_vs_f"] <= 1
    assert table["humans"]["curricula"] == [0, 1, 3]
    design = json.loads((tmp_path / "designer.json").read_text())
    assert len(design["scores"]) == 6 and np.allclose(np.diag(design["distances"]), 0)


def test_cli_bad_input_gives_one_line_errors(tmp_path, capsys):
    cases = [
        (["sweep", "--config", "tiny", "--classes", "0,1,12", "--out", str(tmp_path / "a")], "12"),
        (["sweep", "--config", "tiny", "--classes", "3", "--out", str(tmp_path / "b")], "experience"),
        (["sweep", "--config", "tiny", "--set", "learner.nope=1", "--out", str(tmp_path / "c")], "nope"),
        (["sweep", "--config", "tiny", "--algorithms", "naive,magic", "--out", str(tmp_path / "d")], "magic"),
        (
            [
                "sweep",
                "--dataset",
                "mnist",
                "--root",
                str(tmp_path / "missing"),
                "--out",
                str(tmp_path / "e"),
            ],
            "missing",
        ),
        (["compare", "--sweep", str(tmp_path / "nothing")], "results.csv"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and needle in err and "\n" not in err, err
    bad = write_synthetic(tmp_path / "cifar", "cifar10", n_train=2, n_test=1)
    (bad / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    assert (
        main(
            [
                "sweep",
                "--dataset",
                "cifar10",
                "--root",
                str(bad),
                "--set",
                "data.image_size=0",
                "--set",
                "extractor.name=smallcnn",
                "--out",
                str(tmp_path / "f"),
            ]
        )
        == 2
    )
    assert "test_batch" in capsys.readouterr().err


def test_design_cli_ranks_all_orders(tmp_path, capsys):
    assert main(["design", "--config", "tiny", "--out", str(tmp_path)]) == 0
    design = json.loads((tmp_path / "design.json").read_text())
    scores = [r["score"] for r in design["ranking"]]
    assert len(scores) == 6 and scores == sorted(scores, reverse=True)
    assert len(design["generated"]) == 2 and design["generated"][0]["curriculum_id"] is not None


def test_nod_sweep_with_augmented_views_replay_and_si(tmp_path):
    from safetensors.torch import load_file

    root = write_synthetic(tmp_path / "nod", "nod", n_train=6, n_test=2, size=16)
    argv = [
        "sweep",
        "--config",
        "nod",
        "--root",
        str(root),
        "--augment-views",
        "2",
        "--algorithms",
        "replay,si",
        "--seeds",
        "1",
        "--set",
        "extractor.name=smallcnn",
        "--set",
        "data.image_size=16",
        "--set",
        "sweep.curricula=0-3",
        "--set",
        "designer.samples_per_class=4",
        "--out",
        str(tmp_path / "s"),
    ]
    assert main(argv) == 0
    rows = read_results(tmp_path / "s" / "results.csv")
    assert len(rows) == 4 * 2 and {r["algorithm"] for r in rows} == {"replay", "si"}
    assert all(len(r["t1"].split(";")) == 4 for r in rows)  # NOD: 5 families in 4 experiences
    feats = load_file(str(tmp_path / "s" / "features.safetensors"))
    assert feats["train"].shape[:2] == (2, 30)  # 2 cached augmented views of 30 training images
    assert not __import__("torch").equal(feats["train"][0], feats["train"][1])
