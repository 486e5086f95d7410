"""`visioncore demo`: the shared core end to end on a synthetic clip (video I/O, metrics, viz)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from visioncore import metrics, synthetic, video, viz
from visioncore.files import atomic_write_json


def _colour_segmentation(frames: np.ndarray, num_segments: int, seed: int = 0) -> np.ndarray:
    """k-means over pixel colours: a label-free segmentation of the decoded clip, scored against the true masks."""
    from sklearn.cluster import KMeans

    pixels = frames.reshape(-1, 3).astype(np.float32)
    centres = KMeans(num_segments, n_init=3, random_state=seed).fit(pixels[::7]).cluster_centers_
    nearest = ((pixels[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
    return nearest.reshape(frames.shape[:-1])


def demo(out: Path) -> dict[str, float]:
    """Render a synthetic clip, write it losslessly and lossily, read it back (full and sparse), score a segmentation."""
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    objects = [
        synthetic.ObjectSpec("circle", "red", center=(24, 30), size=28, velocity=(2.0, 1.0)),
        synthetic.ObjectSpec("square", "yellow", center=(70, 24), size=24, angle=15, velocity=(-1.5, 2.0)),
        synthetic.ObjectSpec("triangle", "cyan", center=(48, 72), size=30, angular_velocity=4.0),
    ]
    clip = synthetic.render_video(24, 96, 96, objects, background=(30, 30, 40))

    video.write_video(out / "clip.mkv", clip.frames, fps=12, codec="ffv1", gop_size=6)
    video.write_video(out / "clip.mp4", clip.frames, fps=12, codec="libx264")
    info = video.video_info(out / "clip.mkv")
    lossless = video.read_video(out / "clip.mkv").permute(0, 2, 3, 1).numpy()
    lossy = video.read_video(out / "clip.mp4").permute(0, 2, 3, 1).numpy().astype(np.float64)
    wanted = video.sample_indices(info.frames, 5, mode="uniform")
    sparse = video.read_video(out / "clip.mkv", indices=wanted).permute(0, 2, 3, 1).numpy()
    mse = float(((lossy - clip.frames) ** 2).mean())

    segmentation = _colour_segmentation(lossless, num_segments=len(objects) + 1)
    overlay = [viz.overlay_segmentation(f, m) for f, m in zip(lossless[::6], segmentation[::6])]
    viz.save_image_grid(out / "segmentation.png", np.stack(overlay).transpose(0, 3, 1, 2), nrow=4)
    viz.save_video(out / "clip.gif", clip.frames, fps=12)

    result = {
        "frames": float(info.frames),
        "ffv1_max_abs_diff": float(np.abs(lossless.astype(int) - clip.frames).max()),
        "x264_psnr_db": 10 * float(np.log10(255.0**2 / max(mse, 1e-12))),
        "sparse_read_matches_full": float(np.array_equal(sparse, lossless[wanted])),
        "fg_ari_colour_kmeans": metrics.adjusted_rand_index(clip.masks, segmentation, foreground_only=True),
        "mbo_colour_kmeans": metrics.mean_best_overlap(clip.masks, segmentation),
        "seconds": time.perf_counter() - start,
    }
    atomic_write_json(out / "metrics.json", result)
    return result
