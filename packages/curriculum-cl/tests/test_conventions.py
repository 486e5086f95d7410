"""Issue 10 in curriculum-cl: one-line errors, values refused by the schema, torn results rows, devices and dtypes."""

import json
import shutil

import pytest
from curriculum_cl.cli import main
from curriculum_cl.config import load
from curriculum_cl.train import read_results, sweep

from visioncore.config import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:extractor")


def _fresh_accelerate_state() -> None:
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_sweep_out_on_an_existing_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    assert main(["sweep", "--config", "tiny", "--out", str(target)]) == 2
    assert str(target) in _one_error_line(capsys)
    assert target.read_text() == "not a folder"


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--set", "sweep.seeds=-1"], "sweep.seeds"),
        (["--set", "sweep.seeds=0"], "sweep.seeds"),
        (["--seeds", "-2"], "sweep.seeds"),
        (["--set", "learner.batch_size=0"], "learner.batch_size"),
        (["--set", "learner.replay_fraction=1.5"], "learner.replay_fraction"),
        (["--set", "learner.dropout=1"], "learner.dropout"),
        (["--set", "analysis.percentile=120"], "analysis.percentile"),
        (["--dataset", "digits", "--root", "/some/folder"], "data.root"),
        (["--set", "data.root=/x"], "data.root"),  # the default config is digits
    ],
)
def test_values_that_make_no_sense_are_refused(tmp_path, capsys, argv, needle):
    out = tmp_path / "never"
    assert main(["sweep", *argv, "--out", str(out)]) == 2
    assert needle in _one_error_line(capsys)
    assert not out.exists()  # refused before anything was written


def test_schema_refuses_in_python_too():
    with pytest.raises(ConfigError, match="sweep.seeds"):
        load("tiny", ["sweep.seeds=-1"])
    assert load("mnist", ["data.root=/data"]).data.root == "/data"  # a root is fine where files are read


def test_torn_last_row_is_dropped_on_resume(tmp_path):
    cfg = load("tiny", ["sweep.algorithms=[naive,ewc]"])
    sweep(cfg, tmp_path / "full", show_progress=False)
    shutil.copytree(tmp_path / "full", tmp_path / "torn")
    results = tmp_path / "torn" / "results.csv"
    data = results.read_bytes()
    last_row_start = data.rstrip(b"\r\n").rfind(b"\n") + 1
    results.write_bytes(data[: last_row_start + (len(data) - last_row_start) // 2])  # killed mid-row
    complete = read_results(results)
    assert (
        len(complete) == len(read_results(tmp_path / "full" / "results.csv")) - 1
    )  # the torn row is no result
    sweep(cfg, tmp_path / "torn", show_progress=False)
    assert results.read_bytes() == data  # the same final table as the uninterrupted sweep, byte for byte
    full = json.loads((tmp_path / "full" / "results.json").read_text())
    assert json.loads((tmp_path / "torn" / "results.json").read_text()) == full


def test_feature_verbs_run_on_cpu_in_bf16(tmp_path, capsys):
    bf16 = ["--device", "cpu", "--dtype", "bf16"]
    small = [
        "--set",
        "data.classes=0-2",
        "--set",
        "data.max_per_class=16",
        "--set",
        "designer.samples_per_class=8",
    ]
    assert (
        main(
            ["pretrain", "--config", "tiny", "--set", "teacher.epochs=1", "--out", str(tmp_path / "t"), *bf16]
        )
        == 0
    )
    teacher = ["--set", f"extractor.weights={tmp_path / 't'}"]
    assert main(["design", "--config", "tiny", *small, *teacher, "--out", str(tmp_path / "d"), *bf16]) == 0
    argv = ["sweep", "--config", "tiny", *small, *teacher, "--algorithms", "naive", "--seeds", "1", *bf16]
    assert main([*argv, "--out", str(tmp_path / "s")]) == 0
    rows = read_results(tmp_path / "s" / "results.csv")
    assert len(rows) == 6 and all(0 <= r["alpha"] <= 1 for r in rows)
    # resuming the bf16 table in float32 would mix precisions: refused
    capsys.readouterr()
    assert main([*argv[:-4], "--seeds", "1", "--algorithms", "naive", "--out", str(tmp_path / "s")]) == 2
    assert "another configuration" in _one_error_line(capsys)
    train = [
        "train",
        "--config",
        "tiny",
        *small,
        "--set",
        "learner.batch_size=8",
        "--set",
        "learner.passes=1",
    ]
    _fresh_accelerate_state()  # a CLI call is a fresh process; this test process already made an fp32 Accelerator
    try:
        assert main([*train, "--out", str(tmp_path / "f"), *bf16]) == 0
    finally:
        _fresh_accelerate_state()
    metrics = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert 0 <= metrics["alpha"] <= 1 and (tmp_path / "f" / "model").is_dir()
    assert (tmp_path / "f" / "config.yaml").is_file()  # save_final: config, model and the last checkpoint
    assert (tmp_path / "f" / "checkpoints" / f"step_{metrics['steps']:06d}").is_dir()


def test_bench_runs_on_cpu_in_bf16(capsys):
    assert main(["bench", "--quick", "--device", "cpu", "--dtype", "bf16"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["device"] == "cpu" and result["dtype"] == "bfloat16"
    assert all(case["speedup"] > 1 for case in result["cases"])  # cached features beat recomputing the trunk
    digits = result["cases"][
        0
    ]  # the 120-curriculum sweep both ways, Avalanche measured on 1 and extrapolated
    assert digits["avalanche_measured_curricula"] == 1 and digits["avalanche_extrapolated"] is True
    assert digits["avalanche_over_run_heads"] == digits["avalanche_sweep_s"] / digits["run_heads_sweep_s"]
