"""`deepfake-mae` command line: make-synthetic, preprocess, pretrain, train, evaluate, predict, demo, repro, bench."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from deepfake_mae.config import Config
from visioncore.config import add_config_args, config_from_args
from visioncore.console import run_command
from visioncore.devices import add_device_args, resolve_device, resolve_dtype


def _cfg(args: argparse.Namespace) -> Config:
    return config_from_args(Config, args, package="deepfake_mae")


def cmd_make_synthetic(args: argparse.Namespace) -> None:
    from deepfake_mae.data.synthetic import make_synthetic

    pairs = {"train": args.train_pairs, "val": args.val_pairs, "test": args.test_pairs}
    root = make_synthetic(args.out, pairs, size=args.size, num_frames=args.frames, seed=args.seed)
    print(f"wrote a synthetic FF++-layout dataset to {root}")


def cmd_preprocess(args: argparse.Namespace) -> None:
    from deepfake_mae.data.preprocess import preprocess_folder

    videos = []
    for item in args.videos:
        path = Path(item)
        if path.is_dir():
            videos += sorted(
                p for p in path.iterdir() if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".mov")
            )
        elif path.is_file():
            videos.append(path)
        else:
            raise FileNotFoundError(f"{path}: video not found")
    summary = preprocess_folder(
        videos, Path(args.out), args.size, Path(args.landmarks) if args.landmarks else None
    )
    print(
        f"processed {summary['videos']} video(s); {len(summary['failed'])} failed, "
        f"{len(summary['with_missing_faces'])} with frames without a face (see {args.out}/report.json)"
    )
    for failed in summary["failed"]:
        print(f"  failed: {failed['name']}: {failed['error']}", file=sys.stderr)


def cmd_pretrain(args: argparse.Namespace) -> None:
    from deepfake_mae.train import pretrain

    pretrain(_cfg(args), args.out, resume=args.resume, init_from=args.init_from)
    print(f"saved the pretrained MAE to {args.out}/model")


def cmd_train(args: argparse.Namespace) -> None:
    from deepfake_mae.train import train_detector

    train_detector(_cfg(args), args.out, pretrained=args.pretrained, resume=args.resume)
    print(f"saved the detector to {args.out}/model")


def _load_detector(args: argparse.Namespace):
    """The detector of ``--model`` on ``--device`` in ``--dtype``."""
    from deepfake_mae.models.detector import DeepfakeDetector

    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    return DeepfakeDetector.from_pretrained(args.model).to(device=device, dtype=dtype), device, dtype


def cmd_evaluate(args: argparse.Namespace) -> None:
    from deepfake_mae.data.dataset import FaceClipDataset
    from deepfake_mae.data.layout import REAL, ffpp_records, list_records
    from deepfake_mae.evaluate import auc_by_set, parse_perturbation, predict_clips
    from visioncore.files import atomic_write_json

    cfg = _cfg(args)
    model, device, dtype = _load_detector(args)
    if args.list:
        records = [r for lst in args.list for r in list_records(args.list_root or cfg.data.root, lst)]
    else:
        records = ffpp_records(cfg.data.root, args.split, (REAL, *cfg.data.test_methods))
    ds = FaceClipDataset(
        records,
        cfg.data.clip_len,
        cfg.model.img_size,
        cfg.data.max_frames,
        cfg.masking.part_scheme,
        preload=cfg.data.preload,
    )
    perturbations = {"clean": None, **{spec: parse_perturbation(spec) for spec in args.perturb}}
    results = {}
    for name, perturb in perturbations.items():
        preds = predict_clips(
            model, ds, cfg.eval.batch_size, cfg.eval.mask_seed, perturb=perturb, device=device, dtype=dtype
        )
        results[name] = auc_by_set(preds, records)
    print(json.dumps(results, indent=2))
    if args.out:
        atomic_write_json(Path(args.out) / "metrics.json", results)


def cmd_predict(args: argparse.Namespace) -> None:
    from deepfake_mae.predict import predict_videos

    cfg = _cfg(args)
    model, device, dtype = _load_detector(args)
    for row in predict_videos(
        cfg,
        model,
        [Path(v) for v in args.videos],
        Path(args.out),
        Path(args.landmarks) if args.landmarks else None,
    ):
        parts = " ".join(f"{k}={v:.4f}" for k, v in row["discrepancy"].items())
        print(
            f"{row['video']}: fake probability {row['fake_probability']:.3f}  discrepancy {parts}  -> {row['png']}"
        )


def cmd_demo(args: argparse.Namespace) -> None:
    from deepfake_mae.demo import run_demo

    metrics = run_demo(Path(args.out), resolve_device(args.device))
    print(json.dumps(metrics, indent=2))


def cmd_repro(args: argparse.Namespace) -> None:
    from deepfake_mae.repro import run_repro

    cfg = _cfg(args)
    start = time.time()
    run_repro(
        cfg,
        args.out,
        seeds=args.seeds,
        log=lambda msg: print(f"[{time.time() - start:6.0f}s] {msg}", flush=True),
    )


def cmd_bench(args: argparse.Namespace) -> None:
    from deepfake_mae.bench import run_bench

    print(
        json.dumps(
            run_bench(args.configs, args.batch_size, args.steps, resolve_device(args.device)), indent=2
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepfake-mae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-synthetic", help="write procedural faces and part-swap fakes in the FF++ layout")
    p.add_argument("--out", required=True)
    p.add_argument("--train-pairs", type=int, default=8)
    p.add_argument("--val-pairs", type=int, default=2)
    p.add_argument("--test-pairs", type=int, default=4)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_make_synthetic)

    p = sub.add_parser("preprocess", help="detect, track, align and crop faces (FFV1) with landmarks")
    p.add_argument("videos", nargs="+", help="video files or folders")
    p.add_argument("--out", required=True, help="e.g. data/Forensics/Real/c23")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--landmarks", help="folder of supplied (T, 68, 2) <name>.npy landmarks (skips detection)")
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser("pretrain", help="Stage A: facial-part MAE on real faces")
    add_config_args(p, default="paper")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true")
    p.add_argument(
        "--init-from", help="local MAE checkpoint: transformers ViTMAE folder/file, MAE or timm file"
    )
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("train", help="Stage B: the dual-network detector")
    add_config_args(p, default="paper")
    p.add_argument("--out", required=True)
    p.add_argument("--pretrained", help="folder of a pretrained FacePartMAE (pretrain's <out>/model)")
    p.add_argument("--resume", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="video-level AUC per test set (+ perturbations)")
    add_config_args(p, default="paper")
    p.add_argument("--model", required=True, help="detector folder (train's <out>/model)")
    add_device_args(p)
    p.add_argument("--split", default="test")
    p.add_argument(
        "--list", action="append", default=[], help="'name label' CSV (Celeb-DF, DFDC); repeatable"
    )
    p.add_argument("--list-root", help="folder holding cropped_faces/ and landmarks/ for --list")
    p.add_argument(
        "--perturb", action="append", default=[], help="jpeg:Q, blur:SIGMA, noise:STD, saturation:F"
    )
    p.add_argument("--out")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="fake probability and per-part discrepancy per video, with a PNG")
    add_config_args(p, default="paper")
    p.add_argument("videos", nargs="+")
    p.add_argument("--model", required=True, help="detector folder (train's <out>/model)")
    add_device_args(p)
    p.add_argument("--landmarks", help="folder of <name>.npy landmarks; without it the face is detected")
    p.add_argument("--out", default="predictions")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo", help="tiny end-to-end run on synthetic faces (<= 40 s)")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cpu", help="torch device of the evaluation (default: cpu; CPU-sized)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("repro", help="the acceptance experiment on synthetic faces")
    add_config_args(p, default="repro")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", help="default: repro.seeds of the config")
    p.set_defaults(func=cmd_repro)

    p = sub.add_parser("bench", help="pretraining/detector step throughput, FLOP/s and peak memory (JSON)")
    p.add_argument("--configs", nargs="+", default=["tiny", "paper"])
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)  # ConfigError, CheckpointError, SplitError, VideoReadError, ...


if __name__ == "__main__":
    sys.exit(main())
