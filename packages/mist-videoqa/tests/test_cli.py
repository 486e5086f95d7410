import json

import numpy as np
import pytest
import torch
from mist_videoqa.bench import bench
from mist_videoqa.cli import main
from mist_videoqa.config import load_train_config
from mist_videoqa.data.features import write_features


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Synthetic data written by the CLI, and a model trained a few steps by the CLI."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    assert main(["make-synthetic", "--out", str(data), "--n-train", "32", "--n-val", "8", "--n-test", "8",
                 "--dim", "32"]) == 0  # fmt: skip
    args = ["train", "--config", "tiny", "--set", f"data.root={data}", "--set", "train.steps=4", "--set",
            "train.eval_every=2", "--set", "train.save_every=2", "--out", str(root / "run"), "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    return root


def _error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_train_writes_best_last_and_checkpoints(trained):
    run = trained / "run"
    assert (run / "model" / "model.safetensors").is_file() and (run / "best" / "val_metrics.json").is_file()
    assert (run / "checkpoints" / "step_000004").is_dir() and (run / "config.yaml").is_file()


def test_evaluate_writes_metrics_and_per_qid(trained, capsys):
    out = trained / "eval"
    assert main(["evaluate", "--model", str(trained / "run" / "model"), "--set", f"data.root={trained / 'data'}",
                 "--split", "test", "--out", str(out), "--device", "cpu"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 8 and set(metrics["per_type"]) >= {"semantic", "structural", "global"}
    assert metrics["mode"] == "topk-soft" and 0 <= metrics["segment_hit_rate"] <= 1
    (per_qid,) = out.glob("test-*.json")
    assert len(json.loads(per_qid.read_text())) == 8


def test_ask_on_features_draws_the_selection(trained, capsys):
    data = trained / "data"
    feats = data / "feats" / "agqa"
    out = trained / "ask"
    argv = ["ask", str(feats / "frame_feat" / "clip_patch_feat_all.h5"), "what color is the cup?", "--model",
            str(trained / "run" / "model"), "--video-id", "test_00000", "--text-features",
            str(feats / "text_feat" / "clip_text_feat.h5"), "--qid", "test_q00000", "--answers",
            str(data / "datasets" / "agqa" / "vocab.json"), "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    answer = json.loads((out / "answer.json").read_text())
    assert answer["answer"] in {"red", "green", "blue", "yellow", "purple", "orange", "white", "black"}
    assert len(answer["layers"]) == 2 and len(answer["layers"][0]["segments"]) == 2
    assert (out / "selection.png").stat().st_size > 0
    err = _error(capsys, [*argv[:-6], "--video-id", "nope", "--out", str(out), "--device", "cpu"])
    assert "missing: nope" in err


def test_bad_inputs_are_one_line_errors(trained, tmp_path, capsys):
    missing = tmp_path / "missing_root"
    err = _error(
        capsys, ["train", "--config", "tiny", "--set", f"data.root={missing}", "--out", str(tmp_path / "o")]
    )
    assert str(missing) in err and not (tmp_path / "o" / "model").exists()
    assert "model.nope" in _error(capsys, ["train", "--set", "model.nope=1", "--out", str(tmp_path / "o")])
    assert "model.topk" in _error(capsys, ["train", "--set", "model.topk=-1", "--out", str(tmp_path / "o")])
    # features whose D differs from model.feature_dim
    data = trained / "data"
    bad = tmp_path / "bad.h5"
    write_features(bad, ["train_00000"], np.zeros((1, 32, 17, 16)))
    err = _error(capsys, ["train", "--set", f"data.root={data}", "--set", f"data.features={bad}", "--out",
                          str(tmp_path / "o")])  # fmt: skip
    assert "bad.h5" in err and "(N, 32, 17, 32)" in err
    # a checkpoint of another shape
    wrong = tmp_path / "wrong"
    (wrong).mkdir()
    cfg = json.loads((trained / "run" / "model" / "config.json").read_text())
    cfg["d_model"] = 64
    cfg["d_ff"] = 64
    (wrong / "config.json").write_text(json.dumps(cfg))
    (wrong / "model.safetensors").write_bytes((trained / "run" / "model" / "model.safetensors").read_bytes())
    err = _error(capsys, ["evaluate", "--model", str(wrong), "--set", f"data.root={data}", "--out",
                          str(tmp_path / "e"), "--device", "cpu"])  # fmt: skip
    assert "wrong" in err and "shape" in err and not (tmp_path / "e" / "metrics.json").exists()
    # an official checkpoint that does not fit
    official = tmp_path / "best_model.pth"
    torch.save({"module.vqproj.1.weight": torch.zeros(3, 3)}, official)
    err = _error(capsys, ["train", "--set", f"data.root={data}", "--init-from", str(official), "--out",
                          str(tmp_path / "o2")])  # fmt: skip
    assert "best_model.pth" in err


def test_bench_reports_ratios_in_json():
    cfg = load_train_config("tiny").model
    report = bench(torch.device("cpu"), torch.float32, batch=2, config=cfg, repeats=1)
    json.dumps(report)
    assert report["mist"]["tokens"] < report["dense"]["tokens"]
    assert 0 < report["flops_ratio"] < 1 and report["mist"]["flops"] > 0
