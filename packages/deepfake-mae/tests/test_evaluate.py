import numpy as np
import pytest
import torch
from deepfake_mae.data.layout import VideoRecord
from deepfake_mae.evaluate import ClipPredictions, auc_by_set, parse_perturbation, zscore_part_scores
from deepfake_mae.repro import colour_baseline_auc, logistic_regression


def _records():
    return [
        VideoRecord("r0", "Real", 0, None, None),
        VideoRecord("r1", "Real", 0, None, None),
        VideoRecord("f0", "MouthSwap", 1, None, None),
        VideoRecord("f1", "EyeSwap", 1, None, None),
    ]


def test_video_level_auc_averages_clips_per_video():
    # r0 has one very high clip but a low mean; per-clip AUC would be imperfect, per-video it is perfect for MouthSwap.
    preds = ClipPredictions(
        scores=np.array([3.0, -5.0, 0.0, 0.1, 1.0, 1.2, -0.2, 0.2]),
        videos=np.array([0, 0, 1, 1, 2, 2, 3, 3]),
        labels=np.array([0, 0, 0, 0, 1, 1, 1, 1]),
        discrepancy=np.zeros((8, 3)),
    )
    aucs = auc_by_set(preds, _records())
    assert aucs["MouthSwap"] == 1.0  # means: r0 -1.0, r1 0.05, f0 1.1
    assert aucs["EyeSwap"] == 0.5  # f1 mean 0.0 sits between the reals
    assert aucs["aggregate"] == pytest.approx(0.75)
    ids, score, _ = preds.video_table()
    np.testing.assert_allclose(score, [-1.0, 0.05, 1.1, 0.0])


def test_zscore_uses_the_reference_reals_only():
    ref = np.exp(np.array([[0.0, 1.0], [2.0, 3.0]]))  # log means (1, 2), stds (1, 1)
    scores = zscore_part_scores(np.exp(np.array([[1.0, 2.0], [3.0, 4.0]])), ref)
    np.testing.assert_allclose(scores, [0.0, 2.0], atol=1e-5)


def test_perturbations_change_frames_in_the_expected_direction():
    clip = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    blurred = parse_perturbation("blur:2")(clip)
    assert blurred.float().diff(dim=-1).abs().mean() < clip.float().diff(dim=-1).abs().mean()
    grey = parse_perturbation("saturation:0")(clip)
    assert (grey.float().std(1) < 1.0).all()
    assert parse_perturbation("jpeg:10")(clip).shape == clip.shape
    with pytest.raises(ValueError, match="bad perturbation"):
        parse_perturbation("sharpen:3")


def test_logistic_regression_learns_a_linear_rule():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] - x[:, 2] > 0).astype(float)
    w, b = logistic_regression(x, y)
    assert w[0] > 0.5 and w[2] < -0.5 and abs(w[1]) < 0.3


def test_colour_baseline_is_at_chance_on_synthetic_part_swaps(synthetic_root):
    from deepfake_mae.data.dataset import FaceClipDataset
    from deepfake_mae.data.layout import REAL, ffpp_records

    make = lambda split, methods: FaceClipDataset(
        ffpp_records(synthetic_root, split, methods), 8, 32, 8, preload=True
    )
    auc = colour_baseline_auc(
        make("train", (REAL, "MouthSwap")), make("test", (REAL, "MouthSwap", "EyeSwap"))
    )
    assert 0.2 <= auc <= 0.8  # tiny sample: only rule out a colour give-away (AUC near 0 or 1)


def test_repro_end_to_end_on_two_workers_and_resumes(tmp_path, capsys):
    """The acceptance experiment's whole path at toy size: two worker processes, the issue's keys, then a rerun
    that resumes every finished task from its result.json and reproduces the same numbers."""
    import json

    from deepfake_mae.config import get_config
    from deepfake_mae.repro import METRIC_KEYS, run_repro

    overrides = [
        "model.embed_dim=16", "model.depth=1", "model.num_heads=2", "model.decoder_embed_dim=16",
        "model.decoder_depth=1", "model.decoder_num_heads=2", "pretrain.steps=3", "pretrain.batch_size=8",
        "pretrain.warmup_steps=1", "train.steps=2", "train.batch_size=4", "train.warmup_steps=1",
        "repro.train_pairs=3", "repro.val_pairs=2", "repro.test_pairs=3", "repro.num_frames=2",
        "data.clip_len=2", "data.max_frames=2", "data.train_max_frames=2", "repro.seeds=[0,1]", "repro.workers=2",
    ]  # fmt: skip
    cfg = get_config("repro", overrides)
    means = run_repro(cfg, tmp_path, log=lambda msg: None)
    assert list(means) == list(METRIC_KEYS)
    assert "auc_decoder_only_seen_frozen" in means and "auc_dual_unseen_finetuned" in means
    assert (
        means["auc_dual_unseen"] == means["auc_dual_unseen_finetuned"]
    )  # unsuffixed keys: network 2 finetuned
    assert all(0.0 <= v <= 1.0 for v in means.values())
    per_seed = json.loads((tmp_path / "per_seed.json").read_text())["per_seed"]
    assert set(per_seed) == {"0", "1"}
    assert "auc_dual_unseen_finetuned_mean_margin" in per_seed["0"]  # the average-margin option, per seed
    from safetensors.torch import load_file

    w0, w1 = (load_file(tmp_path / f"seed_{s}/mae_part/model/model.safetensors") for s in (0, 1))
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)  # the seeds really differ
    assert json.loads((tmp_path / "metrics.json").read_text()) == means
    assert "auc_dual_unseen" in capsys.readouterr().out
    # rerun in-process: nothing is trained again (the models' files are left untouched) and the numbers agree
    model = tmp_path / "seed_1" / "mae_random" / "model" / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    cfg.repro.workers = 1
    assert run_repro(cfg, tmp_path, log=lambda msg: None) == means
    assert model.stat().st_mtime_ns == stamp
    # the same directory with another config is refused, never silently reused
    cfg.pretrain.steps = 4
    with pytest.raises(ValueError, match="result.json holds the result of another config"):
        run_repro(cfg, tmp_path, log=lambda msg: None)
    cfg.repro.train_pairs = 4
    with pytest.raises(ValueError, match="synthetic.json: the data were made with other repro settings"):
        run_repro(cfg, tmp_path, log=lambda msg: None)
