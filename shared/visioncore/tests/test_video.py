from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from visioncore import video
from visioncore.video import (
    VideoReadError,
    read_video,
    sample_indices,
    save_gif,
    video_info,
    write_video,
)

T, H, W = 60, 48, 64


def noise(t: int = T, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def smooth(t: int = T) -> np.ndarray:
    """Slowly moving colour waves: content libx264 keeps well."""
    y, x = np.mgrid[:H, :W] / np.array([H, W])[:, None, None]
    phase = np.arange(t)[:, None, None] / t
    channels = [
        np.sin(2 * np.pi * (x + phase)),
        np.cos(2 * np.pi * (y + phase)),
        np.sin(np.pi * (x + y + phase)),
    ]
    return (127.5 + 100 * np.stack(channels, axis=-1)).round().astype(np.uint8)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Small-GOP clips, so sparse reads have several keyframes to seek to: mp4 (full index) and mkv (cues only)."""
    folder = tmp_path_factory.mktemp("clips")
    paths = {"mp4": folder / "clip.mp4", "mkv": folder / "clip.mkv"}
    write_video(paths["mp4"], noise(), codec="libx264", gop_size=5)
    write_video(paths["mkv"], noise(), codec="ffv1", gop_size=5)
    return paths


@pytest.fixture
def decoded(monkeypatch) -> list[int]:
    """Indices of the frames the decoder produces during the test."""
    seen: list[int] = []
    decode = video._decode

    def spy(stream):
        for index, frame in decode(stream):
            seen.append(index)
            yield index, frame

    monkeypatch.setattr(video, "_decode", spy)
    return seen


@pytest.mark.parametrize("suffix", [".mkv", ".avi"])
def test_ffv1_round_trip_is_bit_exact(tmp_path, suffix):
    frames = noise(t=6, h=33, w=45)  # odd sizes are fine losslessly
    write_video(tmp_path / f"a{suffix}", frames, codec="ffv1")
    write_video(tmp_path / f"b{suffix}", torch.from_numpy(frames).permute(0, 3, 1, 2), codec="ffv1")
    expected = torch.from_numpy(frames).permute(0, 3, 1, 2)
    for name in ("a", "b"):
        out = read_video(tmp_path / f"{name}{suffix}")
        assert out.dtype == torch.uint8
        assert torch.equal(out, expected)


def test_libx264_round_trip_is_close(tmp_path):
    frames = smooth(t=12)
    write_video(tmp_path / "a.mp4", frames, fps=12)
    out = read_video(tmp_path / "a.mp4").permute(0, 2, 3, 1).numpy()
    assert out.shape == frames.shape
    assert np.abs(out.astype(int) - frames).mean() < 6  # 4:2:0 chroma costs ~3 on these colour waves


def test_write_rejects_odd_size_for_libx264_and_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "a.mp4", noise(t=2, h=33, w=64))
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "a.mp4", noise(t=2).astype(np.float32))
    with pytest.raises(ValueError, match="codec"):
        write_video(tmp_path / "a.mkv", noise(t=2), codec="vp9")


@pytest.mark.parametrize("kind", ["mp4", "mkv"])
def test_sparse_indices_equal_full_decode(clips, kind):
    full = read_video(clips[kind])
    indices = [57, 3, 22, 23, 24, 41, 3, 0, 59]  # unsorted, repeated, across GOPs, up to the last frame
    assert torch.equal(read_video(clips[kind], indices=indices), full[indices])


@pytest.mark.parametrize("kind", ["mp4", "mkv"])
def test_sparse_read_seeks_and_stops_early(clips, kind, decoded):
    read_video(clips[kind], indices=[50])
    assert 1 <= len(decoded) <= 6 and decoded[-1] == 50  # from the keyframe before 50, not from frame 0
    decoded.clear()
    read_video(clips[kind], indices=[0, 1, 2])
    assert decoded == [0, 1, 2]  # a consecutive run decodes on and stops after the last frame wanted


def test_num_frames_and_stride(clips):
    full = read_video(clips["mkv"])
    assert torch.equal(read_video(clips["mkv"], num_frames=5, stride=3), full[[0, 3, 6, 9, 12]])
    assert torch.equal(read_video(clips["mkv"], num_frames=4), full[:4])
    # Past the end the last frame repeats, as in sample_indices.
    assert torch.equal(read_video(clips["mkv"], num_frames=4, stride=25), full[[0, 25, 50, 59]])


def test_size_resizes_without_keeping_aspect(tmp_path):
    frames = np.zeros((3, H, W, 3), np.uint8)
    frames[:] = [[[[10, 200, 90]]], [[[250, 0, 30]]], [[[60, 60, 60]]]]
    write_video(tmp_path / "a.mkv", frames, codec="ffv1")
    out = read_video(tmp_path / "a.mkv", indices=[1, 2], size=(20, 50))
    assert out.shape == (2, 3, 20, 50)
    assert (out[0].float().mean(dim=(1, 2)) - torch.tensor([250.0, 0, 30])).abs().max() <= 1


@pytest.mark.parametrize("suffix,codec", [(".mp4", "libx264"), (".mkv", "ffv1"), (".avi", "ffv1")])
def test_video_info(tmp_path, suffix, codec):
    path = tmp_path / f"a{suffix}"
    write_video(path, noise(t=30), fps=10, codec=codec)
    info = video_info(path)
    assert info == (30, 10.0, W, H, pytest.approx(3.0))
    assert (info.frames, info.width, info.height) == (30, W, H)


def test_fractional_fps(tmp_path):
    write_video(tmp_path / "a.mkv", noise(t=10), fps=12.5, codec="ffv1")
    assert video_info(tmp_path / "a.mkv").fps == 12.5
    assert torch.equal(read_video(tmp_path / "a.mkv", indices=[9, 4]), read_video(tmp_path / "a.mkv")[[9, 4]])


@pytest.mark.parametrize("indices", [[3, 60], [-1]])
def test_out_of_range_indices_raise(clips, indices):
    with pytest.raises(VideoReadError, match=r"clip\.mkv.*out of range"):
        read_video(clips["mkv"], indices=indices)


def bad_file(tmp_path: Path, case: str) -> Path:
    path = tmp_path / f"{case}.mp4"
    if case == "empty":
        path.touch()
    elif case == "text":
        path.write_text("this is not a video\n")
    elif case == "truncated":
        write_video(path, noise(t=10))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated"])
@pytest.mark.parametrize("reader", [read_video, video_info])
def test_bad_files_raise_one_line_error_naming_the_file(tmp_path, case, reader):
    path = bad_file(tmp_path, case)
    with pytest.raises(VideoReadError) as error:
        reader(path)
    message = str(error.value)
    assert path.name in message and "\n" not in message
    assert isinstance(error.value, ValueError)


def test_truncated_avi_fails_while_decoding(tmp_path):
    path = tmp_path / "cut.avi"
    write_video(path, noise(t=10), codec="ffv1")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(VideoReadError, match=r"cut\.avi"):
        read_video(path)


def test_sample_indices_uniform():
    assert sample_indices(100, 4) == [12, 37, 62, 87]
    assert sample_indices(8, 8, stride=5) == list(range(8))  # stride is ignored


def test_sample_indices_consecutive_and_random_are_seeded():
    for _ in range(20):
        clip = sample_indices(50, 5, "consecutive", stride=3)
        assert np.all(np.diff(clip) == 3) and clip[0] >= 0 and clip[-1] < 50
        chosen = sample_indices(50, 10, "random")
        assert chosen == sorted(set(chosen)) and len(chosen) == 10 and chosen[0] >= 0 and chosen[-1] < 50
    for mode in ("consecutive", "random"):
        draws = [sample_indices(1000, 8, mode, generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
        assert draws[0] == draws[1] != draws[2]


@pytest.mark.parametrize(
    "total,mode,stride,expected",
    [
        (3, "uniform", 1, [0, 1, 2, 2, 2]),
        (3, "random", 1, [0, 1, 2, 2, 2]),
        (3, "consecutive", 1, [0, 1, 2, 2, 2]),
        (3, "consecutive", 2, [0, 2, 2, 2, 2]),
        (12, "consecutive", 3, [0, 3, 6, 9, 11]),  # needs 13 frames
    ],
)
def test_sample_indices_short_video_repeats_last_frame(total, mode, stride, expected):
    assert sample_indices(total, 5, mode, stride=stride) == expected


def test_sample_indices_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        sample_indices(10, 2, "middle")
    with pytest.raises(ValueError):
        sample_indices(0, 2)


def test_save_gif_reads_back(tmp_path):
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    frames = np.broadcast_to(colors[:, None, None], (3, 16, 24, 3))
    save_gif(tmp_path / "a.gif", torch.from_numpy(frames.copy()).permute(0, 3, 1, 2), fps=5)
    with Image.open(tmp_path / "a.gif") as gif:
        pages = [np.asarray(page.convert("RGB")) for page in ImageSequence.Iterator(gif)]
        assert gif.info["duration"] == 200 and gif.info["loop"] == 0
    assert np.array_equal(np.stack(pages), frames)
