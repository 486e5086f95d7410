"""``curriculum-cl``: sweep, design, compare, train (full backbone), pretrain, make-synthetic, demo, repro, parity,
bench."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from visioncore.config import add_config_args, config_from_args
from visioncore.console import run_command
from visioncore.devices import add_device_args

SHORTHANDS = {  # sweep/design flags -> config overrides
    "dataset": "data.dataset",
    "root": "data.root",
    "classes": "data.classes",
    "seeds": "sweep.seeds",
    "augment_views": "data.augment_views",
    "setting": "data.setting",
}


def _config(args: argparse.Namespace):
    """The ``--config`` (default per verb) with ``--set`` overrides, then the shorthand flags on top."""
    from curriculum_cl.config import Config

    overrides = list(args.overrides)
    for flag, key in SHORTHANDS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if getattr(args, "algorithms", None):
        overrides.append(f"sweep.algorithms=[{args.algorithms}]")
    args.overrides = overrides
    return config_from_args(Config, args, package="curriculum_cl")


def _device(args: argparse.Namespace):
    from visioncore.devices import resolve_device, resolve_dtype

    return {"device": resolve_device(args.device), "dtype": resolve_dtype(args.dtype)}


def _new_folder(path: str) -> Path:
    """An output folder: created if missing; an existing file there is a one-line error, not a traceback."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(20, "--out must be a folder, but a file is there", str(out))
    out.mkdir(parents=True, exist_ok=True)
    return out


def cmd_sweep(args) -> None:
    import numpy as np

    from curriculum_cl.train import sweep

    cfg = _config(args)
    out = _new_folder(args.out)
    summary = sweep(cfg, out, **_device(args))
    for alg, v in summary.items():
        f = [c["f"] for c in v["curricula"].values()]
        print(f"{alg:<8} runs={v['runs']:<5} mean F={np.mean(f):.4f}  best={max(f):.4f}  worst={min(f):.4f}")
    print(f"results: {out / 'results.csv'}, {out / 'results.json'}")


def cmd_design(args) -> None:
    import numpy as np

    from curriculum_cl.designer import generate_curricula
    from curriculum_cl.train import prepare
    from visioncore.files import atomic_write_json

    cfg = _config(args)
    out = _new_folder(args.out)
    prepared = prepare(cfg, out, **_device(args))
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
    atomic_write_json(out / "design.json", result, indent=1)
    print("rank  id   order  score")
    for rank, row in enumerate(result["ranking"][: args.top], start=1):
        print(f"{rank:>4}  {row['curriculum_id']:>3}  {row['order']}  {row['score']:.4f}")
    print("generated:", ", ".join(f"{g['order']} (id {g['curriculum_id']})" for g in result["generated"]))


def cmd_compare(args) -> None:
    from curriculum_cl.evaluate import compare

    cfg = _config(args)
    if args.human_csv:
        cfg.analysis.human_csv = args.human_csv
    table = compare(args.sweep, cfg.analysis, _new_folder(args.out) if args.out else None)
    print(f"{'algorithm':<10}{'F':>8}{'anova_p':>11}{'rho(CD,F)':>11}{'H_cd':>8}{'H_rand':>8}")
    for alg, row in table["algorithms"].items():
        print(
            f"{alg:<10}{row['f_mean']:>8.4f}{row['anova_p']:>11.3g}{row['spearman_designer_vs_f']:>11.3f}"
            f"{row['hamming_designer']:>8.3f}{row['hamming_random']:>8.3f}"
        )
    print(f"H between algorithms: {table['hamming_between_algorithms']:.3f}")


def cmd_train(args) -> None:
    import dataclasses

    from curriculum_cl.train import train_full

    cfg = _config(args)
    device = _device(args)
    if args.dtype != "fp32":  # --dtype picks the mixed precision of the accelerate loop
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, mixed_precision=args.dtype))
    run = train_full(cfg, _new_folder(args.out), resume=args.resume, cpu=device["device"].type == "cpu")
    print(json.dumps({k: v for k, v in run.metrics.items() if k != "acc"}))


def cmd_pretrain(args) -> None:
    from curriculum_cl.train import pretrain_teacher

    cfg = _config(args)
    _, acc = pretrain_teacher(cfg, _new_folder(args.out), **_device(args))
    print(f"teacher saved to {args.out}; test accuracy on classes {cfg.teacher.classes}: {acc:.4f}")


def cmd_make_synthetic(args) -> None:
    from curriculum_cl.data.synthetic import write_synthetic

    root = write_synthetic(
        _new_folder(args.out), args.format, n_train=args.n_train, n_test=args.n_test, size=args.size
    )
    print(f"wrote synthetic {args.format} to {root} (use --dataset {args.format} --root {root})")


def cmd_demo(args) -> None:
    from curriculum_cl.demo import run_demo

    run_demo(_new_folder(args.out), **_device(args))


def cmd_repro(args) -> None:
    from curriculum_cl.repro import run_repro

    run_repro(_config(args), _new_folder(args.out), **_device(args))


def cmd_parity(args) -> None:
    from curriculum_cl.parity import PARITY_ALGORITHMS, run_parity

    cfg = _config(args)
    algs = args.parity_algorithms
    algorithms = tuple(a.strip() for a in algs.split(",")) if algs else PARITY_ALGORITHMS
    out = _new_folder(args.out)
    result = run_parity(
        cfg, out, curricula=args.curricula, seeds=args.parity_seeds, algorithms=algorithms, **_device(args)
    )
    print(f"Avalanche {result['avalanche_version']} vs run_heads, {len(result['curricula'])} curricula x "
          f"{result['seeds']} seeds (tolerance {result['tolerance']})")  # fmt: skip
    print(f"{'strategy':<10}{'max|diff|':>11}{'mean|diff|':>12}  within")
    for alg, row in result["algorithms"].items():
        print(
            f"{alg:<10}{row['max_abs_diff']:>11.4f}{row['mean_abs_diff']:>12.4f}  {row['within_tolerance']}"
        )
    print(f"results: {out / 'parity.json'}")


def cmd_bench(args) -> None:
    from curriculum_cl.bench import run_bench
    from visioncore.files import atomic_write_json

    result = run_bench(quick=args.quick, **_device(args))
    if args.out:
        atomic_write_json(_new_folder(args.out) / "bench.json", result, indent=1)
    print(json.dumps(result, indent=1))


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="overrides data.dataset (an unknown name is refused by the config)")
    p.add_argument("--root", help="local dataset folder (data.root; refused for the bundled digits)")
    p.add_argument("--classes", help="e.g. 0-4 or 0,1,2,3,4")
    p.add_argument("--setting", choices=["single", "pairs", "nod"])
    p.add_argument(
        "--augment-views", type=int, dest="augment_views", help="cache K augmented views (CIFAR/NOD)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="curriculum-cl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sweep", help="run every curriculum x seed x algorithm on cached features (resumable)")
    add_config_args(p, default="digits")
    _add_data(p)
    p.add_argument("--algorithms", help="comma list of naive,ewc,lwf,replay,si")
    p.add_argument("--seeds", type=int)
    p.add_argument("--out", required=True)
    add_device_args(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("design", help="curriculum designer scores, ranking and generated curricula")
    add_config_args(p, default="digits")
    _add_data(p)
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--out", required=True)
    add_device_args(p)
    p.set_defaults(func=cmd_design)

    p = sub.add_parser("compare", help="agreement table and plots of a sweep")
    add_config_args(p, default="digits")
    p.add_argument("--sweep", required=True, help="a sweep --out folder")
    p.add_argument("--human-csv", help="CSV with curriculum_id,phase,accuracy")
    p.add_argument("--out", help="defaults to the sweep folder")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("train", help="full-backbone mode: one curriculum, trainable extractor (accelerate)")
    add_config_args(p, default="tiny")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    add_device_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pretrain", help="pre-train the small CNN extractor on the teacher classes")
    add_config_args(p, default="digits")
    p.add_argument("--out", required=True)
    add_device_args(p)
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

    p = sub.add_parser("demo", help="<= 40 s smoke check on digits with the tiny config")
    p.add_argument("--out", required=True)
    add_device_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("repro", help="the acceptance experiment (digits, <= 5 min on 2 cores)")
    add_config_args(p, default="digits")
    p.add_argument("--out", required=True)
    add_device_args(p)
    p.set_defaults(func=cmd_repro)

    p = sub.add_parser(
        "parity", help="the same runs through Avalanche (Naive, EWC, LwF) and run_heads; accuracy matrices"
    )
    add_config_args(p, default="digits")
    _add_data(p)
    p.add_argument("--curricula", type=int, default=5, help="evenly spaced curriculum ids")
    p.add_argument("--seeds", type=int, default=2, dest="parity_seeds")
    p.add_argument(
        "--algorithms", dest="parity_algorithms", help="comma list of naive,ewc,lwf,lwf_v01 (default: all)"
    )
    p.add_argument("--out", required=True)
    add_device_args(p)
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("bench", help="throughput (runs/s) cached vs recomputed features, peak memory; JSON")
    p.add_argument("--out")
    p.add_argument("--quick", action="store_true", help="smaller sizes")
    add_device_args(p)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    raise SystemExit(main())
