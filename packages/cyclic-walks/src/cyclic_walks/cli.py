"""Command line: ``cyclic-walks {train,evaluate,visualize,make-synthetic,demo,repro,bench}``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from visioncore.config import add_config_args, config_from_args
from visioncore.console import run_command
from visioncore.devices import add_device_args, resolve_device, resolve_dtype
from visioncore.files import atomic_path, atomic_write_json

if (
    TYPE_CHECKING
):  # torch and the config (which imports the models) load inside the verbs: `--help` stays fast
    import torch

    from cyclic_walks.config import Config


def _config(args: argparse.Namespace, extra: list[str] | tuple[str, ...] = ()) -> Config:
    from cyclic_walks.config import Config

    args.overrides = [*args.overrides, *extra]
    return config_from_args(Config, args, package="cyclic_walks")


def load_model(path: str):
    """A saved model folder (``run/model``, ``save_pretrained``) or a training checkpoint ``run/checkpoints/step_*``
    (its weights, with the model settings of the run's ``config.yaml``)."""
    from cyclic_walks.models import CyclicWalks

    folder = Path(path)
    if (folder / "config.json").is_file():
        return CyclicWalks.from_pretrained(folder)
    if (folder / "trainer_state.json").is_file() and (folder / "model.safetensors").is_file():
        return load_checkpoint_model(folder)
    raise FileNotFoundError(
        f"{folder}: neither a saved model (config.json) nor a training checkpoint (trainer_state.json + "
        "model.safetensors); pass a train run's model/ or checkpoints/step_* folder"
    )


def load_checkpoint_model(folder: Path):
    """The model of a ``checkpoints/step_*`` folder: settings from ``<run>/config.yaml``, weights from the state."""
    from safetensors.torch import load_file

    from cyclic_walks.train import build_model

    run_config = folder.parent.parent / "config.yaml"
    if not run_config.is_file():
        raise FileNotFoundError(f"{run_config}: the run's config is missing next to checkpoint {folder}")
    state = load_file(str(folder / "model.safetensors"))
    key = "encoder.slot_attention.slots_mu"
    if key not in state:
        raise ValueError(f"{folder / 'model.safetensors'}: not a cyclic-walks checkpoint (no {key})")
    from cyclic_walks.config import get_config

    model = build_model(get_config(str(run_config)), feature_dim=state[key].shape[-1])
    try:
        model.load_state_dict(state)
    except RuntimeError as err:  # missing/unexpected keys or shapes: one line naming the folder
        detail = " ".join(str(err).split())
        raise ValueError(f"{folder}: checkpoint does not match {run_config}: {detail[:300]}") from None
    return model


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

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(20, "Not a directory (--out must be a folder)", str(out))
    result = train(_config(args), out, resume=args.resume)
    print(json.dumps(result.losses, indent=2))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from cyclic_walks.evaluate import evaluate
    from cyclic_walks.models import build_backbone

    extra = [f"eval.protocol={args.protocol}"] if args.protocol else []
    extra += [f"eval.task={args.task}"] if args.task else []
    cfg = _config(args, extra)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
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
        device=device,
        dtype=dtype,
    )
    print(json.dumps(result, indent=2))
    if args.out:
        atomic_write_json(Path(args.out) / "metrics.json", result)


def visualize(
    model,
    backbone,
    dataset,
    path: Path,
    num_images: int = 6,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> Path:
    """Per image one row: the image, the slot-mask overlay, then each slot's upsampled A_fs map."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    dtype = torch.float32 if dtype is None else dtype

    from cyclic_walks.evaluate import iterate_predictions
    from visioncore.viz import overlay_segmentation, save_image_grid

    batch, pred = next(
        iterate_predictions(
            model, backbone, dataset, batch_size=num_images, seed=seed, device=device, dtype=dtype
        )
    )
    images = batch["image"]
    pred = {k: v.float().cpu() for k, v in pred.items()}
    maps = F.interpolate(pred["attention"], size=images.shape[-2:], mode="bilinear", align_corners=False)
    tiles = []
    for img, mask, slot_maps in zip(images, pred["masks"], maps):
        rgb = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        tiles += [rgb, overlay_segmentation(rgb, mask.numpy())]
        tiles += [
            np.repeat((m.numpy()[..., None] * 255).round().astype(np.uint8), 3, axis=2) for m in slot_maps
        ]
    with atomic_path(path) as tmp:
        save_image_grid(tmp, np.stack(tiles).transpose(0, 3, 1, 2), nrow=2 + maps.shape[1])
    return path


def cmd_visualize(args: argparse.Namespace) -> None:
    from cyclic_walks.models import build_backbone

    cfg = _config(args)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    model, backbone = load_model(args.model), build_backbone(cfg.backbone)
    check_model_fits(model, backbone, args.model)
    dataset = eval_dataset(cfg)
    print(visualize(model, backbone, dataset, Path(args.out), args.num_images, cfg.eval.seed, device, dtype))


def cmd_make_synthetic(args: argparse.Namespace) -> None:
    from cyclic_walks.data import write_synthetic_voc

    root = write_synthetic_voc(
        args.out, num_train=args.num_train, num_val=args.num_val, size=args.size, seed=args.seed
    )
    print(root)


def cmd_demo(args: argparse.Namespace) -> None:
    from cyclic_walks.demo import run_demo

    metrics = run_demo(Path(args.out), args.overrides, resolve_device(args.device))
    print(json.dumps(metrics, indent=2))


def cmd_repro(args: argparse.Namespace) -> None:
    from cyclic_walks.repro import METRIC_KEYS, ReproConfig, expectations, run_repro

    cfg = config_from_args(ReproConfig, args, package="cyclic_walks")
    metrics = run_repro(args.out, cfg)
    print(f"\n{'metric':<26}{'mean over seeds':>16}")
    for key in METRIC_KEYS:
        print(f"{key:<26}{metrics[key]:>16.3f}")
    for rule, ok in expectations(metrics).items():
        print(f"{'PASS' if ok else 'MISS'}  {rule}")


def cmd_bench(args: argparse.Namespace) -> None:
    from cyclic_walks.bench import run_bench

    print(json.dumps(run_bench(args.settings, args.steps, resolve_device(args.device)), indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cyclic-walks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train SACRW on a dataset (accelerate; resumable)")
    add_config_args(p, default="voc")
    p.add_argument("--out", required=True, help="run folder (checkpoints/, logs/, model/)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser(
        "evaluate", help="object discovery / foreground extraction / semantic segmentation scores"
    )
    add_config_args(p, default="voc")
    add_device_args(p)
    p.add_argument(
        "--model", required=True, help="a saved model (run/model) or run/checkpoints/step_* folder"
    )
    p.add_argument("--protocol", choices=("official", "clean"), help="default: the config's (official)")
    p.add_argument("--task", choices=("od", "fe", "ss"), help="default: the config's")
    p.add_argument("--out", help="folder for metrics.json")
    p.set_defaults(fn=cmd_evaluate)

    p = sub.add_parser("visualize", help="image, slot-mask overlay and per-slot maps as a PNG grid")
    add_config_args(p, default="voc")
    add_device_args(p)
    p.add_argument(
        "--model", required=True, help="a saved model (run/model) or run/checkpoints/step_* folder"
    )
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

    p = sub.add_parser(
        "demo", help="the paper's effect on an easy synthetic case: FG-ARI before/after (< 40 s)"
    )
    p.add_argument("--out", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu; the demo is CPU-sized)")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("repro", help="the issue's acceptance experiment (about 15 CPU minutes)")
    p.add_argument("--out", required=True)
    add_config_args(p, default=None)  # a YAML of ReproConfig keys; the defaults are the declared config
    p.set_defaults(fn=cmd_repro)

    p = sub.add_parser("bench", help="training step time and memory: SACRW vs the decoder baseline (JSON)")
    p.add_argument("--settings", nargs="+", default=["tiny", "paper"], choices=("tiny", "paper"))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.set_defaults(fn=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.fn, args)  # ConfigError, DatasetError, CheckpointError, BackboneError, ...


if __name__ == "__main__":
    sys.exit(main())
