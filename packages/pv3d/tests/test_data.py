"""Toy-head writer and the VoxCeleb-layout loader: values, flips, and every validation error."""

import json
import shutil

import pytest
import torch
from pv3d.cameras import mirror_camera
from pv3d.data import DatasetError, VoxCelebDataset, sample_times
from pv3d.data.synthetic import head_cameras, load_heads, make_toy_heads, render_head


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    make_toy_heads(root, num_clips=3, num_frames=16, resolution=32, seed=0)
    return root


def test_toy_heads_layout_and_lossless_frames(toy):
    ds = VoxCelebDataset(toy, image_size=32, hflip=False)
    assert len(ds) == 3 and ds.cameras[0].shape == (16, 25)
    heads = load_heads(toy)
    head = heads[ds.videos[1].stem]
    t, c = head_cameras(head, 16)
    rgb, depth, mask = render_head(head, t, c, 32)
    clip = ds.clip(1)
    assert torch.allclose((clip + 1) / 2, rgb, atol=1 / 255 + 1e-6)  # ffv1 is lossless
    assert 0.05 < mask.float().mean() < 0.5 and (rgb[~mask.expand_as(rgb)] == 0).all()  # black background
    assert torch.allclose(ds.cameras[1], c, atol=1e-6)
    # the mouth moves: frames at different t differ even at one camera
    a, _, _ = render_head(head, torch.linspace(0, 1, 5), c[:1].expand(5, 25), 32)
    assert (a[1:] - a[0]).abs().sum(dim=(1, 2, 3)).max() > 0.5
    assert (depth[mask] > 2.3).all() and (depth[mask] < 2.7).all()


def test_sample_positions_times_and_flip(toy):
    ds = VoxCelebDataset(toy, image_size=32, hflip=True)
    flips = 0
    for seed in range(8):
        item = ds.sample(0, torch.Generator().manual_seed(seed))
        assert item["frames"].shape == (2, 3, 32, 32) and item["t"][0] <= item["t"][1]
        pos = (item["t"] * 15).round().long()
        # find the frames in the clip, flipped or not
        clip = ds.clip(0)
        same = all(torch.equal(item["frames"][i], clip[p]) for i, p in enumerate(pos))
        flipped = all(torch.equal(item["frames"][i], clip[p].flip(-1)) for i, p in enumerate(pos))
        assert same or flipped
        expected = ds.cameras[0][pos]  # the window start is 0: 16-frame clips
        assert torch.allclose(item["c"], mirror_camera(expected) if flipped else expected)
        flips += flipped
    assert 0 < flips < 8


def test_sample_times_follow_the_betas():
    t = sample_times(20000, torch.Generator().manual_seed(0))
    assert (t[:, 0] <= t[:, 1]).all()
    # E[max(Beta(2,1), Beta(1,2))] = 0.7
    assert abs(t[:, 1].mean().item() - 0.7) < 0.01


def _copy(toy, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(toy, root)
    return root


def test_validation_errors_name_the_file(toy, tmp_path):
    root = _copy(toy, tmp_path)
    first = (root / "voxceleb.list").read_text().split()[0]
    cam = root / "smoothed_camera2world" / first.replace(".mp4", ".json")
    good = cam.read_text()
    entries = json.loads(good)
    entries[3][1] = entries[3][1][:24]
    cam.write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match=r"entry 3 is not \[frame_name, \[25 floats\]\]"):
        VoxCelebDataset(root, image_size=32)
    cam.write_text(json.dumps(json.loads(good)[:15]))
    with pytest.raises(DatasetError, match="15 camera entries but .* has 16 frames"):
        VoxCelebDataset(root, image_size=32)
    cam.write_text(good)
    (root / "voxceleb.list").write_text(first + "\nmissing_clip.mp4\n")
    with pytest.raises(DatasetError, match="missing_clip.mp4"):
        VoxCelebDataset(root, image_size=32)
    cam.unlink()
    (root / "voxceleb.list").write_text(first + "\n")
    with pytest.raises(DatasetError, match="camera sequence missing"):
        VoxCelebDataset(root, image_size=32)
