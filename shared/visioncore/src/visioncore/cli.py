"""`visioncore demo --out DIR` (the shared core end to end) and `visioncore summarize DIR` (the demo table)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from visioncore import metrics, synthetic, video, viz


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
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


def summarize(root: Path) -> str:
    """One table over every ``<root>/<package>/metrics.json`` a demo wrote."""
    rows = []
    for path in sorted(root.glob("*/metrics.json")):
        values = json.loads(path.read_text())
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items() if not isinstance(v, dict | list))
        rows.append((path.parent.name, shown))
    if not rows:
        raise FileNotFoundError(f"no */metrics.json under {root}")
    width = max(len(name) for name, _ in rows)
    lines = [f"{'package':<{width}}  metrics", f"{'-' * width}  {'-' * 7}"]
    lines += [f"{name:<{width}}  {shown}" for name, shown in rows]
    return "\n".join(lines)


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="visioncore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="write, read and score a synthetic clip").add_argument(
        "--out", type=Path, required=True
    )
    sub.add_parser("summarize", help="table of every <dir>/<pkg>/metrics.json").add_argument(
        "root", type=Path
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        if args.command == "demo":
            print(json.dumps(demo(args.out), indent=2))
        else:
            print(summarize(args.root))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
