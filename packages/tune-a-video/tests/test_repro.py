"""The acceptance experiment's measurements on hand-made videos, and its whole path at toy size."""

import json

import numpy as np
import pytest
import torch
from tune_a_video.data.synthetic import source_video
from tune_a_video.repro import (
    METRIC_KEYS,
    color_variance,
    displacement_ratio,
    edit_color_accuracy,
    find_objects,
    motion_correlation,
    run_repro,
)


def _video(color: str, frames: int = 8, size: int = 16) -> torch.Tensor:
    array, _ = source_video(frames, size, color, "square")
    return torch.from_numpy(array).permute(3, 0, 1, 2).float() / 255.0  # (3, f, h, w) in [0, 1]


def test_measurements_on_hand_made_videos():
    red, blue = find_objects(_video("red"), 0.3), find_objects(_video("blue"), 0.3)
    assert red.present.all() and np.all(np.diff(red.centroid_x) > 0)  # moves right
    assert motion_correlation(blue, red) == pytest.approx(1.0)
    assert displacement_ratio(blue, red) == pytest.approx(1.0, abs=0.05)
    colors = ["red", "green", "blue", "yellow"]
    assert edit_color_accuracy(blue, red, "blue", colors) == 1.0
    assert edit_color_accuracy(red, red, "blue", colors) == 0.0
    # a static object: no correlation; an empty frame counts as 0
    static = find_objects(_video("blue")[:, :1].repeat(1, 8, 1, 1), 0.3)
    assert motion_correlation(static, red) == 0.0 and displacement_ratio(static, red) == 0.0
    empty = _video("blue")
    empty[:, 3] = 0
    assert motion_correlation(find_objects(empty, 0.3), red) == 0.0
    assert edit_color_accuracy(find_objects(empty, 0.3), red, "blue", colors) == pytest.approx(7 / 8)
    # colour variance: a video switching colours varies more than a one-colour video
    mixed = _video("blue")
    mixed[:, ::2] = _video("red")[:, ::2]
    assert color_variance(find_objects(mixed, 0.3)) > 10 * color_variance(blue) + 1e-3


def test_repro_runs_at_toy_size_with_short_context_and_trained_text_encoder(tmp_path, capsys):
    overrides = [
        "seeds=[0]", "pretrain_steps=3", "pretrain_batch=4", "tune_steps=2", "inversion_steps=3",
        "sample_steps=3", "loss_pairs=2", "context_tokens=8", "norm_num_groups=8", "train_text_encoder=true",
    ]  # fmt: skip
    metrics = run_repro(tmp_path, "repro", overrides)
    assert list(metrics) == list(METRIC_KEYS)
    assert metrics["inflation_max_abs_diff"] < 1e-5  # exact at any training state
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert (
        json.loads((tmp_path / "model/tokenizer/tokenizer_config.json").read_text())["model_max_length"] == 8
    )
    unet_config = json.loads((tmp_path / "model/unet/config.json").read_text())
    assert unet_config["norm_num_groups"] == 8
    # the text encoder was pretrained jointly: its saved weights left the seeded initialisation
    from safetensors.torch import load_file
    from tune_a_video.tiny_sd import tiny_text_encoder

    torch.manual_seed(0)  # the repro's pretrain_seed, set right before the encoder is built
    initial = tiny_text_encoder().state_dict()
    saved = load_file(tmp_path / "model/text_encoder/model.safetensors")
    changed = [k for k in saved if k in initial and not torch.equal(saved[k], initial[k])]
    assert any(k.endswith("final_layer_norm.weight") for k in changed) and len(changed) > 10
    assert (tmp_path / "seed0_edit_inverted.gif").is_file()
    assert "edit_color_acc >= 0.8" in capsys.readouterr().out
