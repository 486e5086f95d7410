import os
import pickle

import numpy as np
import pytest
import torch
from stprivacy.data import (
    ClipDataset,
    Normalizer,
    find_split_lists,
    hmdb51_split,
    load_all,
    load_privacy_labels,
    ucf101_split,
)
from stprivacy.data.synthetic import ACTIONS, render_set
from stprivacy.run import label_report

from visioncore.safe_pickle import UnsafePickleError
from visioncore.video import write_video

CORNERS = [0, 3, 12, 15]


def test_renderer_puts_static_cues_on_corners_and_the_actor_in_the_middle_band():
    data = render_set(200, seed=0)
    assert data.videos.shape == (200, 8, 32, 32, 3) and data.videos.dtype == np.uint8
    assert data.static_mask[:, :, CORNERS].any(-1).all()
    assert not np.delete(data.static_mask, CORNERS, axis=2).any()
    assert not data.actor_mask[:, :, CORNERS].any()  # never in a corner tubelet
    per_slice = data.actor_mask.sum(-1)
    assert per_slice.min() >= 4 and per_slice.max() <= 6
    # blob side = attribute 0: a static blob on the left (column 0) or right (column 3) corners
    left = data.static_mask[:, 0, [0, 12]].any(-1)
    assert np.array_equal(~left, data.privacy[:, 0].astype(bool))
    # attributes independent and balanced, the action too
    assert np.abs(data.privacy.mean(0) - 0.5).max() < 0.1
    assert np.abs(np.corrcoef(data.privacy.T) - np.eye(5)).max() < 0.25
    assert set(np.unique(data.actions)) == {0, 1, 2, 3}


def test_renderer_actor_moves_in_its_direction():
    data = render_set(40, seed=1)
    for video, action in zip(data.videos, data.actions):
        bright = video.astype(int).sum(-1) > 200  # the actor is brighter than the dim background (sum <= 117)
        bright[:, :8, :8] = bright[:, :8, 24:] = bright[:, 24:, :8] = bright[:, 24:, 24:] = (
            False  # not the blob
        )
        ys, xs = [], []
        for frame in bright:
            y, x = np.nonzero(frame)
            ys.append(y.mean())
            xs.append(x.mean())
        dx, dy = xs[-1] - xs[0], ys[-1] - ys[0]
        expected = {0: dx > 10, 1: dx < -10, 2: dy > 10, 3: dy < -10}[int(action)]
        assert expected, (action, dx, dy)


def test_synthetic_layout_round_trips_through_the_loaders(synthetic_root):
    split = hmdb51_split(synthetic_root / "videos", synthetic_root / "splits", 1)
    assert split.classes == sorted(ACTIONS) and len(split.train) == 24 and len(split.test) == 12
    labels = load_privacy_labels(synthetic_root / "privacy_labels.pickle")
    assert len(labels) == 36 and all(item in labels for item in split.train + split.test)
    ds = ClipDataset(split.test, labels, num_frames=8, stride=1, size=32)
    video, action, privacy = ds[0]
    assert video.shape == (3, 8, 32, 32) and video.dtype == torch.uint8 and privacy.shape == (5,)
    # ffv1 is lossless: the decoded clip is the rendered video (videos are numbered in render order)
    index = int(split.test[0].stem.rsplit("_", 1)[1])
    rendered = render_set(36, seed=3).videos[index]
    assert torch.equal(video.permute(1, 2, 3, 0), torch.from_numpy(rendered))
    assert split.classes[action] == split.test[0].class_name
    clips = load_all(ds)
    assert clips.videos.shape == (12, 3, 8, 32, 32)


def test_normalizer_zero_is_the_mean_colour():
    norm = Normalizer()
    x = torch.randint(0, 256, (2, 3, 4, 8, 8), dtype=torch.uint8)
    assert torch.equal(norm.to_uint8(norm(x)), x)
    assert norm.to_uint8(torch.zeros(1, 3, 1, 1, 1)).flatten().tolist() == [128, 128, 128]


def _pickle(path, obj):
    path.write_bytes(pickle.dumps(obj))
    return path


def test_label_pickles_are_matched_on_class_and_stem_and_checked(tmp_path):
    good = {
        "swing_baseball/v_a.mp4": np.array([[1, 0, 1, 0, 0]]),
        "Punch/v_b.mp4": np.array([[0, 1, 1, 1, 0]]),
    }
    labels = load_privacy_labels(_pickle(tmp_path / "l.pickle", good))
    assert labels.table[("swing_baseball", "v_a")].tolist() == [1, 0, 1, 0, 0]
    assert labels.positive_rates()["skin_color"] == 0.5
    with pytest.raises(FileNotFoundError):
        load_privacy_labels(tmp_path / "absent.pickle")
    with pytest.raises(ValueError, match="expected a dict"):
        load_privacy_labels(_pickle(tmp_path / "list.pickle", [1, 2]))
    with pytest.raises(ValueError, match=r"\(1, 5\)"):
        load_privacy_labels(_pickle(tmp_path / "shape.pickle", {"A/b.mp4": np.zeros((2, 5), np.int64)}))
    with pytest.raises(ValueError, match="integer"):
        load_privacy_labels(_pickle(tmp_path / "float.pickle", {"A/b.mp4": np.zeros((1, 5))}))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_that_calls_a_function_is_refused_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _pickle(tmp_path / "evil.pickle", {"A/b.mp4": _Evil()})
    with pytest.raises(UnsafePickleError, match="evil.pickle"):
        load_privacy_labels(path)
    assert not (tmp_path / "PWNED").exists()


def _tiny_video(path):
    write_video(path, np.zeros((4, 16, 16, 3), np.uint8), fps=4, codec="ffv1")


def test_ucf101_split_lists(tmp_path):
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (lists / "trainlist01.txt").write_text("Archery/v_Archery_g01_c01.avi 2\n")
    (lists / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi\n")
    for rel in ("Archery/v_Archery_g01_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi"):
        (tmp_path / "videos" / rel).parent.mkdir(parents=True, exist_ok=True)
        _tiny_video(tmp_path / "videos" / rel)
    split = ucf101_split(tmp_path / "videos", lists, 1)
    assert split.classes == ["ApplyEyeMakeup", "Archery"]
    assert [(i.label, i.stem) for i in split.train] == [(1, "v_Archery_g01_c01")]
    assert split.test[0].class_name == "ApplyEyeMakeup"
    assert find_split_lists(tmp_path, 1) == ("ucf101", lists)
    (lists / "testlist01.txt").write_text("ApplyEyeMakeup/v_missing.avi\n")
    with pytest.raises(FileNotFoundError, match="testlist01.txt.*v_missing.avi"):
        ucf101_split(tmp_path / "videos", lists, 1)


def test_hmdb51_split_naming_an_absent_video(tmp_path):
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "kick_test_split1.txt").write_text("a.avi 1\nb.avi 2\nc.avi 0\n")
    (tmp_path / "videos" / "kick").mkdir(parents=True)
    _tiny_video(tmp_path / "videos" / "kick" / "a.avi")
    with pytest.raises(FileNotFoundError, match=r"kick_test_split1.txt.*b\.avi"):
        hmdb51_split(tmp_path / "videos", tmp_path / "splits", 1)
    split = hmdb51_split(tmp_path / "videos", tmp_path / "splits", 1, check=False)
    assert len(split.train) == 1 and len(split.test) == 1  # usage 0 is left out


def test_label_report_counts_rates_and_coverage(synthetic_root):
    report = label_report(synthetic_root / "privacy_labels.pickle", root=synthetic_root / "splits", split=1)
    assert report["keys"] == 36 and len(report["positive_rate_by_position"]) == 5
    assert report["split"]["dataset"] == "hmdb51"
    assert report["split"]["train"] == {"videos": 24, "labelled": 24, "fraction": 1.0}
    assert report["split"]["labels_not_in_split"] == 0
