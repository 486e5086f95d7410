import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from stprivacy.cli import main
from stprivacy.models import VideoViT


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_import_is_light():
    code = "import sys, stprivacy, stprivacy.cli; print([m for m in ('sklearn', 'av', 'timm', 'matplotlib') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _data_args(root):
    return [
        "--set", f"data.videos={root / 'videos'}",
        "--set", f"data.splits={root / 'splits'}",
        "--set", f"data.labels={root / 'privacy_labels.pickle'}",
    ]  # fmt: skip


def test_labels_verb(synthetic_root, capsys):
    assert (
        main(
            [
                "labels",
                str(synthetic_root / "privacy_labels.pickle"),
                "--root",
                str(synthetic_root / "splits"),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["keys"] == 36 and report["split"]["test"]["fraction"] == 1.0


def test_evaluate_and_anonymize_on_a_trained_run(trained_run, synthetic_root, tmp_path, capsys):
    model = trained_run / "adversarial" / "model"
    argv = [
        "evaluate",
        "--model",
        str(model),
        "--out",
        str(tmp_path / "ev"),
        "--config",
        "tiny",
        "--device",
        "cpu",
    ]
    assert main(argv + _data_args(synthetic_root)) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert 0 <= metrics["top1"] <= 1 and set(metrics["attackers"]) == {"cnn3d", "mlp"}
    worst = metrics["worst"]
    assert (
        worst["cmap"] >= metrics["attackers"]["mlp"]["cmap"] - 1e-9
    )  # worst case: per attribute the strongest
    video = next((synthetic_root / "videos").rglob("*.avi"))
    out = tmp_path / "anon"
    assert (
        main(
            [
                "anonymize",
                str(video),
                "--model",
                str(model),
                "--out",
                str(out),
                "--keep-ratio",
                "0.8",
                "--config",
                "tiny",
            ]
        )
        == 0
    )
    assert (out / f"{video.stem}_anonymized.mp4").is_file() and (
        out / f"{video.stem}_side_by_side.gif"
    ).is_file()
    capsys.readouterr()


def test_bad_inputs_are_one_line_errors(synthetic_root, trained_run, tmp_path, capsys):
    # a missing label pickle
    err = _error(capsys, ["labels", str(tmp_path / "absent.pickle")])
    assert "absent.pickle" in err
    # a pickle that calls a function (refused, never run)
    evil = tmp_path / "evil.pickle"
    evil.write_bytes(b"cos\nsystem\n(S'touch PWNED'\ntR.")
    assert "os.system" in _error(capsys, ["labels", str(evil)])
    # a pickle holding something else than (1, 5) integer arrays
    bad = tmp_path / "bad.pickle"
    bad.write_bytes(pickle.dumps({"A/b.mp4": np.zeros((1, 3), np.int64)}))
    assert "bad.pickle" in _error(capsys, ["labels", str(bad)])
    # an unknown config key
    assert "nonsense" in _error(
        capsys, ["train", "--out", str(tmp_path / "t"), "--config", "tiny", "--set", "train.nonsense=1"]
    )
    # a split file naming an absent video
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "jump_test_split1.txt").write_text("ghost.avi 1\n")
    argv = [
        "train",
        "--out",
        str(tmp_path / "t2"),
        "--config",
        "tiny",
        "--set",
        f"data.videos={tmp_path}",
        "--set",
        f"data.splits={splits}",
        "--set",
        f"data.labels={synthetic_root / 'privacy_labels.pickle'}",
    ]
    assert "ghost.avi" in _error(capsys, argv)
    assert not (tmp_path / "t2").exists()
    # a missing and an undecodable video
    model = str(trained_run / "adversarial" / "model")
    assert "missing.avi" in _error(
        capsys, ["anonymize", str(tmp_path / "missing.avi"), "--model", model, "--out", str(tmp_path / "a")]
    )
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video")
    assert "junk.avi" in _error(
        capsys, ["anonymize", str(junk), "--model", model, "--out", str(tmp_path / "a")]
    )
    assert not (tmp_path / "a").exists()
    # a checkpoint of another architecture
    VideoViT(
        4, img_size=32, num_frames=8, tubelet=(2, 8, 8), embed_dim=48, depth=1, num_heads=3
    ).save_pretrained(tmp_path / "vit")
    err = _error(
        capsys,
        [
            "evaluate",
            "--model",
            str(tmp_path / "vit"),
            "--out",
            str(tmp_path / "e"),
            "--config",
            "tiny",
            *_data_args(synthetic_root),
        ],
    )
    assert "vit" in err
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("key", ["model.keep_ratio=1.5", "train.init_steps=-1", "model.embed_dim=40"])
def test_schema_refuses_values_that_make_no_sense(key, tmp_path, capsys):
    assert key.split("=")[0] in _error(
        capsys, ["train", "--out", str(tmp_path / "t"), "--config", "tiny", "--set", key]
    )
    assert not (tmp_path / "t").exists()


def test_bench_tiny_reports_time_memory_and_pruned_speedup(capsys):
    assert main(["bench", "--tiny-only", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    tiny = result["tiny"]
    assert tiny["adversarial_step"]["step_s"] > 0 and tiny["adversarial_step"]["peak_memory_mb"] > 0
    assert tiny["pruned_speedup"] > 0 and "paper" not in result
