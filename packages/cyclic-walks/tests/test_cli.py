import json

import torch
from cyclic_walks.bench import bench_setting
from cyclic_walks.cli import main
from cyclic_walks.models import CyclicWalks
from PIL import Image


def test_make_synthetic_evaluate_visualize(tmp_path, capsys):
    assert (
        main(["make-synthetic", "--out", str(tmp_path / "data"), "--num-train", "2", "--num-val", "4"]) == 0
    )
    root = tmp_path / "data" / "VOCdevkit" / "VOC2012"
    assert (root / "ImageSets" / "Segmentation" / "val.txt").is_file()
    torch.manual_seed(0)
    CyclicWalks(feature_dim=27, num_slots=5, mlp_hidden=27).save_pretrained(tmp_path / "model")
    common = ["--config", "tiny", "--set", f"data.root={root}", "--model", str(tmp_path / "model")]
    capsys.readouterr()
    for protocol in ("official", "clean"):
        assert main(["evaluate", *common, "--protocol", protocol, "--out", str(tmp_path / protocol)]) == 0
        result = json.loads((tmp_path / protocol / "metrics.json").read_text())
        assert result["protocol"] == protocol and 0 <= result["fg_ari"] <= 1 and result["num_images"] == 4
    capsys.readouterr()
    assert main(["evaluate", *common, "--task", "ss"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["miou"] <= 1
    assert main(["visualize", *common, "--out", str(tmp_path / "vis.png"), "--num-images", "2"]) == 0
    # 2 rows of (image, overlay, 5 slot maps) 64 px tiles with 2 px padding
    assert Image.open(tmp_path / "vis.png").size == (7 * 66 + 2, 2 * 66 + 2)
    # both inference verbs run in bfloat16 on the CPU, with scores close to float32's
    low = ["--device", "cpu", "--dtype", "bf16"]
    assert main(["evaluate", *common, "--protocol", "clean", *low, "--out", str(tmp_path / "bf16")]) == 0
    bf16 = json.loads((tmp_path / "bf16" / "metrics.json").read_text())
    fp32 = json.loads((tmp_path / "clean" / "metrics.json").read_text())
    assert abs(bf16["fg_ari"] - fp32["fg_ari"]) < 0.15 and bf16["num_images"] == 4
    assert main(["visualize", *common, *low, "--out", str(tmp_path / "vis16.png"), "--num-images", "2"]) == 0
    assert Image.open(tmp_path / "vis16.png").size == (7 * 66 + 2, 2 * 66 + 2)
    # a model whose feature dim does not fit the backbone is a one-line error
    CyclicWalks(feature_dim=8, num_slots=2, mlp_hidden=8).save_pretrained(tmp_path / "small")
    common[-1] = str(tmp_path / "small")
    assert main(["evaluate", *common]) == 2
    assert "small" in capsys.readouterr().err


def test_bench_reports_both_models():
    result = bench_setting("tiny", steps=1)
    assert result["tokens"] == 64 and result["feature_dim"] == 27
    for name in ("cyclic_walks", "decoder_baseline"):
        assert result[name]["step_seconds"] > 0 and result[name]["saved_activation_mib"] > 0
    # the decoder baseline keeps per-slot, per-token activations; the walks keep N x N matrices only
    assert result["activation_memory_ratio"] < 1


def test_demo_shows_the_effect_in_the_right_direction(tmp_path, capsys):
    """The demo's easier case: cyclic walks alone raise FG-ARI on held-out scenes; results written, model reloads."""
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["kind"].startswith("effect")
    assert metrics["fg_ari_trained"] >= metrics["fg_ari_init"] + 0.1
    assert metrics["walk_loss_last"] < metrics["walk_loss_first"]
    assert (tmp_path / "demo" / "masks.png").stat().st_size > 0
    assert CyclicWalks.from_pretrained(tmp_path / "demo" / "model").num_slots == 5
