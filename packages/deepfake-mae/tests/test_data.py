import json

import numpy as np
import pytest
import torch
from deepfake_mae.data.dataset import FaceClipDataset, clip_starts
from deepfake_mae.data.layout import (
    REAL,
    MissingLandmarksError,
    SplitError,
    VideoRecord,
    balance_real_fake,
    check_no_identity_leak,
    dfdc_labels,
    ffpp_records,
    list_records,
    load_landmarks,
)
from deepfake_mae.data.synthetic import FaceVideoGenerator, part_boxes_of, random_identity
from deepfake_mae.models.masking import part_boxes

from visioncore.video import read_video


def test_synthetic_layout_and_records(synthetic_root):
    root = synthetic_root
    assert (root / "Real/c23/cropped_faces/000.avi").is_file()
    assert np.load(root / "Real/c23/landmarks/000.npy").shape == (8, 68, 2)
    pairs = json.loads((root / "splits/test.json").read_text())
    a, b = pairs[0]
    assert (root / f"MouthSwap/c23/cropped_faces/{a}_{b}.avi").is_file()
    recs = ffpp_records(root, "test", (REAL, "MouthSwap", "EyeSwap"))
    assert sum(r.label == 0 for r in recs) == 4 and sum(r.label == 1 for r in recs) == 8
    assert read_video(recs[0].face_path).shape == (8, 3, 32, 32)
    # the uncropped source video (H.264, lossy) holds the face crop at offset (16, 16) of a 64x64 frame
    raw = read_video(root / "Real/c23/videos/000.mp4").float()
    face = read_video(root / "Real/c23/cropped_faces/000.avi").float()
    assert raw.shape == (8, 3, 64, 64)
    aligned = (raw[..., 16:48, 16:48] - face).abs().mean()
    assert aligned < 10 and aligned < (raw[..., 20:52, 20:52] - face).abs().mean() / 2
    assert (raw[..., :8, :] - 96).abs().mean() < 3  # grey background


def test_fakes_differ_only_inside_the_swapped_part():
    gen = FaceVideoGenerator(size=32, num_frames=4, noise=0.0)
    videos = gen.identity_videos(np.random.default_rng(3), ("MouthSwap", "NullSwap"))
    real, fake = videos["Real"].frames.astype(int), videos["MouthSwap"].frames.astype(int)
    box = part_boxes(videos["Real"].landmarks[0])[2].numpy()
    diff = np.abs(real - fake).max(-1)  # (T, H, W)
    outside = np.ones_like(diff[0], bool)
    outside[max(0, int(box[1]) - 3) : int(box[3]) + 4, max(0, int(box[0]) - 3) : int(box[2]) + 4] = False
    assert diff[:, outside].max() == 0  # same tone and motion everywhere outside the feathered mouth box
    assert diff[:, ~outside].max() > 40  # and a visibly different mouth inside it
    # identity-level boxes: the landmarks are the same for the real and its fakes
    np.testing.assert_array_equal(videos["Real"].landmarks, videos["MouthSwap"].landmarks)


def test_part_boxes_contain_every_expression():
    ident = random_identity(np.random.default_rng(0))
    boxes = part_boxes_of(ident)
    assert (boxes[:, 0] < boxes[:, 2]).all() and boxes[0, 3] <= boxes[1, 1] + 1e-9  # eyes above nose


def test_dataset_items_and_resizing(synthetic_root):
    recs = ffpp_records(synthetic_root, "val", (REAL,))
    ds = FaceClipDataset(recs, clip_len=4, image_size=64, max_frames=8)
    assert len(ds) == 2 * 2  # two real videos, two non-overlapping 4-frame clips each
    item = ds[1]
    assert item["frames"].shape == (4, 3, 64, 64) and item["frames"].dtype == torch.uint8
    small = FaceClipDataset(recs, clip_len=4, image_size=32, max_frames=8, preload=True)[1]
    torch.testing.assert_close(item["boxes"], small["boxes"] * 2)
    assert item["start"] == 4
    assert clip_starts(110, 25, 110) == [0, 25, 50, 75] and clip_starts(10, 25, 110) == [0]


def test_split_errors(tmp_path, synthetic_root):
    with pytest.raises(SplitError, match="split file not found"):
        ffpp_records(tmp_path, "test", (REAL,))
    with pytest.raises(SplitError, match="identity 001"):
        check_no_identity_leak({"train": [("000", "001")], "test": [("001", "002")]})
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits/test.json").write_text("{not json")
    with pytest.raises(SplitError, match="test.json"):
        ffpp_records(tmp_path, "test", (REAL,))


def test_missing_and_malformed_landmarks(tmp_path, synthetic_root):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(synthetic_root, root)
    (root / "Real/c23/landmarks/000.npy").unlink()
    with pytest.raises(MissingLandmarksError, match="000.npy"):
        ffpp_records(root, "train", (REAL,))
    np.save(tmp_path / "bad.npy", np.zeros((8, 67, 2)))
    with pytest.raises(ValueError, match=r"bad.npy.*\(8, 67, 2\)"):
        load_landmarks(tmp_path / "bad.npy")
    np.save(tmp_path / "five.npy", np.zeros((8, 5, 2)))
    assert load_landmarks(tmp_path / "five.npy").shape == (8, 5, 2)


def test_csv_lists_and_dfdc_metadata(tmp_path, synthetic_root):
    lst = tmp_path / "test_fake.csv"
    lst.write_text("000_001.avi 1\n\n001_000.avi 1\n")
    recs = list_records(synthetic_root, lst, method="MouthSwap")
    assert [r.label for r in recs] == [1, 1] and recs[0].name == "000_001"
    lst.write_text("000_001.avi fake\n")
    with pytest.raises(ValueError, match="test_fake.csv:1"):
        list_records(synthetic_root, lst, method="MouthSwap")
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"aalscayrfi.mp4": {"is_fake": 0}, "b.mp4": {"label": "FAKE"}}))
    assert dfdc_labels(meta) == {"aalscayrfi": 0, "b": 1}


def test_balance_real_fake():
    recs = [VideoRecord(str(i), "Real" if i < 2 else "F", int(i >= 2), None, None) for i in range(10)]
    out = balance_real_fake(recs, np.random.default_rng(0))
    assert sum(r.label == 0 for r in out) == sum(r.label == 1 for r in out) == 8
