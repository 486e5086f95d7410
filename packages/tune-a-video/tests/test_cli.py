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


PRETRAIN_TOY = ["pretrain_steps=2", "pretrain_batch=2", "text_layers=1", "context_tokens=8", "norm_num_groups=8",
                "latent=luma_chroma", "luma_scale=3.0", "train_text_encoder=true"]  # fmt: skip


def test_make_tiny_sd_pretrain_writes_an_sd_folder_that_train_loads(source_video_file, tmp_path, capsys):
    from tune_a_video.latent import LumaChromaAutoencoder
    from tune_a_video.train import load_components

    sd = tmp_path / "pretrained-sd"
    args = ["make-tiny-sd", "--pretrain", "--out", str(sd)]
    assert main([*args, *(x for kv in PRETRAIN_TOY for x in ("--set", kv))]) == 0
    assert "pretrain step 1" in capsys.readouterr().out
    assert json.loads((sd / "pretrain.json").read_text())["config"]["pretrain_steps"] == 2
    parts = load_components(sd)
    assert isinstance(parts.vae, LumaChromaAutoencoder) and parts.vae.config.luma_scale == 3.0
    assert parts.noise_scheduler.config.beta_schedule == "linear"  # the schedule it was trained with
    assert parts.tokenizer.model_max_length == 8
    # the SD entry point tunes on it (validation inverts and decodes through the luma/chroma latent)
    code = main(["train", "--config", "tiny", "--pretrained", str(sd), "--out", str(tmp_path / "tuned"),
                 "--set", f"train_data.video_path={source_video_file}", "--set", "max_train_steps=2",
                 "--set", "validation_steps=2", "--set", "checkpointing_steps=2"])  # fmt: skip
    assert code == 0 and (tmp_path / "tuned" / "inv_latents" / "ddim_latent-2.pt").is_file()
    # and the tuned pipeline folder (holding the weightless latent) samples an edit from its inversion
    code = main(["generate", "--model", str(tmp_path / "tuned"), "--prompt", "a blue square moving right",
                 "--inverted-latents", str(tmp_path / "tuned" / "inv_latents" / "ddim_latent-2.pt"),
                 "--video-length", "4", "--height", "32", "--width", "32", "--steps", "2",
                 "--out", str(tmp_path / "blue.gif"), "--device", "cpu"])  # fmt: skip
    assert code == 0 and (tmp_path / "blue.gif").stat().st_size > 0


def test_make_tiny_sd_refuses_pretraining_settings_without_pretrain(tmp_path, capsys):
    assert main(["make-tiny-sd", "--out", str(tmp_path / "sd"), "--set", "pretrain_steps=2"]) == 2
    assert "--pretrain" in _error_line(capsys)
