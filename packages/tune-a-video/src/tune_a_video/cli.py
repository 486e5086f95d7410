"""Command line: ``tune-a-video {train,generate,invert,evaluate,make-tiny-sd,make-synthetic,demo,repro,bench}``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from visioncore.config import add_config_args
from visioncore.console import run_command
from visioncore.devices import add_device_args


def _train(args: argparse.Namespace) -> None:
    from visioncore.config import config_from_args

    from .config import PACKAGE, TrainConfig
    from .train import train

    if args.pretrained:
        args.overrides.append(f"pretrained_model_path={args.pretrained}")
    if args.out:
        args.overrides.append(f"output_dir={args.out}")
    cfg = config_from_args(TrainConfig, args, package=PACKAGE)
    result = train(cfg, resume=args.resume)
    print(
        json.dumps(
            {"output_dir": cfg.output_dir, "last_loss": result["losses"][-1] if result["losses"] else None}
        )
    )


def _load_pipeline(args: argparse.Namespace):
    """The tuned pipeline folder on ``--device`` in ``--dtype``."""
    from visioncore.devices import resolve_device, resolve_dtype

    from .pipeline import TuneAVideoPipeline

    path = Path(args.model)
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"--model {path}: no model_index.json (expected a folder written by `train`)")
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    pipe = TuneAVideoPipeline.from_pretrained(path).to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe, device


def _generate(args: argparse.Namespace) -> None:
    import torch

    from visioncore.files import atomic_path
    from visioncore.viz import save_video

    out = Path(args.out)
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise ValueError(f"--out {out}: expected a .gif or .mp4 file")
    latents = None
    if args.inverted_latents:
        file = Path(args.inverted_latents)
        if not file.is_file():
            raise FileNotFoundError(f"--inverted-latents {file} not found")
        latents = torch.load(file, map_location="cpu", weights_only=True)
        if not isinstance(latents, torch.Tensor) or latents.ndim != 5:
            raise ValueError(f"--inverted-latents {file}: expected a (b, c, f, h, w) tensor")
    pipe, device = _load_pipeline(args)
    if latents is not None:
        args.video_length = latents.shape[2]
        scale = pipe.vae_scale_factor
        args.height, args.width = latents.shape[3] * scale, latents.shape[4] * scale
    video = pipe(
        args.prompt, video_length=args.video_length, height=args.height, width=args.width,
        num_inference_steps=args.steps, guidance_scale=args.guidance_scale, latents=latents,
        generator=torch.Generator(device=device).manual_seed(args.seed),
    ).videos  # fmt: skip
    with atomic_path(out) as tmp:
        save_video(tmp, (video[0].float().permute(1, 0, 2, 3) * 255).round().byte().cpu(), fps=8)
    print(json.dumps({"video": str(out), "shape": list(video.shape)}))


def _invert(args: argparse.Namespace) -> None:
    import torch

    from visioncore.files import atomic_path

    from .data import load_training_video

    video = load_training_video(args.video, args.n_frames, args.width, args.height, args.start, args.rate)
    pipe, device = _load_pipeline(args)
    latents = pipe.encode_video(video.permute(1, 0, 2, 3)[None].to(device, pipe.unet.dtype))
    inverted = pipe.invert(latents, num_inference_steps=args.steps)
    with atomic_path(args.out) as tmp:
        torch.save(inverted.float().cpu(), tmp)
    print(json.dumps({"inverted_latents": str(args.out), "shape": list(inverted.shape)}))


def _evaluate(args: argparse.Namespace) -> None:
    from visioncore.devices import resolve_device, resolve_dtype

    from .evaluate import evaluate_video_file

    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    print(json.dumps(evaluate_video_file(args.video, args.prompt, args.clip, device, dtype), indent=2))


def _make_tiny_sd(args: argparse.Namespace) -> None:
    if args.pretrain:  # the repro's pretrained text-to-image model (coloured shapes), as an SD folder
        from visioncore.config import config_from_args

        from .repro import ReproConfig, export_pretrained

        cfg = config_from_args(ReproConfig, args, package="tune_a_video")
        print(export_pretrained(cfg, Path(args.out)))
        return
    if args.overrides or args.config != "repro":
        raise ValueError("make-tiny-sd: --config/--set choose the pretraining settings; they need --pretrain")
    from .tiny_sd import make_tiny_sd

    print(make_tiny_sd(args.out, seed=args.seed))


def _make_synthetic(args: argparse.Namespace) -> None:
    from .data import make_synthetic

    print(make_synthetic(args.out, num_frames=args.frames, size=args.size))


def _demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(Path(args.out))


def _repro(args: argparse.Namespace) -> None:
    from .repro import run_repro

    run_repro(Path(args.out), args.config, list(args.overrides))


def _bench(args: argparse.Namespace) -> None:
    from visioncore.devices import resolve_device, resolve_dtype

    from .bench import run_bench

    result = run_bench(
        sd_frames=args.sd_frames, sd_size=args.sd_size, steps=args.steps,
        device=resolve_device(args.device), dtype=resolve_dtype(args.dtype),
    )  # fmt: skip
    print(json.dumps(result, indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tune-a-video", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="one-shot tune an inflated SD UNet on one video")
    add_config_args(p, default="man-skiing")
    p.add_argument("--pretrained", help="local Stable Diffusion folder (diffusers layout)")
    p.add_argument("--out", help="output folder (overrides output_dir)")
    p.add_argument(
        "--resume", action="store_true", help="resume from the latest checkpoint in the output folder"
    )
    p.set_defaults(fn=_train)

    p = sub.add_parser("generate", help="sample a video from a tuned pipeline folder")
    p.add_argument("--model", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument(
        "--inverted-latents", help="ddim_latent-*.pt from train/invert (keeps the source's structure)"
    )
    p.add_argument("--video-length", type=int, default=24)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance-scale", type=float, default=12.5)
    p.add_argument("--seed", type=int, default=33)
    p.add_argument("--out", default="sample.gif", help=".gif or .mp4")
    add_device_args(p)
    p.set_defaults(fn=_generate)

    p = sub.add_parser("invert", help="DDIM-invert a video with a tuned pipeline (empty prompt, no guidance)")
    p.add_argument("--model", required=True)
    p.add_argument("--video", required=True)
    p.add_argument("--n-frames", type=int, default=24)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--rate", type=int, default=2)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--out", default="ddim_latent.pt")
    add_device_args(p)
    p.set_defaults(fn=_invert)

    p = sub.add_parser("evaluate", help="CLIP frame consistency and text alignment of a video")
    p.add_argument("--video", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument(
        "--clip", required=True, help="local transformers CLIPModel folder (e.g. clip-vit-large-patch14)"
    )
    add_device_args(p)
    p.set_defaults(fn=_evaluate)

    p = sub.add_parser(
        "make-tiny-sd",
        help="write a tiny random Stable Diffusion folder (--pretrain: the repro's trained one)",
    )
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0, help="initialisation seed of the random folder")
    p.add_argument(
        "--pretrain", action="store_true",
        help="pretrain it on coloured shapes as the repro does (settings: --config, default repro, and --set)",
    )  # fmt: skip
    add_config_args(p, default="repro")
    p.set_defaults(fn=_make_tiny_sd)

    p = sub.add_parser("make-synthetic", help="write a synthetic source video + official-style config")
    p.add_argument("--out", required=True)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", type=int, default=64)
    p.set_defaults(fn=_make_synthetic)

    p = sub.add_parser(
        "demo", help="<= 40 s smoke check of the whole path on synthetic data with the tiny SD"
    )
    p.add_argument("--out", required=True)
    p.set_defaults(fn=_demo)

    p = sub.add_parser("repro", help="the acceptance experiment (CPU scale); writes metrics.json")
    p.add_argument("--out", required=True)
    add_config_args(p, default="repro")
    p.set_defaults(fn=_repro)

    p = sub.add_parser("bench", help="tuning step time and peak memory (JSON)")
    p.add_argument(
        "--sd-frames", type=int, default=None, help="frames at SD-v1 shapes (default 1 on CPU, 24 on GPU)"
    )
    p.add_argument("--sd-size", type=int, default=512)
    p.add_argument("--steps", type=int, default=2)
    add_device_args(p)
    p.set_defaults(fn=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.fn, args)  # ConfigError, CheckpointLayoutError, VideoTooShortError, OSError, ...


if __name__ == "__main__":
    sys.exit(main())
