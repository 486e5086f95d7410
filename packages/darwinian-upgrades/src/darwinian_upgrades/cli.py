"""``darwinian-upgrades``: train (old | independent | bct | dmu), train-adapter, extract, adapt-gallery, backfill,
evaluate, prepare-gldv2, split-gldv2, make-synthetic, demo, repro, bench."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from visioncore.config import add_config_args, config_from_args
from visioncore.console import run_command
from visioncore.devices import add_device_args

PACKAGE = "darwinian_upgrades"


def _cfg(args: argparse.Namespace):
    from darwinian_upgrades.config import Config

    return config_from_args(Config, args, package=PACKAGE)


def _mixed_precision(args: argparse.Namespace) -> str:
    return {"fp32": "no", "fp16": "fp16", "bf16": "bf16"}[args.dtype]


def _device(args: argparse.Namespace):
    from visioncore.devices import resolve_device

    return resolve_device(args.device)


def _autocast(args: argparse.Namespace, device):
    """Inference precision of ``--dtype`` (features are returned in fp32)."""
    import contextlib

    import torch

    from visioncore.devices import resolve_dtype

    dtype = resolve_dtype(args.dtype)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _fresh_out(path: str) -> Path:
    """The output folder, refused when a file holds its name (results inside are written atomically)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(20, "output path exists and is not a folder", str(out))
    return out


def _load_model(path: str | Path, device=None):
    from darwinian_upgrades.models import load_model

    model = load_model(path)
    return model.to(device) if device is not None else model


def _load_adapter(path: str | Path):
    from darwinian_upgrades.models import load_adapter

    return load_adapter(path)


def _dataset(cfg, list_file: str, *, train: bool):
    """A training/gallery set: GLDv2 image lists, or MS1M records (all, or those of a ``<key> <label>`` list)."""
    from darwinian_upgrades.data.gldv2 import ImageListDataset, read_label_list

    root = Path(cfg.data.root)
    if cfg.data.format == "ms1m":
        from darwinian_upgrades.data.ms1m import MS1MDataset

        return MS1MDataset(root, read_label_list(root / list_file) if list_file else None)
    return ImageListDataset(root, read_label_list(root / list_file), cfg.data, train=train)


# ------------------------------------------------------------------------------------------------------- verbs
def cmd_train(args: argparse.Namespace) -> None:
    from darwinian_upgrades.train import train

    cfg = _cfg(args)
    device = _device(args)
    if args.role in ("bct", "dmu") and not args.old_model:
        raise ValueError(f"--role {args.role} needs --old-model DIR")
    dataset = _dataset(cfg, cfg.data.old_list if args.role == "old" else cfg.data.train_list, train=True)
    old = _load_model(args.old_model) if args.old_model else None
    num_classes = old.num_classes if old is not None else None
    train(
        cfg,
        args.role,
        _fresh_out(args.out),
        dataset,
        old_model=old,
        old_source=args.old_model or "",
        num_classes=num_classes,
        resume=args.resume,
        cpu=device.type == "cpu",
        mixed_precision=_mixed_precision(args),
        trackers=("jsonl", "tensorboard"),
    )
    print(f"model: {Path(args.out) / 'model'}")


def cmd_train_adapter(args: argparse.Namespace) -> None:
    from darwinian_upgrades.train import adapter_features, train_adapter

    cfg = _cfg(args)
    device = _device(args)
    old, new = _load_model(args.old_model), _load_model(args.new_model)
    dataset = _dataset(cfg, cfg.data.train_list, train=False)
    cached = adapter_features(
        old, new, dataset, tau=cfg.loss.tau, num_classes=max(old.num_classes, new.num_classes)
    )
    train_adapter(cfg, _fresh_out(args.out), cached, new, resume=args.resume, cpu=device.type == "cpu")
    print(f"adapter: {Path(args.out) / 'model'}")


def cmd_extract(args: argparse.Namespace) -> None:
    from darwinian_upgrades.gallery import GalleryStore, model_tag
    from darwinian_upgrades.train import extract

    cfg = _cfg(args)
    device = _device(args)
    model = _load_model(args.model, device)
    dataset = _dataset(cfg, args.list or cfg.data.gallery_list, train=False)
    with _autocast(args, device):
        feats, _, _ = extract(model, dataset, device=device)
    store = GalleryStore(feats, [p for p, _ in dataset.entries], model_tag(model))
    store.save(_fresh_out(args.out))
    print(f"gallery: {args.out} ({len(store.ids)} items, model {store.model_tag})")


def cmd_adapt_gallery(args: argparse.Namespace) -> None:
    from darwinian_upgrades.gallery import GalleryStore, model_tag

    old = _load_model(args.old_model)
    store = GalleryStore.load(args.gallery, expect_tag=model_tag(old), adapter=_load_adapter(args.adapter))
    store.save(_fresh_out(args.out))
    print(f"adapted gallery: {args.out} ({len(store.ids)} items, ψ {store.adapter_tag})")


def cmd_backfill(args: argparse.Namespace) -> None:
    import torch

    from darwinian_upgrades.backfill import backfill_order, backfilled_gallery, gallery_uncertainty
    from darwinian_upgrades.gallery import GalleryStore, model_tag
    from visioncore.files import atomic_write_json

    old = _load_model(args.old_model)
    old_store = GalleryStore.load(args.old_gallery, expect_tag=model_tag(old))
    new_model = _load_model(args.new_model)
    new_store = GalleryStore.load(args.new_gallery, expect_tag=model_tag(new_model))
    if new_store.ids != old_store.ids:
        raise ValueError(f"{args.new_gallery}: its items differ from those of {args.old_gallery}")
    base = old_store.adapted(_load_adapter(args.adapter)) if args.adapter else old_store
    if base.features.shape[1] != new_store.features.shape[1]:
        raise ValueError(
            f"{args.old_gallery}: old features have size {base.features.shape[1]}, new ones "
            f"{new_store.features.shape[1]}; pass --adapter (ψ) to map them"
        )
    with torch.no_grad():
        uncertainty = gallery_uncertainty(old.logits(old_store.features))
    order = backfill_order(
        uncertainty, strategy=args.order, generator=torch.Generator().manual_seed(args.seed)
    )
    mixed = backfilled_gallery(base.features, new_store.features, order, args.fraction)
    out = _fresh_out(args.out)
    GalleryStore(mixed, base.ids, base.model_tag, base.adapter_tag).save(out)
    count = int(args.fraction * len(order) + 1e-9)
    atomic_write_json(
        out / "backfill.json",
        {
            "fraction": args.fraction,
            "order": args.order,
            "backfilled": [base.ids[i] for i in order[:count].tolist()],
            "new_model_tag": new_store.model_tag,
        },
    )
    print(f"backfilled {count} of {len(order)} items ({args.order} order): {out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from darwinian_upgrades.protocols import evaluate_protocol
    from visioncore.files import atomic_write_json

    cfg = _cfg(args)
    device = _device(args)
    with _autocast(args, device):
        result = evaluate_protocol(args, cfg, device)
    out = _fresh_out(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", result)
    print(json.dumps(result, indent=2))


def cmd_prepare_gldv2(args: argparse.Namespace) -> None:
    from darwinian_upgrades.data.gldv2 import prepare_gldv2

    counts = prepare_gldv2(args.index_csv, args.solution_csv, _fresh_out(args.out))
    print(
        f"gallery {counts['gallery']}, public queries {counts['public']}, private queries {counts['private']}"
    )


def cmd_split_gldv2(args: argparse.Namespace) -> None:
    from darwinian_upgrades.data.gldv2 import (
        read_label_list,
        split_by_class,
        split_by_data,
        split_file_name,
        write_list,
    )

    if not 0.0 < args.fraction <= 1.0:
        raise ValueError(f"--fraction must lie in (0, 1], got {args.fraction}")
    if Path(args.label_file, "train.rec").is_file():  # an MS1M RecordIO folder: split its records
        from darwinian_upgrades.data.ms1m import MS1MDataset

        entries = MS1MDataset(args.label_file).entries
    else:
        entries = read_label_list(args.label_file)
    split = (split_by_data if args.by == "data" else split_by_class)(entries, args.fraction, seed=args.seed)
    path = _fresh_out(args.out) / split_file_name(args.fraction, args.by)
    write_list(path, [f"{p} {label}" for p, label in split])
    print(f"{path}: {len(split)} of {len(entries)} images")


def cmd_make_synthetic(args: argparse.Namespace) -> None:
    from darwinian_upgrades.data.synthetic import make_synthetic

    cfg = _cfg(args)
    counts = make_synthetic(_fresh_out(args.out), cfg.repro, seed=args.seed)
    print(json.dumps(counts))


def cmd_demo(args: argparse.Namespace) -> None:
    from darwinian_upgrades.demo import demo

    print(json.dumps(demo(_fresh_out(args.out)), indent=2))


def cmd_repro(args: argparse.Namespace) -> None:
    from darwinian_upgrades.repro import repro, table

    out = _fresh_out(args.out)
    means = repro(_cfg(args), out)
    print(table(means, json.loads((out / "details.json").read_text())["per_seed"]))


def cmd_bench(args: argparse.Namespace) -> None:
    from darwinian_upgrades.bench import bench

    result = bench(
        args.sizes.split(","), _device(args), args.dtype, batch_size=args.batch_size, gallery=args.gallery
    )
    print(json.dumps(result, indent=2))


# ------------------------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="darwinian-upgrades", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def verb(name: str, fn, help_: str, *, config: str | None = "tiny", device: bool = False):
        p = sub.add_parser(name, help=help_)
        p.set_defaults(fn=fn)
        if config is not None:
            add_config_args(p, default=config)
        if device:
            add_device_args(p)
        return p

    p = verb("train", cmd_train, "train an embedding model (old, independent, BCT or DMU)", device=True)
    p.add_argument("--role", required=True, choices=["old", "independent", "bct", "dmu"])
    p.add_argument("--old-model", help="folder of the old model (bct, dmu)")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")

    p = verb("train-adapter", cmd_train_adapter, "train ψ post hoc on cached old/new features", device=True)
    p.add_argument("--old-model", required=True)
    p.add_argument("--new-model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true")

    p = verb("extract", cmd_extract, "extract and store gallery features with a model", device=True)
    p.add_argument("--model", required=True)
    p.add_argument("--list", help="image list relative to data.root (default: data.gallery_list)")
    p.add_argument("--out", required=True)

    p = verb("adapt-gallery", cmd_adapt_gallery, "apply ψ to a stored old gallery", config=None, device=True)
    p.add_argument("--gallery", required=True)
    p.add_argument("--old-model", required=True, help="the model the gallery must come from")
    p.add_argument("--adapter", required=True)
    p.add_argument("--out", required=True)

    p = verb("backfill", cmd_backfill, "swap new features into the base gallery", config=None, device=True)
    p.add_argument("--old-gallery", required=True)
    p.add_argument("--old-model", required=True)
    p.add_argument("--new-gallery", required=True)
    p.add_argument("--new-model", required=True)
    p.add_argument("--adapter", help="ψ: the base gallery is ψ(old) (DMU) instead of old (BCT)")
    p.add_argument("--fraction", type=float, required=True)
    p.add_argument("--order", choices=["uncertainty", "random"], default="uncertainty")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)

    p = verb("evaluate", cmd_evaluate, "self / cross / adapted retrieval tests", device=True)
    p.add_argument("--protocol", required=True, choices=["gldv2", "roxford", "rparis", "ijbc"])
    p.add_argument("--model", required=True, help="query model (the new one)")
    p.add_argument("--gallery-model", help="model that extracts the gallery (cross-test: the old one)")
    p.add_argument("--gallery", help="a stored gallery folder instead of --gallery-model")
    p.add_argument("--old-model", help="declared old model: a stored gallery must come from it")
    p.add_argument("--adapter", help="ψ applied to the gallery features")
    p.add_argument("--gnd", help="revisitop gnd pickle (roxford, rparis)")
    p.add_argument("--images", help="image folder (roxford, rparis: the jpg folder; ijbc: loose_crop)")
    p.add_argument("--ijbc-root", help="IJB-C folder holding meta/ and loose_crop/")
    p.add_argument("--out", required=True)

    p = verb(
        "prepare-gldv2",
        cmd_prepare_gldv2,
        "gallery/query lists from index.csv and the solution CSV",
        config=None,
    )
    p.add_argument("--index-csv", required=True)
    p.add_argument("--solution-csv", required=True)
    p.add_argument("--out", required=True)

    p = verb(
        "split-gldv2", cmd_split_gldv2, "old-model split of a label list (by data or by class)", config=None
    )
    p.add_argument("label_file", help="label list (<path> <int> lines), or an MS1M RecordIO folder")
    p.add_argument("--by", choices=["data", "class"], default="data")
    p.add_argument("--fraction", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=666)
    p.add_argument("--out", required=True)

    p = verb(
        "make-synthetic", cmd_make_synthetic, "synthetic landmarks in the GLDv2 layout (+ a revisitop pickle)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)

    p = verb("demo", cmd_demo, "old -> BCT/DMU upgrade on tiny synthetic data (<= 40 s)", config=None)
    p.add_argument("--out", required=True)

    p = verb("repro", cmd_repro, "the acceptance experiment (3 seeds)", config="repro")
    p.add_argument("--out", required=True)

    p = verb(
        "bench",
        cmd_bench,
        "step time / peak memory of independent, BCT, DMU steps; ψ vs re-extraction",
        config=None,
        device=True,
    )
    p.add_argument("--sizes", default="tiny,paper", help="comma list of tiny, paper")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--gallery", type=int, default=256, help="N gallery items for ψ vs re-extraction")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.fn, args)


if __name__ == "__main__":
    sys.exit(main())
