"""`deepfake-mae preprocess`: detect and track the face (facenet-pytorch MTCNN, weights in its wheel), smooth,
similarity-align to a 5-point template, crop (default 224, lossless FFV1) and map the landmarks through the same
transform. With supplied 68-point landmarks (`--landmarks DIR`) no detector runs. Frames without a face keep the
nearest detection's crop and are listed per video in the report (never dropped silently)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from deepfake_mae.data.layout import COMPRESSION, load_landmarks
from visioncore.files import atomic_write_json
from visioncore.video import VideoReadError, read_video, write_video

# Template for the 5 points (left eye, right eye, nose tip, mouth left, mouth right) in fractions of the crop: a
# full-face crop with forehead and chin (RealForensics-like framing).
TEMPLATE_5 = np.array([[0.36, 0.42], [0.64, 0.42], [0.50, 0.56], [0.39, 0.70], [0.61, 0.70]], np.float32)


@dataclass
class VideoReport:
    name: str
    frames: int = 0
    frames_without_face: list[int] = field(default_factory=list)
    error: str = ""


def five_from_68(points: np.ndarray) -> np.ndarray:
    """(..., 68, 2) iBUG -> (..., 5, 2) MTCNN order: eye centres, nose tip (30), mouth corners (48, 54)."""
    return np.stack(
        [
            points[..., 36:42, :].mean(-2),
            points[..., 42:48, :].mean(-2),
            points[..., 30, :],
            points[..., 48, :],
            points[..., 54, :],
        ],
        -2,
    )


def smooth(track: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over time of a (T, ...) array (edges use the available frames)."""
    if window <= 1 or len(track) < 2:
        return track
    flat = track.reshape(len(track), -1)
    cumsum = np.cumsum(np.pad(flat, ((1, 0), (0, 0))), 0)
    half = window // 2
    idx = np.arange(len(track))
    lo, hi = np.clip(idx - half, 0, len(track)), np.clip(idx + half + 1, 0, len(track))
    return ((cumsum[hi] - cumsum[lo]) / (hi - lo)[:, None]).reshape(track.shape)


def fill_missing(points: list[np.ndarray | None]) -> tuple[np.ndarray, list[int]]:
    """Replace frames without a detection by the nearest detected frame; return (T, 5, 2) and the missing indices."""
    found = [i for i, p in enumerate(points) if p is not None]
    missing = [i for i, p in enumerate(points) if p is None]
    if not found:
        raise ValueError("no face detected in any frame")
    out = [points[min(found, key=lambda j: abs(j - i))] if p is None else p for i, p in enumerate(points)]
    return np.stack(out).astype(np.float32), missing


def detect_five_points(frames: np.ndarray, batch: int = 16) -> list[np.ndarray | None]:
    """MTCNN 5-point landmarks of the most confident face per frame (None where there is none)."""
    import torch
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=False, select_largest=False, device="cpu")
    out: list[np.ndarray | None] = []
    for start in range(0, len(frames), batch):
        chunk = [f for f in frames[start : start + batch]]
        with torch.no_grad():
            _, _, points = mtcnn.detect(chunk, landmarks=True)
        for p in points:
            out.append(None if p is None else np.asarray(p[0], np.float32))
    return out


def align_matrix(five: np.ndarray, size: int) -> np.ndarray:
    """2x3 similarity transform taking the 5 points onto the template in a size x size crop."""
    matrix, _ = cv2.estimateAffinePartial2D(five.astype(np.float32), TEMPLATE_5 * size, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("cannot estimate the alignment transform from the landmarks")
    return matrix


def crop_video(
    frames: np.ndarray, five: np.ndarray, points: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Align and crop every frame (T, H, W, 3); map `points` (T, L, 2) through the same transforms."""
    crops, mapped = [], []
    for frame, f5, pts in zip(frames, five, points):
        m = align_matrix(f5, size)
        crops.append(
            cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        )
        mapped.append(pts @ m[:, :2].T + m[:, 2])
    return np.stack(crops), np.stack(mapped).astype(np.float32)


def preprocess_video(
    video: Path, out_root: Path, size: int = 224, landmarks_dir: Path | None = None, smooth_window: int = 5
) -> VideoReport:
    """Crop one video into `<out_root>/cropped_faces/<name>.avi` and `<out_root>/landmarks/<name>.npy`."""
    report = VideoReport(video.stem)
    try:
        frames = read_video(video).permute(0, 2, 3, 1).numpy()
    except VideoReadError as err:
        report.error = str(err)
        return report
    report.frames = len(frames)
    if landmarks_dir is not None:
        points = load_landmarks(landmarks_dir / f"{video.stem}.npy", len(frames))[: len(frames)]
        if points.shape[1] != 68:
            raise ValueError(f"{landmarks_dir / video.stem}.npy: --landmarks expects 68-point landmarks")
        five = five_from_68(points)
    else:
        try:
            five, report.frames_without_face = fill_missing(detect_five_points(frames))
        except ValueError as err:
            report.error = f"{video}: {err}"
            report.frames_without_face = list(range(len(frames)))
            return report
        points = five
    crops, mapped = crop_video(frames, smooth(five, smooth_window), points, size)
    (out_root / "cropped_faces").mkdir(parents=True, exist_ok=True)
    (out_root / "landmarks").mkdir(parents=True, exist_ok=True)
    write_video(out_root / "cropped_faces" / f"{video.stem}.avi", crops, fps=25, codec="ffv1")
    np.save(out_root / "landmarks" / f"{video.stem}.npy", mapped)
    return report


def preprocess_folder(
    videos: list[Path], out_root: Path, size: int = 224, landmarks_dir: Path | None = None
) -> dict:
    """Process many videos; the report lists and counts every problem (also written to `<out_root>/report.json`)."""
    reports = [preprocess_video(v, out_root, size, landmarks_dir) for v in videos]
    summary = {
        "videos": len(reports),
        "failed": [asdict(r) for r in reports if r.error],
        "with_missing_faces": {
            r.name: r.frames_without_face for r in reports if r.frames_without_face and not r.error
        },
        "reports": [asdict(r) for r in reports],
    }
    out_root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_root / "report.json", summary)
    return summary


def method_root(root: str | Path, method: str) -> Path:
    return Path(root) / method / COMPRESSION
