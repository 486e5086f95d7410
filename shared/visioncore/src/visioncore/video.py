"""Video I/O on PyAV: decode only the frames asked for, write lossless (ffv1) or small (libx264) clips.

Frame indices are derived from timestamps, ``index = round((pts - start_time) * time_base * average_rate)``, which
assumes a constant frame rate (true of everything `write_video` produces and of most dataset clips). Clip sampling
(`sample_indices`) is kept apart from decoding (`read_video`), as in pytorchvideo.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Literal, NamedTuple

import av
import numpy as np
import torch
from av.video.stream import VideoStream
from PIL import Image

PathLike = str | os.PathLike[str]
Codec = Literal["libx264", "ffv1"]

# Pixel formats: yuv420p is what every player reads; bgr0 is an RGB format ffv1 stores losslessly.
_PIX_FMT = {"libx264": "yuv420p", "ffv1": "bgr0"}
# Without a full keyframe index (mkv lists only cue points), seek when the next wanted frame is further ahead than
# this many frames; decoding on is cheaper for shorter gaps.
_SEEK_GAP = 16


class VideoReadError(ValueError):
    """A file that is missing, empty, truncated or not a video, or a frame index outside it."""


class VideoInfo(NamedTuple):
    frames: int
    fps: float
    width: int
    height: int
    duration: float


@contextmanager
def _open(path: PathLike) -> Iterator[VideoStream]:
    """Open the first video stream; every FFmpeg failure becomes a one-line VideoReadError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"cannot read video {path}: no such file")
    if path.stat().st_size == 0:
        raise VideoReadError(f"cannot read video {path}: empty file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"cannot read video {path}: no video stream")
            yield container.streams.video[0]
    except av.FFmpegError as error:
        hint = " (not a video, or truncated or corrupt)" if isinstance(error, av.InvalidDataError) else ""
        raise VideoReadError(f"cannot read video {path}: {error.strerror or error}{hint}") from error


def _rate(stream: VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        raise VideoReadError(f"cannot read video {stream.container.name}: unknown frame rate")
    return rate


def video_info(path: PathLike) -> VideoInfo:
    """Frame count, fps, size and duration in seconds, read from the container without decoding.

    The frame count is the container's own (mp4, avi) or, when it does not store one (mkv, webm), the number of
    demuxed packets.
    """
    with _open(path) as stream:
        container = stream.container
        frames = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        fps = float(_rate(stream))
        if stream.duration:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = frames / fps
        return VideoInfo(frames, fps, stream.codec_context.width, stream.codec_context.height, duration)


def sample_indices(
    total: int,
    num_frames: int,
    mode: Literal["uniform", "consecutive", "random"] = "uniform",
    stride: int = 1,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Frame indices of one clip from a video of `total` frames.

    - ``uniform``: the centres of `num_frames` equal segments (TSN-style test sampling; `stride` is ignored).
    - ``consecutive``: `num_frames` frames every `stride` frames from a random start (training clips).
    - ``random``: `num_frames` distinct random frames, in increasing order.

    Random draws use `generator` (torch's global generator when None). A video too short for the clip (fewer than
    `num_frames` frames, or than ``(num_frames - 1) * stride + 1`` for ``consecutive``) gives
    ``min(i * step, total - 1)`` with ``step = stride`` for consecutive and 1 otherwise: the clip starts at frame 0
    and its last frame repeats.
    """
    if total < 1 or num_frames < 1 or stride < 1:
        raise ValueError(f"need total, num_frames, stride >= 1, got {total}, {num_frames}, {stride}")
    if mode not in ("uniform", "consecutive", "random"):
        raise ValueError(f"unknown mode {mode!r}: expected 'uniform', 'consecutive' or 'random'")
    step = stride if mode == "consecutive" else 1
    span = (num_frames - 1) * step + 1
    if total < span:
        return [min(i * step, total - 1) for i in range(num_frames)]
    if mode == "uniform":
        return [(2 * i + 1) * total // (2 * num_frames) for i in range(num_frames)]
    if mode == "random":
        return sorted(torch.randperm(total, generator=generator)[:num_frames].tolist())
    start = int(torch.randint(total - span + 1, (1,), generator=generator))
    return list(range(start, start + span, step))


def _decode(stream: VideoStream) -> Iterator[tuple[int, av.VideoFrame]]:
    """Decode on from the container's position, yielding (frame index, frame)."""
    rate, start = _rate(stream), stream.start_time or 0
    for frame in stream.container.decode(stream):
        yield round((frame.pts - start) * stream.time_base * rate), frame


def _keyframes(stream: VideoStream) -> list[int] | None:
    """Keyframe indices from the container index when it lists every frame (mp4, avi), else None (mkv cues).

    The index is in decode order, which matches display order at the keyframes of closed GOPs; where it does not,
    only the decision to seek suffers, never the frames returned.
    """
    entries = stream.index_entries
    if not stream.frames or len(entries) != stream.frames:
        return None
    return [i for i, entry in enumerate(entries) if entry.is_keyframe]


def _worth_seeking(position: int, target: int, keyframes: list[int] | None) -> bool:
    """Seek only when a keyframe lies in (position, target]: otherwise decoding on costs less."""
    if keyframes is None:
        return target - position > _SEEK_GAP
    return bisect_right(keyframes, target) > bisect_right(keyframes, position)


def _decode_at(stream: VideoStream, wanted: list[int]) -> tuple[dict[int, av.VideoFrame], int]:
    """Frames at the sorted distinct `wanted` indices, seeking over gaps and stopping after the last one.

    Also returns the index of the last frame decoded; when the video ends before ``wanted[-1]`` that is the video's
    last frame, and it is included in the dict.
    """
    keyframes, rate, start = _keyframes(stream), _rate(stream), stream.start_time or 0
    found: dict[int, av.VideoFrame] = {}
    frames, position, last = _decode(stream), 0, None
    for target in wanted:
        if _worth_seeking(position, target, keyframes):
            stream.container.seek(start + round(target / rate / stream.time_base), stream=stream)
            frames = _decode(stream)
        for index, frame in frames:
            position, last = index + 1, (index, frame)
            if index >= target:
                break
        else:
            if last is None:
                raise VideoReadError(f"cannot read video {stream.container.name}: no decodable frames")
            found[last[0]] = last[1]
            return found, last[0]
        if index > target:
            raise VideoReadError(
                f"cannot read video {stream.container.name}: frame {target} not found (got {index} next; "
                "indices assume a constant frame rate)"
            )
        found[target] = frame
    return found, position - 1


def _rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    height, width = size or (frame.height, frame.width)
    return frame.to_ndarray(format="rgb24", width=width, height=height)


def read_video(
    path: PathLike,
    *,
    indices: Sequence[int] | None = None,
    num_frames: int | None = None,
    stride: int = 1,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Decode RGB frames as uint8 [T, C, H, W], decoding only what the request needs.

    `indices` picks exact frames in the given order (repeats allowed; the file is read by seeking to the keyframe
    before each sparse frame, and sequentially through runs). Otherwise `num_frames` frames every `stride` frames from
    frame 0, repeating the last frame when the video is shorter (the rule of `sample_indices`), or all frames when
    `num_frames` is None. ``size=(H, W)`` resizes (bilinear) without keeping the aspect ratio.

    Raises VideoReadError for a bad file or an index outside the video. A truncated mp4 or avi fails; a truncated
    mkv reads as a shorter video.
    """
    if indices is not None and num_frames is not None:
        raise ValueError("pass either indices or num_frames, not both")
    if stride < 1 or (num_frames is not None and num_frames < 1):
        raise ValueError(f"need num_frames, stride >= 1, got {num_frames}, {stride}")
    with _open(path) as stream:
        if indices is None and num_frames is None:
            arrays = [_rgb(frame, size) for _, frame in _decode(stream)]
        else:
            wanted = (
                [int(i) for i in indices] if indices is not None else [i * stride for i in range(num_frames)]
            )
            if not wanted:
                raise ValueError("indices is empty")
            if min(wanted) < 0:
                raise VideoReadError(f"cannot read video {path}: frame index {min(wanted)} out of range")
            found, end = _decode_at(stream, sorted(set(wanted)))
            if indices is not None and max(wanted) > end:
                raise VideoReadError(
                    f"cannot read video {path}: frame index {max(wanted)} out of range (it has {end + 1} frames)"
                )
            decoded = {index: _rgb(frame, size) for index, frame in found.items()}
            arrays = [decoded[min(index, end)] for index in wanted]
    if not arrays:
        raise VideoReadError(f"cannot read video {path}: no decodable frames")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _as_thwc(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """uint8 [T, H, W, 3] from a [T, 3, H, W] tensor or a [T, H, W, 3] array."""
    is_tensor = isinstance(frames, torch.Tensor)
    array = np.asarray(frames.detach().cpu() if is_tensor else frames)
    if is_tensor and array.ndim == 4:
        array = array.transpose(0, 2, 3, 1)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or len(array) == 0:
        raise ValueError(
            f"expected uint8 frames [T, 3, H, W] (tensor) or [T, H, W, 3] (numpy), got {array.dtype} "
            f"{tuple(frames.shape)}"
        )
    return np.ascontiguousarray(array)


def write_video(
    path: PathLike,
    frames: torch.Tensor | np.ndarray,
    fps: float = 25,
    codec: Codec = "libx264",
    *,
    gop_size: int | None = None,
) -> None:
    """Encode uint8 frames ([T, C, H, W] tensor or [T, H, W, C] array) at a constant frame rate.

    ``libx264`` (yuv420p, lossy, needs even height and width) suits viewing; ``ffv1`` (bgr0) is bit-exact, for
    fixtures and caches. The container follows the suffix: ffv1 goes in .mkv (.avi and, with PyAV's FFmpeg, .mp4
    work too, but few players read ffv1 in mp4). `gop_size` sets the keyframe interval (codec default when None).
    """
    array = _as_thwc(frames)
    if codec not in _PIX_FMT:
        raise ValueError(f"unknown codec {codec!r}: expected 'libx264' or 'ffv1'")
    _, height, width, _ = array.shape
    if codec == "libx264" and (height % 2 or width % 2):
        raise ValueError(
            f"libx264 (yuv420p) needs even height and width, got {height}x{width}: crop or pad first"
        )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, _PIX_FMT[codec]
        if gop_size is not None:
            stream.codec_context.gop_size = gop_size
        for image in array:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def save_gif(path: PathLike, frames: torch.Tensor | np.ndarray, fps: float) -> None:
    """Write an endlessly looping GIF (PIL: 256-colour palette, 10 ms timing steps, equal neighbours merged)."""
    images = [Image.fromarray(image) for image in _as_thwc(frames)]
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
    )
