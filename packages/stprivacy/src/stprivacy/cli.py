"""``stprivacy``: train, evaluate, anonymize, labels, make-synthetic, demo, repro, bench.

Heavy modules (sklearn, PyAV, accelerate) are imported inside the verbs, so ``import stprivacy.cli`` stays light.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from visioncore.config import add_config_args, config_from_args
from visioncore.console import run_command
from visioncore.devices import add_device_args, resolve_device, resolve_dtype

PACKAGE = "stprivacy"


def _config(args: argparse.Namespace):
    from stprivacy.config import Config

    return config_from_args(Config, args, package=PACKAGE)


def cmd_train(args: argparse.Namespace) -> None:
    from stprivacy.train import train

    cfg = _config(args)
    folder = train(
        cfg, args.out, args.phase, resume=args.resume, cpu=resolve_device(args.device).type == "cpu"
    )
    print(f"trained phase {args.phase}: {folder}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from stprivacy.run import evaluate_model

    cfg = _config(args)
    if not args.raw and args.model is None:
        raise ValueError("--model DIR (a trained anonymizer folder) is required unless --raw is given")
    result = evaluate_model(
        cfg,
        None if args.raw else Path(args.model),
        Path(args.out),
        keep_ratio=args.keep_ratio,
        device=resolve_device(args.device),
        dtype=resolve_dtype(args.dtype),
    )
    w = result["worst"]
    print(
        f"top1 {result['top1']:.4f}  cMAP(worst) {w['cmap']:.4f}  F1(worst) {w['f1']:.4f}  -> {args.out}/metrics.json"
    )


def cmd_anonymize(args: argparse.Namespace) -> None:
    from stprivacy.run import anonymize_files

    cfg = _config(args)
    written = anonymize_files(
        cfg,
        [Path(v) for v in args.videos],
        Path(args.model),
        Path(args.out),
        keep_ratio=args.keep_ratio,
        device=resolve_device(args.device),
        dtype=resolve_dtype(args.dtype),
    )
    for path in written:
        print(path)


def cmd_labels(args: argparse.Namespace) -> None:
    from stprivacy.run import label_report

    report = label_report(Path(args.file), root=Path(args.root) if args.root else None, split=args.split)
    print(json.dumps(report, indent=2))


def cmd_make_synthetic(args: argparse.Namespace) -> None:
    from stprivacy.data.synthetic import write_synthetic

    paths = write_synthetic(args.out, args.train, args.test, args.seed)
    print(json.dumps(paths, indent=2))


def cmd_demo(args: argparse.Namespace) -> None:
    from stprivacy.demo import demo

    metrics = demo(Path(args.out), device=resolve_device(args.device), dtype=resolve_dtype(args.dtype))
    print(json.dumps(metrics, indent=2))


def cmd_repro(args: argparse.Namespace) -> None:
    from stprivacy.repro import repro

    repro(
        _config(args),
        Path(args.out),
        seeds=args.seeds,
        workers=args.workers,
        device=resolve_device(args.device),
        dtype=resolve_dtype(args.dtype),
    )


def cmd_bench(args: argparse.Namespace) -> None:
    from stprivacy.bench import bench

    print(
        json.dumps(
            bench(
                device=resolve_device(args.device), dtype=resolve_dtype(args.dtype), paper=not args.tiny_only
            ),
            indent=2,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stprivacy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a phase (init | privacy | adversarial | all) into OUT/<phase>/")
    p.add_argument("--phase", choices=["init", "privacy", "adversarial", "all"], default="all")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue the phase from its latest checkpoint")
    add_config_args(p, default="hmdb51")
    add_device_args(p)
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("evaluate", help="fresh action model + attacker ensemble on anonymized videos")
    p.add_argument("--model", help="anonymizer folder (e.g. OUT/adversarial/model)")
    p.add_argument("--raw", action="store_true", help="no anonymizer: the raw-video reference")
    p.add_argument(
        "--keep-ratio", type=float, dest="keep_ratio", help="deployment keep ratio (default: trained)"
    )
    p.add_argument("--out", required=True)
    add_config_args(p, default="hmdb51")
    add_device_args(p)
    p.set_defaults(fn=cmd_evaluate)

    p = sub.add_parser("anonymize", help="anonymize video files (video + side-by-side GIF)")
    p.add_argument("videos", nargs="+")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--keep-ratio", type=float, dest="keep_ratio")
    add_config_args(p, default="hmdb51")
    add_device_args(p)
    p.set_defaults(fn=cmd_anonymize)

    p = sub.add_parser(
        "labels", help="check an official privacy-label pickle (counts, rates, split coverage)"
    )
    p.add_argument("file")
    p.add_argument("--root", help="folder with HMDB51 *_test_splitN.txt or UCF101 classInd/trainlist files")
    p.add_argument("--split", type=int, default=1, choices=[1, 2, 3])
    p.set_defaults(fn=cmd_labels)

    p = sub.add_parser("make-synthetic", help="write the acceptance experiment's data in the HMDB51 layouts")
    p.add_argument("--out", required=True)
    p.add_argument("--train", type=int, default=1200)
    p.add_argument("--test", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_make_synthetic)

    p = sub.add_parser("demo", help="<= 40 s tiny run on synthetic data, writes OUT/metrics.json")
    p.add_argument("--out", required=True)
    add_device_args(p)
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("repro", help="the acceptance experiment (3 seeds), writes OUT/metrics.json")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=2, help="seeds run on this many processes")
    add_config_args(p, default="repro")
    add_device_args(p)
    p.set_defaults(fn=cmd_repro)

    p = sub.add_parser("bench", help="training-step time / memory and pruned speed-up (JSON)")
    p.add_argument(
        "--tiny-only", action="store_true", dest="tiny_only", help="skip the paper-size measurements"
    )
    add_device_args(p)
    p.set_defaults(fn=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.fn, args)


if __name__ == "__main__":
    sys.exit(main())
