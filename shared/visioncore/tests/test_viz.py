import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from visioncore.video import read_video
from visioncore.viz import frame_strip, overlay_segmentation, plot_curves, save_image_grid, save_video


def test_image_grid_layout_and_png(tmp_path):
    images = torch.arange(5, dtype=torch.uint8)[:, None, None, None].expand(5, 3, 4, 6) * 40
    grid = save_image_grid(tmp_path / "grid.png", images, nrow=2, pad=1)
    assert grid.shape == (3 * (4 + 1) + 1, 2 * (6 + 1) + 1, 3) and grid.dtype == np.uint8
    assert (grid[1:5, 8:14] == 40).all()  # image 1: row 0, column 1
    assert (grid[11:15, 1:7] == 160).all()  # image 4: row 2, column 0
    assert (grid[11:15, 8:14] == 0).all() and (grid[0] == 0).all()  # empty cell, padding
    assert np.array_equal(np.asarray(Image.open(tmp_path / "grid.png")), grid)


def test_image_grid_scales_floats_and_repeats_grey(tmp_path):
    images = np.full((2, 1, 3, 3), 0.5, np.float32)
    images[1] = 2.0  # clipped to 1
    grid = save_image_grid(tmp_path / "grid.png", images, pad=0)
    assert grid.shape == (3, 6, 3)
    assert (grid[:, :3] == 128).all() and (grid[:, 3:] == 255).all()


def test_frame_strip_puts_frames_side_by_side():
    frames = torch.stack([torch.full((3, 4, 5), v, dtype=torch.uint8) for v in (10, 20, 30)])
    strip = frame_strip(frames)
    assert strip.shape == (4, 15, 3)
    assert [strip[0, 5 * k, 0] for k in range(3)] == [10, 20, 30]
    assert np.array_equal(frame_strip(frames.permute(0, 2, 3, 1).numpy()), strip)  # numpy is channels-last


def test_overlay_segmentation_colours_labels_and_skips_ignored():
    image = np.full((4, 4, 3), 100, np.uint8)
    seg = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255], [2, 2, 255, 255]])
    out = overlay_segmentation(image, torch.from_numpy(seg))
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    assert np.array_equal(out[2:, 2:], image[2:, 2:])  # ignore_index untouched
    colours = {tuple(out[0, 0]), tuple(out[0, 2]), tuple(out[2, 0])}
    assert (
        len(colours) == 3 and (100, 100, 100) not in colours
    )  # label 0 coloured too, each label its own colour
    assert np.array_equal(out[0, 0], out[1, 1])  # one colour per label
    solid = overlay_segmentation(image, seg, alpha=1.0)
    assert np.array_equal(out[0, 0], ((100 + solid[0, 0].astype(int)) / 2).round())
    assert np.array_equal(overlay_segmentation(image, seg, alpha=0.0), image)


def test_overlay_segmentation_takes_float_tensor_image():
    image = torch.zeros(3, 2, 2)
    out = overlay_segmentation(image, np.array([[1, 255], [255, 255]]), alpha=1.0)
    assert out[0, 0].any() and not out[0, 1].any()
    with pytest.raises(ValueError, match="shape"):
        overlay_segmentation(image, np.zeros((3, 3), int))


def test_save_video_gif_and_mp4(tmp_path):
    frames = torch.stack([torch.full((3, 15, 21), v) for v in (0.0, 0.5, 1.0)])  # float, odd size
    save_video(tmp_path / "a.gif", frames, fps=10)
    with Image.open(tmp_path / "a.gif") as gif:
        pages = [np.asarray(page.convert("RGB")) for page in ImageSequence.Iterator(gif)]
    assert [page[0, 0, 0] for page in pages] == [0, 128, 255] and pages[0].shape == (15, 21, 3)
    save_video(tmp_path / "a.mp4", frames, fps=10)
    video = read_video(tmp_path / "a.mp4")
    assert video.shape == (3, 3, 16, 22)  # padded to even
    assert (video[:, :, :15, :21].float().mean(dim=(1, 2, 3)) - torch.tensor([0.0, 128, 255])).abs().max() < 4
    with pytest.raises(ValueError, match="gif or .mp4"):
        save_video(tmp_path / "a.webm", frames)


def test_plot_curves_writes_png(tmp_path):
    figure = plot_curves(
        tmp_path / "curves.png", {"loss": [3.0, 2.0, 1.5], "val": ([0, 10], [2.5, 1.0])}, title="run"
    )
    axes = figure.axes[0]
    assert [line.get_label() for line in axes.lines] == ["loss", "val"]
    assert list(axes.lines[0].get_xdata()) == [0, 1, 2] and list(axes.lines[1].get_xdata()) == [0, 10]
    assert axes.get_xlabel() == "step" and axes.get_title() == "run"
    png = np.asarray(Image.open(tmp_path / "curves.png").convert("RGB"))
    assert png.shape == (400, 600, 3)
    assert (np.abs(png.astype(int) - [31, 119, 180]).sum(-1) < 30).any()  # the first line's colour (tab:blue)
