"""``seq-gan``: train-tokenizer, encode, train-transformer, sample, reconstruct, visualize, evaluate, make-synthetic,
demo, repro, bench. Every verb runs through ``visioncore.console.run_command`` (bad input: one line, exit code 2)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from visioncore.config import add_config_args, config_from_args
from visioncore.console import run_command
from visioncore.devices import add_device_args, resolve_device, resolve_dtype


def _images_exist(paths: list[str]) -> list[Path]:
    """Checked before any model loads: a missing image is a one-line error naming it."""
    found = [Path(p) for p in paths]
    for p in found:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: image not found")
    return found


def _fresh_out(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: --out exists and is not a directory")
    return out


def cmd_train_tokenizer(args: argparse.Namespace) -> None:
    from seq_gan.config import TokenizerConfig
    from seq_gan.train import train_tokenizer

    cfg = config_from_args(TokenizerConfig, args, package="seq_gan")
    device = resolve_device(args.device)
    resolve_dtype(args.dtype)
    train_tokenizer(cfg, _fresh_out(args.out), phase=args.phase, init=args.init, resume=args.resume,
                    cpu=device.type == "cpu")  # fmt: skip


def cmd_encode(args: argparse.Namespace) -> None:
    import torch
    from torch.utils.data import DataLoader

    from seq_gan.data.folders import ImageFolderDataset
    from seq_gan.data.tokens import TokenCache, save_tokens
    from seq_gan.train import load_tokenizer

    tok = load_tokenizer(args.model)
    dataset = ImageFolderDataset(args.root, args.split, tok.resolution, args.labels)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    tok = tok.to(device=device, dtype=dtype).eval()
    grids, labels = [], []
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=args.batch_size):
            grids.append(tok.encode(x.to(device=device, dtype=dtype)).indices.to(torch.int16).cpu())
            labels.append(y)
    out = _fresh_out(args.out)
    path = out / f"{args.split}_tokens.safetensors"
    save_tokens(path, TokenCache(torch.cat(grids), torch.cat(labels), tok.token_space_hash(), tok.num_codes))
    print(json.dumps({"tokens": str(path), "count": len(dataset), "tokenizer_hash": tok.token_space_hash()}))


def cmd_train_transformer(args: argparse.Namespace) -> None:
    from seq_gan.config import TransformerConfig
    from seq_gan.train import train_transformer

    if args.kind is not None:
        args.overrides = [*args.overrides, f"kind={args.kind}"]
    cfg = config_from_args(TransformerConfig, args, package="seq_gan")
    device = resolve_device(args.device)
    resolve_dtype(args.dtype)
    train_transformer(cfg, args.tokens, args.tokenizer, _fresh_out(args.out), resume=args.resume,
                      cpu=device.type == "cpu")  # fmt: skip


def cmd_sample(args: argparse.Namespace) -> None:
    from seq_gan.sampling import sample_images

    summary = sample_images(args.model, args.tokenizer, _fresh_out(args.out), labels=args.labels, num=args.num,
                            seed=args.seed, steps=args.steps, temperature=args.temperature,
                            device=resolve_device(args.device), dtype=resolve_dtype(args.dtype))  # fmt: skip
    print(json.dumps(summary))


def cmd_reconstruct(args: argparse.Namespace) -> None:
    from seq_gan.sampling import reconstruct_images

    images = _images_exist(args.images)
    summary = reconstruct_images(args.model, images, _fresh_out(args.out), device=resolve_device(args.device),
                                 dtype=resolve_dtype(args.dtype))  # fmt: skip
    print(json.dumps(summary))


def cmd_visualize(args: argparse.Namespace) -> None:
    from seq_gan.sampling import visualize_teacher_forced

    images = _images_exist(args.images)
    summary = visualize_teacher_forced(args.model, args.tokenizer, images, _fresh_out(args.out), label=args.label,
                                       device=resolve_device(args.device), dtype=resolve_dtype(args.dtype))  # fmt: skip
    print(json.dumps(summary))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from seq_gan.sampling import evaluate_tokenizer

    metrics = evaluate_tokenizer(args.model, args.root, args.split, _fresh_out(args.out), labels=args.labels,
                                 inception=args.inception, ref_stats=args.ref_stats, samples=args.samples,
                                 limit=args.limit, device=resolve_device(args.device),
                                 dtype=resolve_dtype(args.dtype))  # fmt: skip
    print(json.dumps(metrics, indent=2))


def cmd_make_synthetic(args: argparse.Namespace) -> None:
    from seq_gan.data.synthetic import make_synthetic

    root = make_synthetic(args.out, canvas=args.canvas, digit_size=args.digit_size, num_train=args.num_train,
                          seed=args.seed, limit=args.limit)  # fmt: skip
    print(f"wrote {root} (train/, val/, nuisance.csv)")


def cmd_demo(args: argparse.Namespace) -> None:
    from seq_gan.demo import run_demo

    run_demo(_fresh_out(args.out), device=resolve_device(args.device))


def cmd_repro(args: argparse.Namespace) -> None:
    from seq_gan.config import ReproConfig
    from seq_gan.repro import run_repro

    cfg = config_from_args(ReproConfig, args, package="seq_gan")
    run_repro(cfg, _fresh_out(args.out))


def cmd_bench(args: argparse.Namespace) -> None:
    from seq_gan.bench import run_bench

    print(json.dumps(run_bench(paper=not args.tiny_only, device=resolve_device(args.device),
                               dtype=resolve_dtype(args.dtype)), indent=2))  # fmt: skip


def _labels(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--labels expects comma-separated class ids, got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seq-gan", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "train-tokenizer", help="phase 1 (encoder, codebook, decoder) or phase 2 (enhanced decoder)"
    )
    p.add_argument("--phase", type=int, choices=[1, 2], default=1)
    p.add_argument("--init", help="phase 2: the phase-1 output folder")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    add_config_args(p)
    add_device_args(p)
    p.set_defaults(fn=cmd_train_tokenizer)

    p = sub.add_parser("encode", help="cache int16 token grids + labels of an image folder split")
    p.add_argument("--model", required=True, help="tokenizer folder")
    p.add_argument("--root", required=True)
    p.add_argument("--split", default="train")
    p.add_argument("--labels", default="auto", choices=["auto", "folders", "none"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", required=True)
    add_device_args(p)
    p.set_defaults(fn=cmd_encode)

    p = sub.add_parser("train-transformer", help="MaskGIT or AR on a token cache")
    p.add_argument("--kind", choices=["maskgit", "ar"])
    p.add_argument("--tokens", required=True, help="token cache written by `encode`")
    p.add_argument("--tokenizer", required=True, help="the tokenizer that wrote the tokens (hash checked)")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true")
    add_config_args(p, default="maskgit-tiny")
    add_device_args(p)
    p.set_defaults(fn=cmd_train_transformer)

    p = sub.add_parser("sample", help="generate token grids with a transformer and decode them")
    p.add_argument("--model", required=True, help="transformer folder (train-transformer output)")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--labels", type=_labels, help="class ids, e.g. 0,1,2 (default: unconditional)")
    p.add_argument("--num", type=int, default=8, help="unconditional: number of samples")
    p.add_argument("--steps", type=int, help="MaskGIT rounds (default: the model's sampler config)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    add_device_args(p)
    p.set_defaults(fn=cmd_sample)

    p = sub.add_parser("reconstruct", help="encode and decode images")
    p.add_argument("--model", required=True)
    p.add_argument("images", nargs="+")
    p.add_argument("--out", required=True)
    add_device_args(p)
    p.set_defaults(fn=cmd_reconstruct)

    p = sub.add_parser(
        "visualize", help="Sec. 3.2: teacher-forced AR top-1 tokens decoded beside the image's own"
    )
    p.add_argument("--model", required=True, help="AR transformer folder")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("images", nargs="+")
    p.add_argument("--label", type=int, help="class id for a class-conditional model")
    p.add_argument("--out", required=True)
    add_device_args(p)
    p.set_defaults(fn=cmd_visualize)

    p = sub.add_parser("evaluate", help="usage, perplexity, L1; rFID / gFID / IS with a local Inception file")
    p.add_argument("--model", required=True, help="tokenizer folder")
    p.add_argument("--root", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--labels", default="auto", choices=["auto", "folders", "none"])
    p.add_argument("--inception", help="torchvision inception_v3 state dict (local file)")
    p.add_argument("--ref-stats", help=".npz with mu, sigma of the reference set (gFID)")
    p.add_argument("--samples", help="folder of sample PNGs (gFID, IS)")
    p.add_argument("--limit", type=int, help="evaluate the first N images only")
    p.add_argument("--out", required=True)
    add_device_args(p)
    p.set_defaults(fn=cmd_evaluate)

    p = sub.add_parser(
        "make-synthetic", help="coloured digits on nuisance backgrounds (ImageFolder + nuisance.csv)"
    )
    p.add_argument("--out", required=True)
    p.add_argument("--canvas", type=int, default=16)
    p.add_argument("--digit-size", type=int, default=12)
    p.add_argument("--num-train", type=int, default=1500)
    p.add_argument("--limit", type=int, help="write only the first N images")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_make_synthetic)

    p = sub.add_parser("demo", help="<= 40 s on synthetic digits; writes OUT/metrics.json")
    p.add_argument("--out", required=True)
    add_device_args(p)
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("repro", help="the acceptance experiment (issue 18); writes OUT/metrics.json")
    p.add_argument("--out", required=True)
    add_config_args(p, default="repro")
    p.set_defaults(fn=cmd_repro)

    p = sub.add_parser("bench", help="step time, peak memory, parameter counts, sampling time (JSON)")
    p.add_argument("--tiny-only", action="store_true", help="skip the paper-size (256 px) measurements")
    add_device_args(p)
    p.set_defaults(fn=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.fn, args)


if __name__ == "__main__":
    sys.exit(main())
