"""``ptp-vlp``: make-synthetic, tag, pretrain, finetune, evaluate, caption, ground, demo, repro, bench."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from visioncore.config import add_config_args
from visioncore.console import run_command
from visioncore.devices import add_device_args

PACKAGE = "ptp_vlp"


def _config(args: argparse.Namespace, extra: list[str] | None = None):
    from ptp_vlp.config import Config
    from visioncore.config import load_config

    return load_config(Config, args.config, [*(extra or []), *args.overrides], package=PACKAGE)


def _precision(args: argparse.Namespace) -> tuple[bool, str]:
    """(accelerate cpu flag, mixed precision) of a training verb's ``--device`` / ``--dtype``."""
    import torch

    from visioncore.devices import resolve_device

    device = resolve_device(args.device)
    # accelerate's cpu=True forces a single CPU process: only ask for it to keep a GPU machine on the CPU
    cpu = device.type == "cpu" and torch.cuda.is_available()
    return cpu, {"fp32": "no", "fp16": "fp16", "bf16": "bf16"}[args.dtype]


def _refuse_existing(out: Path, resume: bool) -> None:
    if out.exists() and any(out.iterdir()) and not resume:
        raise FileExistsError(f"--out {out} is not empty (use --resume to continue a run there)")


def cmd_make_synthetic(args: argparse.Namespace) -> None:
    from ptp_vlp.data.synthetic import SyntheticSpec, write_synthetic

    spec = SyntheticSpec(
        n_train=args.n_train,
        n_test=args.n_test,
        image_size=args.image_size,
        position_rate=args.position_rate,
        seed=args.seed,
    )
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--out {out} is not empty")
    root = write_synthetic(out, spec)
    print(
        f"wrote ShapesGrid to {root}: corpus.tsv, detections.json, annotation/, tokenizer/ "
        f"(--set data.corpus={root}/corpus.tsv --set data.image_root={root} --set data.tokenizer={root}/tokenizer)"
    )


def cmd_tag(args: argparse.Namespace) -> None:
    from ptp_vlp.data.corpus import format_row, tag_corpus
    from visioncore.files import atomic_write_text

    rows, missing = tag_corpus(args.captions, args.detections, min_conf=args.min_conf)
    atomic_write_text(args.out, "".join(format_row(r) + "\n" for r in rows))
    with_objects = sum(1 for r in rows if r.names)
    print(
        f"wrote {len(rows)} rows to {args.out} ({with_objects} with objects; {missing} images had no detections)"
    )


def _init_overrides(args: argparse.Namespace) -> list[str]:
    extra = []
    for path in getattr(args, "init_from", None) or []:
        extra.append(f"init.bert={path}" if Path(path).is_dir() else f"init.vit={path}")
    if getattr(args, "checkpoint", None):
        extra.append(f"init.checkpoint={args.checkpoint}")
    return extra


def cmd_pretrain(args: argparse.Namespace) -> None:
    from ptp_vlp.train import check_paths

    cfg = _config(args, _init_overrides(args))
    cpu, precision = _precision(args)
    cfg.train.mixed_precision = precision if precision != "no" else cfg.train.mixed_precision
    check_paths(cfg, pretraining=True)
    out = Path(args.out)
    _refuse_existing(out, args.resume)
    from ptp_vlp.train import pretrain

    summary = pretrain(cfg, out, resume=args.resume, cpu=cpu)
    last = {k: round(v[-1], 4) for k, v in summary["losses"].items()}
    print(f"pretrained {summary['steps']} steps -> {out / 'model'}; last losses {last}; "
          f"prompts truncated: {summary['prompt_truncated']}")  # fmt: skip


def cmd_finetune(args: argparse.Namespace) -> None:
    from ptp_vlp.train import check_paths

    cfg = _config(args, [f"finetune.task={args.task}", *_init_overrides(args)])
    cpu, precision = _precision(args)
    cfg.train.mixed_precision = precision if precision != "no" else cfg.train.mixed_precision
    check_paths(cfg, pretraining=False)
    out = Path(args.out)
    _refuse_existing(out, args.resume)
    from ptp_vlp.train import finetune

    summary = finetune(cfg, out, resume=args.resume, cpu=cpu)
    last = {k: round(v[-1], 4) for k, v in summary["losses"].items()}
    print(
        f"fine-tuned {cfg.finetune.task} for {summary['steps']} steps -> {out / 'model'}; last losses {last}"
    )


def _load_model(cfg, checkpoint: str, kind: str, device, dtype):
    """A model folder written by this package (its ``config.json`` gives the shape) or an official BLIP/PTP
    ``.pth`` (shape from the config); keys are checked either way (``load_blip_checkpoint``)."""
    from ptp_vlp.models.blip import BLIPCaption, BLIPConfig, BLIPPretrain, BLIPRetrieval
    from ptp_vlp.tokenizer import load_tokenizer
    from ptp_vlp.train import blip_config
    from ptp_vlp.weights import load_blip_checkpoint

    if not cfg.data.tokenizer:
        raise ValueError("data.tokenizer is not set (--set data.tokenizer=FOLDER with vocab.txt)")
    tok = load_tokenizer(cfg.data.tokenizer)
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"--checkpoint {path} does not exist")
    cls = {"pretrain": BLIPPretrain, "retrieval": BLIPRetrieval, "caption": BLIPCaption}[kind]
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"--checkpoint {path}: a model folder needs config.json and model.safetensors"
            )
        try:
            shape = BLIPConfig(**json.loads((path / "config.json").read_text()))
        except (TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"--checkpoint {path}/config.json: not a BLIP config ({err})") from None
        model, weights = cls(shape), path / "model.safetensors"
    else:
        model, weights = cls(blip_config(cfg, tok)), path
    if model.config.vocab_size != len(tok):
        raise ValueError(
            f"--checkpoint {path}: vocabulary of {model.config.vocab_size} ids, tokenizer has {len(tok)}"
        )
    load_blip_checkpoint(model, weights)
    return model.to(device=device, dtype=dtype).eval(), tok


def cmd_evaluate(args: argparse.Namespace) -> None:
    import torch

    from ptp_vlp.data.datasets import read_karpathy
    from ptp_vlp.evaluate import evaluate_caption, evaluate_retrieval
    from ptp_vlp.train import TASKS
    from visioncore.devices import resolve_device, resolve_dtype
    from visioncore.files import atomic_write_json

    cfg = _config(args, [f"finetune.task={args.task}"])
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    ann = Path(cfg.data.annotation) / f"{TASKS[args.task]}_{args.split}.json"
    entries = read_karpathy(ann)
    kind = "caption" if args.task.startswith("caption") else "retrieval"
    model, tok = _load_model(cfg, args.checkpoint, kind, device, dtype)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        if kind == "retrieval":
            metrics = evaluate_retrieval(
                model, tok, entries, cfg.data.image_root, image_size=cfg.model.image_size,
                k_test=cfg.finetune.k_test, max_tokens=cfg.data.max_tokens,
            )  # fmt: skip
            captions = None
        else:
            metrics, captions = evaluate_caption(
                model, tok, entries, cfg.data.image_root, image_size=cfg.model.image_size,
                prompt=cfg.finetune.prompt, max_length=cfg.finetune.max_length, min_length=cfg.finetune.min_length,
            )  # fmt: skip
    result = {"task": args.task, "split": args.split, "checkpoint": str(args.checkpoint), **metrics}
    if args.task == "retrieval_flickr":
        print(
            f"Flickr30K with checkpoint {args.checkpoint} (BLIP's 'zero-shot Flickr' is the COCO-finetuned model)"
        )
    out = Path(args.out)
    atomic_write_json(out / "metrics.json", result)
    if captions is not None:
        atomic_write_json(out / "captions.json", captions)
    print(json.dumps(result, indent=1))


def cmd_caption(args: argparse.Namespace) -> None:
    import torch

    from ptp_vlp.evaluate import load_images
    from visioncore.devices import resolve_device, resolve_dtype

    cfg = _config(args)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    images = load_images(args.images, cfg.model.image_size)
    model, tok = _load_model(cfg, args.checkpoint, "caption", device, dtype)
    prompt_ids = tok(cfg.finetune.prompt.strip())["input_ids"][:-1]
    out = model.generate(
        images.to(device, dtype), torch.tensor(prompt_ids),
        max_length=cfg.finetune.max_length, min_length=cfg.finetune.min_length,
    )  # fmt: skip
    for path, row in zip(args.images, out[:, len(prompt_ids) :].tolist()):
        print(f"{path}\t{tok.decode(row, skip_special_tokens=True).strip()}")


def cmd_ground(args: argparse.Namespace) -> None:
    from ptp_vlp.evaluate import block_probabilities, load_images
    from visioncore.devices import resolve_device, resolve_dtype
    from visioncore.files import atomic_write_json

    cfg = _config(args)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    image = load_images([args.image], cfg.model.image_size)[0].to(device, dtype)
    model, tok = _load_model(cfg, args.checkpoint, "pretrain", device, dtype)
    probs = block_probabilities(
        model, image, tok, args.name, caption=args.caption, grid=cfg.ptp.grid, max_tokens=cfg.data.max_tokens
    ).tolist()
    g = cfg.ptp.grid
    best = max(range(len(probs)), key=probs.__getitem__)
    print(
        f"'{args.name}' in {args.image}: block {best} (row {best // g}, col {best % g}), p={probs[best]:.3f}"
    )
    for r in range(g):
        print("  " + "  ".join(f"{p:.3f}" for p in probs[r * g : (r + 1) * g]))
    if args.out:
        atomic_write_json(
            Path(args.out) / "ground.json", {"name": args.name, "block": best, "probabilities": probs}
        )


def cmd_demo(args: argparse.Namespace) -> None:
    from ptp_vlp.demo import run_demo

    print(json.dumps(run_demo(Path(args.out)), indent=1))


def cmd_repro(args: argparse.Namespace) -> None:
    from ptp_vlp.repro import run_repro

    run_repro(_config(args), args.out)


def cmd_bench(args: argparse.Namespace) -> None:
    from ptp_vlp.bench import run_bench
    from visioncore.devices import resolve_device, resolve_dtype

    result = run_bench(resolve_device(args.device), resolve_dtype(args.dtype), quick=args.quick)
    print(json.dumps(result, indent=1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ptp-vlp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "make-synthetic", help="ShapesGrid data in the real layouts (JPEGs, corpus TSV, JSONs)"
    )
    p.add_argument("--out", required=True)
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-test", type=int, default=900)
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--position-rate", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_make_synthetic)

    p = sub.add_parser("tag", help="corpus TSV from BLIP captions JSON and detections (VinVL TSV or JSON)")
    p.add_argument("--captions", required=True)
    p.add_argument("--detections", required=True)
    p.add_argument("--out", required=True, help="corpus TSV to write")
    p.add_argument("--min-conf", type=float, default=0.0)
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("pretrain", help="BLIP pretraining with PTP prompts (ptp.enabled=false: plain BLIP)")
    add_config_args(p, default="pretrain_4m")
    add_device_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument(
        "--init-from", nargs="+", metavar="PATH", help="DeiT/ViT weights file and/or bert-base-uncased folder"
    )
    p.add_argument("--checkpoint", help="start from an official BLIP/PTP .pth or a model folder")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("finetune", help="retrieval or captioning fine-tuning (no prompts)")
    p.add_argument("--task", required=True, choices=["retrieval_coco", "retrieval_flickr", "caption_coco"])
    add_config_args(p, default="retrieval_coco")
    add_device_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--checkpoint", help="official BLIP/PTP .pth or a model folder of this package")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser(
        "evaluate", help="retrieval TR/IR@1/5/10 or captioning BLEU-4/CIDEr on a Karpathy split"
    )
    p.add_argument("--task", required=True, choices=["retrieval_coco", "retrieval_flickr", "caption_coco"])
    add_config_args(p, default="retrieval_coco")
    add_device_args(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("caption", help="caption images")
    p.add_argument("images", nargs="+")
    add_config_args(p, default="caption_coco")
    add_device_args(p)
    p.add_argument("--checkpoint", required=True)
    p.set_defaults(func=cmd_caption)

    p = sub.add_parser("ground", help="where is an object? block probabilities from the decoder")
    p.add_argument("image")
    p.add_argument("--name", required=True, help='object name, e.g. "red circle"')
    p.add_argument("--caption", default="", help="optional caption placed before the prompt")
    add_config_args(p, default="pretrain_4m")
    add_device_args(p)
    p.add_argument("--checkpoint", required=True, help="a pretraining model folder or official .pth")
    p.add_argument("--out", help="folder for ground.json")
    p.set_defaults(func=cmd_ground)

    p = sub.add_parser("demo", help="<= 40 s smoke check on synthetic data; writes DIR/metrics.json")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("repro", help="the acceptance experiment (3 seeds; ptp / none / shuffled / ceiling)")
    add_config_args(p, default="repro")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_repro)

    p = sub.add_parser("bench", help="step time and peak memory with and without prompts (JSON)")
    add_device_args(p)
    p.add_argument("--quick", action="store_true", help="tiny model only")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
