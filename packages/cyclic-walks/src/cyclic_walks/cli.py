"""Command line: ``cyclic-walks {train,evaluate,visualize,make-synthetic,demo,repro,bench}``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cyclic_walks.config import Config, get_config
from visioncore.console import run_command


def add_config_args(parser: argparse.ArgumentParser, default: str = "voc") -> None:
    parser.add_argument(
        "--config", default=default, help="config name (voc, coco, movi-c, ..., tiny) or YAML path"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def load_model(path: str):
    from cyclic_walks.models import CyclicWalks

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder}: no saved model (config.json missing); pass a train run's model/ folder"
        )
    return CyclicWalks.from_pretrained(folder)


def eval_dataset(cfg: Config):
    from cyclic_walks.data import build_dataset

    d = cfg.data
    return build_dataset(
        d.dataset,
        d.root,
        d.val_split,
        train=False,
        image_size=d.image_size,
        eval_crop=d.eval_crop,
        eval_size=d.eval_size,
        protocol=cfg.eval.protocol,
        movi_variant=d.movi_variant,
    )


def check_model_fits(model, backbone, source: str) -> None:
    if model.feature_dim != backbone.feature_dim:
        raise ValueError(
            f"{source}: model expects {model.feature_dim}-d features but backbone {backbone.kind} gives "
            f"{backbone.feature_dim}-d"
        )


def cmd_train(args: argparse.Namespace) -> None:
    from cyclic_walks.train import train

    cfg = get_config(args.config, args.overrides)
    result = train(cfg, args.out, resume=args.resume)
    print(json.dumps(result.losses, indent=2))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from cyclic_walks.evaluate import evaluate
    from cyclic_walks.models import build_backbone

    overrides = list(args.overrides)
    if args.protocol:
        overrides.append(f"eval.protocol={args.protocol}")
    if args.task:
        overrides.append(f"eval.task={args.task}")
    cfg = get_config(args.config, overrides)
    model, backbone = load_model(args.model), build_backbone(cfg.backbone)
    check_model_fits(model, backbone, args.model)
    e = cfg.eval
    result = evaluate(
        model,
        backbone,
        eval_dataset(cfg),
        task=e.task,
        protocol=e.protocol,
        batch_size=e.batch_size,
        seed=e.seed,
        num_classes=e.num_classes,
        max_images=e.max_images,
        device="cuda" if torch.cuda.is_available() else "cpu",
    )
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")


def visualize(model, backbone, dataset, path: Path, num_images: int = 6, seed: int = 0) -> Path:
    """Per image one row: the image, the slot-mask overlay, then each slot's upsampled A_fs map."""
    import torch.nn.functional as F

    from cyclic_walks.evaluate import iterate_predictions
    from visioncore.viz import overlay_segmentation, save_image_grid

    batch, pred = next(iterate_predictions(model, backbone, dataset, batch_size=num_images, seed=seed))
    images = batch["image"]
    maps = F.interpolate(pred["attention"], size=images.shape[-2:], mode="bilinear", align_corners=False)
    tiles = []
    for img, mask, slot_maps in zip(images, pred["masks"], maps):
        rgb = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        tiles += [rgb, overlay_segmentation(rgb, mask.numpy())]
        tiles += [
            np.repeat((m.numpy()[..., None] * 255).round().astype(np.uint8), 3, axis=2) for m in slot_maps
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image_grid(path, np.stack(tiles).transpose(0, 3, 1, 2), nrow=2 + maps.shape[1])
    return path


def cmd_visualize(args: argparse.Namespace) -> None:
    from cyclic_walks.models import build_backbone

    cfg = get_config(args.config, args.overrides)
    model, backbone = load_model(args.model), build_backbone(cfg.backbone)
    check_model_fits(model, backbone, args.model)
    print(visualize(model, backbone, eval_dataset(cfg), Path(args.out), args.num_images, cfg.eval.seed))


def cmd_make_synthetic(args: argparse.Namespace) -> None:
    from cyclic_walks.data import write_synthetic_voc

    root = write_synthetic_voc(
        args.out, num_train=args.num_train, num_val=args.num_val, size=args.size, seed=args.seed
    )
    print(root)


def cmd_demo(args: argparse.Namespace) -> None:
    """Synthetic scenes -> tiny training run -> evaluation (both protocols) -> visualisation, in seconds."""
    from cyclic_walks.data import write_synthetic_voc
    from cyclic_walks.evaluate import evaluate
    from cyclic_walks.models import CyclicWalks, build_backbone
    from cyclic_walks.train import build_model, train

    start = time.time()
    out = Path(args.out)
    root = write_synthetic_voc(out / "data", num_train=96, num_val=32, size=64, seed=0)
    cfg = get_config("tiny", [f"data.root={root}", *args.overrides])
    backbone = build_backbone(cfg.backbone)
    dataset = eval_dataset(cfg)
    features, grid = backbone(torch.stack([dataset[i]["image"] for i in range(len(dataset))]))
    torch.manual_seed(cfg.train.seed)
    untrained = build_model(cfg, backbone.feature_dim)
    with torch.no_grad():
        torch.manual_seed(0)
        loss_init = untrained.loss(features, grid)[0].item()
    metrics: dict[str, float] = {
        "fg_ari_init": float(evaluate(untrained, backbone, dataset, protocol="clean")["fg_ari"]),
        "val_loss_init": loss_init,
    }
    train(cfg, out / "run", backbone=backbone)
    model = CyclicWalks.from_pretrained(out / "run" / "model")
    with torch.no_grad():
        torch.manual_seed(0)
        metrics["val_loss_trained"] = model.loss(features, grid)[0].item()
    clean = evaluate(model, backbone, dataset, protocol="clean")
    official = evaluate(model, backbone, dataset, protocol="official")
    metrics.update(
        fg_ari_trained=float(clean["fg_ari"]),
        ari_trained=float(clean["ari"]),
        mbo_trained=float(clean["mbo"]),
        fg_ari_official=float(official["fg_ari"]),
        steps=float(cfg.train.max_steps),
    )
    visualize(model, backbone, dataset, out / "masks.png")
    metrics["seconds"] = time.time() - start
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


def cmd_repro(args: argparse.Namespace) -> None:
    from cyclic_walks.repro import METRIC_KEYS, ReproConfig, expectations, run_repro
    from visioncore.config import load_config

    cfg = load_config(ReproConfig, None, args.overrides)
    metrics = run_repro(args.out, cfg)
    print(f"\n{'metric':<26}{'mean over seeds':>16}")
    for key in METRIC_KEYS:
        print(f"{key:<26}{metrics[key]:>16.3f}")
    for rule, ok in expectations(metrics).items():
        print(f"{'PASS' if ok else 'MISS'}  {rule}")


def cmd_bench(args: argparse.Namespace) -> None:
    from cyclic_walks.bench import run_bench

    print(json.dumps(run_bench(args.settings, args.steps), indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cyclic-walks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train SACRW on a dataset (accelerate; resumable)")
    add_config_args(p)
    p.add_argument("--out", required=True, help="run folder (checkpoints/, logs/, model/)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser(
        "evaluate", help="object discovery / foreground extraction / semantic segmentation scores"
    )
    add_config_args(p)
    p.add_argument("--model", required=True, help="a saved model folder (run/model)")
    p.add_argument("--protocol", choices=("official", "clean"), help="default: the config's (official)")
    p.add_argument("--task", choices=("od", "fe", "ss"), help="default: the config's")
    p.add_argument("--out", help="folder for metrics.json")
    p.set_defaults(fn=cmd_evaluate)

    p = sub.add_parser("visualize", help="image, slot-mask overlay and per-slot maps as a PNG grid")
    add_config_args(p)
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True, help="PNG path")
    p.add_argument("--num-images", type=int, default=6)
    p.set_defaults(fn=cmd_visualize)

    p = sub.add_parser("make-synthetic", help="write multi-object shape scenes in the VOCdevkit layout")
    p.add_argument("--out", required=True)
    p.add_argument("--num-train", type=int, default=200)
    p.add_argument("--num-val", type=int, default=50)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_make_synthetic)

    p = sub.add_parser("demo", help="end-to-end run on synthetic data with the tiny config")
    p.add_argument("--out", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("repro", help="the issue's acceptance experiment (about 15 CPU minutes)")
    p.add_argument("--out", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(fn=cmd_repro)

    p = sub.add_parser("bench", help="training step time and memory: SACRW vs the decoder baseline (JSON)")
    p.add_argument("--settings", nargs="+", default=["tiny", "paper"], choices=("tiny", "paper"))
    p.add_argument("--steps", type=int, default=3)
    p.set_defaults(fn=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.fn, args)  # ConfigError, DatasetError, CheckpointError, BackboneError, ...


if __name__ == "__main__":
    sys.exit(main())
