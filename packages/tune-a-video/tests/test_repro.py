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


def test_luma_chroma_latent_is_exact_and_keeps_layout_across_colours():
    from tune_a_video.latent import LumaChromaAutoencoder

    ae = LumaChromaAutoencoder(luma_scale=2.0, chroma_scale=0.5)
    red, blue = _video("red") * 2 - 1, _video("blue") * 2 - 1  # (3, f, h, w) in [-1, 1]
    frames = red.permute(1, 0, 2, 3)
    latent = ae.encode(frames).latent_dist.mode()
    assert torch.allclose(ae.decode(latent).sample, frames, atol=1e-5)  # lossless
    assert torch.equal(ae.encode(frames).latent_dist.sample(), latent)  # deterministic posterior
    assert ae.encode(-torch.ones(1, 3, 2, 2)).latent_dist.mode().abs().max() < 1e-6  # black is 0
    wide = LumaChromaAutoencoder(luma_scale=2.0, chroma_scale=0.5).to(
        torch.float64
    )  # nn.Module.to still works
    torch.testing.assert_close(wide.encode(frames.double()).latent_dist.mode().float(), latent)

    def dist(a, b, to_latent):
        a, b = a.permute(1, 0, 2, 3), b.permute(1, 0, 2, 3)
        if to_latent:
            a, b = ae.encode(a).latent_dist.mode(), ae.encode(b).latent_dist.mode()
        return float((a - b).pow(2).sum())

    shifted_blue = torch.roll(blue, shifts=6, dims=-1)  # the blue square elsewhere
    # RGB: a red square is about as far from a blue square at its place as from one elsewhere (layout lost) ...
    assert dist(red, blue, False) > 0.6 * dist(red, shifted_blue, False)
    # ... in the latent the same place is much closer: the layout survives a colour change
    assert dist(red, blue, True) < 0.3 * dist(red, shifted_blue, True)


def test_text_follow_classifier_is_right_on_the_training_images():
    """The colour + area rule of text_follow_acc, with the data's median areas, accepts every training image (the
    first reference, one centred object of 16 px, rejected about 2 %) and rejects a frame-filling field."""
    from tune_a_video.data.synthetic import ShapeImages
    from tune_a_video.repro import ReproConfig, nearest_color, reference_areas

    cfg = ReproConfig()
    areas = reference_areas(cfg)
    assert areas["square"] > areas["circle"] > 16
    images, captions = ShapeImages(16, cfg.colors, cfg.shapes, caption_dropout=0.0).sample(
        256, np.random.default_rng(7)
    )
    objects = find_objects(images.permute(1, 0, 2, 3) / 2 + 0.5, cfg.object_threshold)
    for i, caption in enumerate(captions):
        _, color, shape = caption.split()[:3]
        assert nearest_color(objects.color[i], cfg.colors) == color
        assert 0.5 <= objects.area[i] / areas[shape] <= 2.0
    field = find_objects(torch.ones(3, 1, 16, 16) * torch.tensor([0.0, 0.0, 1.0])[:, None, None, None], 0.3)
    assert field.area[0] / areas["square"] > 2.0


def test_per_frame_2d_wrapper_equals_the_2d_unet_on_each_frame(unet_2d):
    from tune_a_video.repro import PerFrame2D

    x = torch.randn(1, 4, 3, 8, 8)
    ctx = torch.randn(1, 77, 32)
    with torch.no_grad():
        out = PerFrame2D(unet_2d)(x, 10, ctx).sample
        for f in range(3):
            assert torch.allclose(out[:, :, f], unet_2d(x[:, :, f], 10, ctx).sample, atol=1e-6)


TOY = [
    "seeds=[0]", "pretrain_steps=3", "pretrain_batch=4", "tune_steps=2", "inversion_steps=3", "sample_steps=3",
    "loss_pairs=2", "context_tokens=8", "norm_num_groups=8", "train_text_encoder=true", "text_layers=1",
    "text_follow_samples=1", "latent=luma_chroma",
]  # fmt: skip


def test_repro_runs_at_toy_size_and_reuses_its_cached_pretrained_model(tmp_path, capsys):
    metrics = run_repro(tmp_path, "repro", TOY)
    assert list(metrics) == list(METRIC_KEYS)
    assert metrics["inflation_max_abs_diff"] < 1e-5  # exact at any training state
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert [p["guidance"] for p in metrics["edit_vs_guidance"]] == [1.0, 3.0, 7.5, 12.5]
    assert all(0 <= p["edit_color_acc"] <= 1 for p in metrics["edit_vs_guidance"])
    (cache,) = (tmp_path / "pretrained").iterdir()
    from tune_a_video.train import load_components

    assert (
        load_components(cache).vae.config.luma_scale == 4.0
    )  # a complete SD folder (make-tiny-sd --pretrain's)
    assert json.loads((cache / "tokenizer/tokenizer_config.json").read_text())["model_max_length"] == 8
    assert json.loads((cache / "unet/config.json").read_text())["norm_num_groups"] == 8
    # the text encoder was pretrained jointly: its saved weights left the seeded initialisation
    from safetensors.torch import load_file
    from tune_a_video.tiny_sd import tiny_text_encoder

    torch.manual_seed(0)  # the repro's pretrain_seed, set right before the encoder is built
    initial = tiny_text_encoder(num_layers=1).state_dict()
    saved = load_file(cache / "text_encoder/model.safetensors")
    changed = [k for k in saved if k in initial and not torch.equal(saved[k], initial[k])]
    assert any(k.endswith("final_layer_norm.weight") for k in changed) and len(changed) > 5
    for name in ("seed0_edit_inverted.gif", "seed0_edit_2d.gif", "seed0_strip.png", "edit_vs_guidance.png"):
        assert (tmp_path / name).is_file()
    first_out = capsys.readouterr().out
    assert "edit_color_acc >= 0.8" in first_out and "pretrain step" in first_out
    # rerun: the pretrained model comes from the cache (no pretraining) and every number is reproduced
    again = run_repro(tmp_path, "repro", TOY)
    second_out = capsys.readouterr().out
    assert "reused from the cache" in second_out and "pretrain step" not in second_out
    assert again == metrics
    # a different pretraining config is a different cache entry
    from tune_a_video.repro import ReproConfig, pretrain_key

    assert pretrain_key(ReproConfig(pretrain_steps=3)) != pretrain_key(ReproConfig(pretrain_steps=4))
    assert pretrain_key(ReproConfig(tune_steps=3)) == pretrain_key(ReproConfig(tune_steps=4))
