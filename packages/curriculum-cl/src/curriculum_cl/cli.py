"""``curriculum-cl``: sweep, design, compare, train (full backbone), pretrain, make-synthetic, demo, repro, bench."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from curriculum_cl import config as config_mod
from curriculum_cl.data.datasets import DATASETS
from visioncore.console import run_command

SHORTHANDS = {  # sweep/design flags -> config overrides
    "dataset": "data.dataset",
    "root": "data.root",
    "classes": "data.classes",
    "seeds": "sweep.seeds",
    "augment_views": "data.augment_views",
    "setting": "data.setting",
}


def _config(args: argparse.Namespace, default: str | None = None) -> config_mod.Config:
    name = args.config
    if name is None:
        dataset = getattr(args, "dataset", None)
        name = dataset if dataset in ("mnist", "fashion-mnist", "cifar10", "nod", "digits") else default
    overrides = list(args.set or [])
    for flag, key in SHORTHANDS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if getattr(args, "algorithms", None):
        overrides.append(f"sweep.algorithms=[{args.algorithms}]")
    return config_mod.load(name, overrides)


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        help="config name (mnist, fashion-mnist, cifar10, cifar10-pairs, nod, digits, tiny) or a YAML path",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="dotted override, repeatable")


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=DATASETS)
    p.add_argument("--root", help="local dataset folder")
    p.add_argument("--classes", help="e.g. 0-4 or 0,1,2,3,4")
    p.add_argument("--setting", choices=["single", "pairs", "nod"])
    p.add_argument(
        "--augment-views", type=int, dest="augment_views", help="cache K augmented views (CIFAR/NOD)"
    )


def cmd_sweep(args) -> None:
    from curriculum_cl.train import sweep

    cfg = _config(args, "digits")
    summary = sweep(cfg, args.out)
    for alg, v in summary.items():
        f = [c["f"] for c in v["curricula"].values()]
        print(f"{alg:<8} runs={v['runs']:<5} mean F={np.mean(f):.4f}  best={max(f):.4f}  worst={min(f):.4f}")
    print(f"results: {Path(args.out) / 'results.csv'}, {Path(args.out) / 'results.json'}")


def cmd_design(args) -> None:
    from curriculum_cl.designer import generate_curricula
    from curriculum_cl.train import prepare

    cfg = _config(args, "digits")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare(cfg, out)
    order = np.argsort(-prepared.designer_scores, kind="stable")
    generated = generate_curricula(prepared.distances)
    ids = {o: i for i, o in enumerate(prepared.space.orders)}
    result = {
        "ranking": [
            {
                "curriculum_id": int(i),
                "order": prepared.space.order_string(int(i)),
                "score": float(prepared.designer_scores[i]),
            }
            for i in order
        ],
        "generated": [{"curriculum_id": ids.get(g), "order": "".join(map(str, g))} for g in generated],
        "units": [list(u) for u in prepared.space.units],
    }
    (out / "design.json").write_text(json.dumps(result, indent=1))
    print("rank  id   order  score")
    for rank, row in enumerate(result["ranking"][: args.top], start=1):
        print(f"{rank:>4}  {row['curriculum_id']:>3}  {row['order']}  {row['score']:.4f}")
    print("generated:", ", ".join(f"{g['order']} (id {g['curriculum_id']})" for g in result["generated"]))


def cmd_compare(args) -> None:
    from curriculum_cl.evaluate import compare

    cfg = _config(args, "digits")
    if args.human_csv:
        cfg.analysis.human_csv = args.human_csv
    table = compare(args.sweep, cfg.analysis, args.out)
    print(f"{'algorithm':<10}{'F':>8}{'anova_p':>11}{'rho(CD,F)':>11}{'H_cd':>8}{'H_rand':>8}")
    for alg, row in table["algorithms"].items():
        print(
            f"{alg:<10}{row['f_mean']:>8.4f}{row['anova_p']:>11.3g}{row['spearman_designer_vs_f']:>11.3f}"
            f"{row['hamming_designer']:>8.3f}{row['hamming_random']:>8.3f}"
        )
    print(f"H between algorithms: {table['hamming_between_algorithms']:.3f}")


def cmd_train(args) -> None:
    from curriculum_cl.train import train_full

    run = train_full(_config(args, "tiny"), args.out, resume=args.resume)
    print(json.dumps({k: v for k, v in run.metrics.items() if k != "acc"}))


def cmd_pretrain(args) -> None:
    from curriculum_cl.train import pretrain_teacher

    cfg = _config(args, "digits")
    _, acc = pretrain_teacher(cfg, args.out)
    print(f"teacher saved to {args.out}; test accuracy on classes {cfg.teacher.classes}: {acc:.4f}")


def cmd_make_synthetic(args) -> None:
    from curriculum_cl.data.synthetic import write_synthetic

    root = write_synthetic(args.out, args.format, n_train=args.n_train, n_test=args.n_test, size=args.size)
    print(f"wrote synthetic {args.format} to {root} (use --dataset {args.format} --root {root})")


def cmd_demo(args) -> None:
    from curriculum_cl.evaluate import compare
    from curriculum_cl.train import pretrain_teacher, sweep

    start = time.perf_counter()
    out = Path(args.out)
    cfg = config_mod.load("tiny")
    _, teacher_acc = pretrain_teacher(cfg, out / "teacher")
    cfg.extractor.weights = str(out / "teacher")
    t0 = time.perf_counter()
    summary = sweep(cfg, out / "sweep", show_progress=False)
    sweep_s = time.perf_counter() - t0
    table = compare(out / "sweep", cfg.analysis)
    runs = sum(v["runs"] for v in summary.values())
    metrics = {
        "teacher_test_accuracy": teacher_acc,
        "runs": runs,
        "runs_per_second": runs / sweep_s,
        **{f"alpha_{a}": r["alpha_mean"] for a, r in table["algorithms"].items()},
        **{f"beta_{a}": r["beta_mean"] for a, r in table["algorithms"].items()},
        **{f"f_{a}": r["f_mean"] for a, r in table["algorithms"].items()},
        "seconds_total": time.perf_counter() - start,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(json.dumps(metrics, indent=1))


def cmd_repro(args) -> None:
    from curriculum_cl.repro import run_repro

    run_repro(_config(args, "digits"), args.out)


def cmd_bench(args) -> None:
    from curriculum_cl.bench import run_bench

    result = run_bench(quick=args.quick)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "bench.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="curriculum-cl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sweep", help="run every curriculum x seed x algorithm on cached features (resumable)")
    _add_config(p)
    _add_data(p)
    p.add_argument("--algorithms", help="comma list of naive,ewc,lwf,replay,si")
    p.add_argument("--seeds", type=int)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("design", help="curriculum designer scores, ranking and generated curricula")
    _add_config(p)
    _add_data(p)
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_design)

    p = sub.add_parser("compare", help="agreement table and plots of a sweep")
    _add_config(p)
    p.add_argument("--sweep", required=True, help="a sweep --out folder")
    p.add_argument("--human-csv", help="CSV with curriculum_id,phase,accuracy")
    p.add_argument("--out", help="defaults to the sweep folder")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("train", help="full-backbone mode: one curriculum, trainable extractor (accelerate)")
    _add_config(p)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pretrain", help="pre-train the small CNN extractor on the teacher classes")
    _add_config(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("make-synthetic", help="write a synthetic dataset in a real on-disk layout")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--format", default="mnist", choices=["mnist", "fashion-mnist", "cifar10", "nod", "folder"]
    )
    p.add_argument("--n-train", type=int, default=60, dest="n_train")
    p.add_argument("--n-test", type=int, default=20, dest="n_test")
    p.add_argument("--size", type=int, default=0, help="image side (0: the format's own)")
    p.set_defaults(func=cmd_make_synthetic)

    p = sub.add_parser("demo", help="<= 40 s end to end on digits with the tiny config")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("repro", help="the acceptance experiment (digits, <= 5 min on 2 cores)")
    _add_config(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_repro)

    p = sub.add_parser("bench", help="throughput (runs/s) cached vs recomputed features, peak memory; JSON")
    p.add_argument("--out")
    p.add_argument("--quick", action="store_true", help="smaller sizes")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    raise SystemExit(main())
