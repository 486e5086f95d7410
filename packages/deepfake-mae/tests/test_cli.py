import json

import numpy as np
import pytest
from deepfake_mae.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys, synthetic_root):
    code, _, err = _run(
        capsys, "pretrain", "--config", "tiny", "--set", f"data.root={tmp_path}", "--out", str(tmp_path / "o")
    )
    assert code == 2 and "split file not found" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(
        capsys, "pretrain", "--config", "tiny", "--set", "model.nope=3", "--out", str(tmp_path / "o")
    )
    assert code == 2 and "nope" in err and err.startswith("error:")
    code, _, err = _run(capsys, "pretrain", "--config", "nonexistent", "--out", str(tmp_path / "o"))
    assert code == 2 and "nonexistent" in err
    code, _, err = _run(
        capsys,
        "pretrain",
        "--config",
        "tiny",
        "--set",
        f"data.root={synthetic_root}",
        "--init-from",
        str(tmp_path / "missing.safetensors"),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and "missing.safetensors" in err
    code, _, err = _run(capsys, "evaluate", "--config", "tiny", "--model", str(tmp_path / "nomodel"))
    assert code == 2 and "nomodel" in err
    code, _, err = _run(capsys, "evaluate", "--config", "tiny", "--model", str(tmp_path), "--perturb", "x:1")
    assert code == 2


def test_wrong_architecture_checkpoint_is_reported(tmp_path, capsys, synthetic_root):
    from deepfake_mae.models.detector import DeepfakeDetector

    mae = dict(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, decoder_embed_dim=16)
    DeepfakeDetector(mae=dict(mae, decoder_depth=1, decoder_num_heads=2)).save_pretrained(tmp_path / "det")
    cfg = tmp_path / "det" / "config.json"
    conf = json.loads(cfg.read_text())
    conf["mae"]["embed_dim"] = 32  # edited config: the weights no longer fit
    cfg.write_text(json.dumps(conf))
    code, _, err = _run(
        capsys,
        "evaluate",
        "--config",
        "tiny",
        "--set",
        f"data.root={synthetic_root}",
        "--model",
        str(tmp_path / "det"),
    )
    assert code == 2 and "det" in err and "shape" in err


def test_preprocess_with_supplied_landmarks_and_report(tmp_path, capsys):
    from deepfake_mae.data.preprocess import TEMPLATE_5, five_from_68
    from deepfake_mae.data.synthetic import FaceVideoGenerator

    from visioncore.video import write_video

    video = FaceVideoGenerator(size=96, num_frames=4, noise=0.0).identity_videos(
        np.random.default_rng(0), ()
    )["Real"]
    frames = np.zeros((4, 128, 160, 3), np.uint8)
    frames[:, 10:106, 40:136] = video.frames  # the face somewhere inside a larger frame
    (tmp_path / "vids").mkdir()
    write_video(tmp_path / "vids" / "clip.mp4", frames, fps=25, codec="ffv1")
    lm = video.landmarks + np.array([40.0, 10.0], np.float32)
    (tmp_path / "lm").mkdir()
    np.save(tmp_path / "lm" / "clip.npy", lm)
    (tmp_path / "vids" / "broken.mp4").write_bytes(b"not a video")
    np.save(tmp_path / "lm" / "broken.npy", lm)
    code, out, err = _run(
        capsys,
        "preprocess",
        str(tmp_path / "vids"),
        "--out",
        str(tmp_path / "Real/c23"),
        "--size",
        "64",
        "--landmarks",
        str(tmp_path / "lm"),
    )
    assert code == 0 and "1 failed" in out and "broken" in err
    mapped = np.load(tmp_path / "Real/c23/landmarks/clip.npy")
    assert mapped.shape == (4, 68, 2)
    five = five_from_68(mapped).mean(0) / 64  # aligned: the 5 points sit near the template
    assert np.abs(five - TEMPLATE_5).max() < 0.08
    report = json.loads((tmp_path / "Real/c23/report.json").read_text())
    assert report["videos"] == 2 and len(report["failed"]) == 1


def test_preprocess_reports_frames_without_faces(tmp_path, capsys):
    from visioncore.video import write_video

    noise = np.random.default_rng(0).integers(0, 30, (3, 64, 64, 3), dtype=np.uint8)
    (tmp_path / "v").mkdir()
    write_video(tmp_path / "v" / "empty.mp4", noise, fps=25, codec="ffv1")
    code, out, err = _run(
        capsys, "preprocess", str(tmp_path / "v"), "--out", str(tmp_path / "o"), "--size", "32"
    )
    assert code == 0 and "1 failed" in out and "no face" in err
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["failed"][0]["frames_without_face"] == [0, 1, 2]


def test_wrong_landmark_shape_in_evaluate(tmp_path, capsys, synthetic_root):
    import shutil

    from deepfake_mae.config import detector_kwargs, get_config
    from deepfake_mae.models.detector import DeepfakeDetector

    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    np.save(root / "Real/c23/landmarks/010.npy", np.zeros((8, 10, 2)))
    cfg = get_config("tiny")
    DeepfakeDetector(**detector_kwargs(cfg)).save_pretrained(tmp_path / "det")
    code, _, err = _run(
        capsys, "evaluate", "--config", "tiny", "--set", f"data.root={root}", "--model", str(tmp_path / "det")
    )
    assert code == 2 and "010.npy" in err and "(8, 10, 2)" in err


@pytest.mark.parametrize("configs", [["tiny"]])
def test_bench_reports_throughput(capsys, configs):
    code, out, _ = _run(capsys, "bench", "--configs", *configs, "--steps", "1")
    assert code == 0
    row = json.loads(out)["tiny"]
    assert (
        row["pretrain_samples_per_s"] > 0
        and row["pretrain_gflop_per_step"] > 0
        and row["peak_memory_mib"] > 0
    )


def test_predict_prints_probability_and_writes_part_png(tmp_path, capsys, synthetic_root):
    from deepfake_mae.config import detector_kwargs, get_config
    from deepfake_mae.models.detector import DeepfakeDetector

    DeepfakeDetector(**detector_kwargs(get_config("tiny"))).save_pretrained(tmp_path / "det")
    faces = synthetic_root / "MouthSwap/c23"
    code, out, _ = _run(
        capsys,
        "predict",
        "--config",
        "tiny",
        str(faces / "cropped_faces/010_011.avi"),
        "--landmarks",
        str(faces / "landmarks"),
        "--model",
        str(tmp_path / "det"),
        "--out",
        str(tmp_path / "p"),
    )
    assert code == 0 and "fake probability" in out and "mouth=" in out
    assert (tmp_path / "p/010_011_parts.png").stat().st_size > 0
    code, _, err = _run(
        capsys,
        "predict",
        "--config",
        "tiny",
        str(faces / "cropped_faces/010_011.avi"),
        "--landmarks",
        str(tmp_path),
        "--model",
        str(tmp_path / "det"),
    )
    assert code == 2 and "010_011.npy" in err


def test_evaluate_and_predict_run_in_bf16_on_the_cpu(tmp_path, capsys, synthetic_root):
    """Both inference verbs take --device/--dtype; bf16 scores stay close to fp32's."""
    import torch
    from deepfake_mae.config import detector_kwargs, get_config
    from deepfake_mae.models.detector import DeepfakeDetector

    torch.manual_seed(0)
    DeepfakeDetector(**detector_kwargs(get_config("tiny"))).save_pretrained(tmp_path / "det")
    common = ["--config", "tiny", "--set", f"data.root={synthetic_root}", "--model", str(tmp_path / "det")]
    for dtype in ("fp32", "bf16"):
        code, _, err = _run(
            capsys, "evaluate", *common, "--device", "cpu", "--dtype", dtype, "--out", str(tmp_path / dtype)
        )
        assert code == 0, err
    fp32, bf16 = (json.loads((tmp_path / d / "metrics.json").read_text())["clean"] for d in ("fp32", "bf16"))
    assert fp32.keys() == bf16.keys() and all(abs(fp32[k] - bf16[k]) <= 0.3 for k in fp32)
    faces = synthetic_root / "MouthSwap/c23"
    video = str(faces / "cropped_faces/010_011.avi")
    code, out, err = _run(
        capsys, "predict", *common, video, "--landmarks", str(faces / "landmarks"), "--device", "cpu", "--dtype", "bf16",
        "--out", str(tmp_path / "p"),
    )  # fmt: skip
    assert code == 0, err
    assert "fake probability" in out and (tmp_path / "p/010_011_parts.png").stat().st_size > 0
    code, _, err = _run(capsys, "evaluate", *common, "--device", "nonsense")
    assert code == 2 and "nonsense" in err


def test_demo_runs_the_pipeline_and_learns(tmp_path, capsys):
    code, _, _ = _run(capsys, "demo", "--out", str(tmp_path / "demo"))
    metrics = json.loads((tmp_path / "demo/metrics.json").read_text())
    assert code == 0 and metrics["pretrain_loss_last"] < 0.9 * metrics["pretrain_loss_first"]
    assert metrics["kind"].startswith("smoke check")  # labelled: the paper's effect is repro's job
    assert all(0.0 <= metrics[k] <= 1.0 for k in metrics if "auc" in k)
    assert (tmp_path / "demo/parts.png").is_file() and (
        tmp_path / "demo/train/model/model.safetensors"
    ).is_file()


def test_every_shipped_config_loads_with_paper_defaults():
    from deepfake_mae.config import get_config

    from visioncore.config import config_names

    names = config_names("deepfake_mae")
    assert {"paper", "tiny", "repro", "ffpp_cross_dataset", "ffpp_loo"} <= set(names)
    configs = {n: get_config(n) for n in names}
    paper = configs["paper"]
    assert (
        paper.model.embed_dim,
        paper.model.depth,
        paper.model.decoder_embed_dim,
        paper.model.decoder_depth,
    ) == (768, 12, 512, 8)
    assert (
        paper.masking.mask_ratio == 0.75
        and paper.train.layer_decay == 0.75
        and paper.detector.drop_path == 0.1
    )
    assert configs["ffpp_loo"].data.test_methods == ["Deepfakes"]
    assert paper.detector.margin_loss == "part"


@pytest.mark.parametrize(
    "override, key",
    [
        ("masking.mask_ratio=1.5", "mask_ratio"),
        ("pretrain.batch_size=0", "batch_size"),
        ("train.steps=-1", "train.steps"),
        ("model.patch_size=5", "patch_size"),
        ("masking.parts_per_sample=[0]", "parts_per_sample"),
        ("detector.margin_loss=max", "margin_loss"),
        ("repro.seeds=[]", "seeds"),
    ],
)
def test_config_schema_refuses_values_that_make_no_sense(override, key, capsys, tmp_path):
    code, _, err = _run(
        capsys, "pretrain", "--config", "tiny", "--set", override, "--out", str(tmp_path / "o")
    )
    assert code == 2 and key in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
