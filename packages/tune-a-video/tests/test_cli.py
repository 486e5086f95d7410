import json
import shutil

import pytest
from tune_a_video.cli import main
from tune_a_video.data import load_training_video


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_missing_unet_folder(tiny_sd, source_video_file, tmp_path, capsys):
    broken = tmp_path / "sd"
    shutil.copytree(tiny_sd, broken)
    shutil.rmtree(broken / "unet")
    code = main(["train", "--config", "tiny", "--pretrained", str(broken), "--out", str(tmp_path / "o"),
                 "--set", f"train_data.video_path={source_video_file}"])  # fmt: skip
    assert code == 2 and "unet" in _error_line(capsys)


def test_video_shorter_than_requested(tiny_sd, source_video_file, tmp_path, capsys):
    code = main(["train", "--config", "tiny", "--pretrained", str(tiny_sd), "--out", str(tmp_path / "o"),
                 "--set", f"train_data.video_path={source_video_file}", "--set", "train_data.n_sample_frames=50"])  # fmt: skip
    assert code == 2 and "red-square.mp4" in _error_line(capsys)


def test_size_not_divisible_by_8(source_video_file):
    with pytest.raises(ValueError, match="divisible by 8"):
        load_training_video(source_video_file, 4, 30, 32)


def test_unknown_scheduler(tiny_sd, source_video_file, tmp_path, capsys):
    broken = tmp_path / "sd"
    shutil.copytree(tiny_sd, broken)
    config_file = broken / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config["_class_name"] = "MadeUpScheduler"
    config_file.write_text(json.dumps(config))
    code = main(["train", "--config", "tiny", "--pretrained", str(broken), "--out", str(tmp_path / "o"),
                 "--set", f"train_data.video_path={source_video_file}"])  # fmt: skip
    line = _error_line(capsys)
    assert code == 2 and "MadeUpScheduler" in line and "scheduler" in line


def test_unknown_config_key(capsys):
    assert main(["train", "--config", "tiny", "--set", "train_data.no_such_key=1"]) == 2
    assert "no_such_key" in _error_line(capsys)


def test_official_yaml_keys_load(tmp_path):
    from tune_a_video.config import load_train_config

    cfg = load_train_config("man-skiing")
    assert cfg.train_data.n_sample_frames == 24 and cfg.learning_rate == 3e-5 and cfg.max_train_steps == 500
    assert cfg.validation_data.use_inv_latent and cfg.validation_data.guidance_scale == 12.5
    assert (
        cfg.mixed_precision == "fp16" and cfg.gradient_checkpointing and cfg.train_data.sample_frame_rate == 2
    )
