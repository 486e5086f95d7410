import json

import h5py
import numpy as np
import pytest
import torch
from mist_videoqa.cli import main
from mist_videoqa.extract import ClipEncoder, extract_video_features, frame_and_crops

from visioncore.video import write_video


def test_frame_and_crops_grid_order():
    frame = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    frame[0, 0, :4, 4:] = 255  # top-right quadrant red
    inputs = frame_and_crops(frame, grid=2, crop=4)
    assert inputs.shape == (1, 5, 3, 4, 4)
    red = inputs[0, :, 0].mean(dim=(-1, -2))
    assert red[2] > red[1] and red[2] > red[3] and red[2] > red[4]  # crops row-major: slot 2 = top-right


@pytest.fixture
def tiny_clip(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config={"vocab_size": 40, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "eos_token_id": 1},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 16},
        projection_dim=8,
    )  # fmt: skip
    folder = tmp_path / "clip"
    CLIPModel(config).save_pretrained(folder)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in letters + "?":
        vocab.setdefault(ch + "</w>", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


def test_extract_features_resumes_and_feeds_the_loader(tiny_clip, tmp_path, capsys):
    root = tmp_path / "data"
    folder = root / "datasets" / "agqa"
    folder.mkdir(parents=True)
    items = [
        {"video_id": f"v{i}", "question_id": f"q{i}", "question": "what is it?", "answer": "a"}
        for i in range(2)
    ]
    (folder / "agqa_test.jsonl").write_text(json.dumps(items))
    (folder / "vocab.json").write_text(json.dumps({"a": 0}))
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(2):
        frames = np.random.default_rng(i).integers(0, 255, (10, 24, 24, 3), dtype=np.uint8)
        write_video(videos / f"v{i}.mp4", frames, fps=5)
    encoder = ClipEncoder(tiny_clip, torch.device("cpu"))
    h5 = root / "feats" / "agqa" / "frame_feat" / "clip_patch_feat_all.h5"
    (h5.parent / (h5.name + ".parts")).mkdir(parents=True)
    np.save(
        h5.parent / (h5.name + ".parts") / "v1.npy", np.full((32, 17, 8), 7.0, np.float16)
    )  # "already done"
    extract_video_features(
        encoder, {"v0": videos / "v0.mp4", "v1": videos / "v1.mp4"}, h5, log=lambda _: None
    )
    with h5py.File(h5) as f:
        assert f["features"].shape == (2, 32, 17, 8) and (f["features"][1] == 7).all()  # resumed, not redone
        assert np.isfinite(f["features"][0]).all() and np.abs(f["features"][0]).sum() > 0
    argv = ["extract-features", "--clip", str(tiny_clip), "--videos", str(videos), "--splits", "test", "--set",
            f"data.root={root}", "--set", "model.feature_dim=8", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    with h5py.File(root / "feats" / "agqa" / "text_feat" / "clip_text_feat.h5") as f:
        assert f["features"].shape == (2, 8) and sorted(x.decode() for x in f["ids"][()]) == ["q0", "q1"]
    assert main([*argv[:4], str(tmp_path / "none"), *argv[5:]]) == 2
    assert "none" in capsys.readouterr().err
