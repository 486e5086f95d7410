"""``pv3d`` command line: make-synthetic, train, generate, evaluate, convert, demo, repro, bench."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from visioncore.config import add_config_args
from visioncore.console import run_command
from visioncore.devices import add_device_args


def _cfg(args: argparse.Namespace):
    from pv3d.config import get_config

    return get_config(args.config, args.overrides)


def _device(args: argparse.Namespace):
    from visioncore.devices import resolve_device, resolve_dtype

    return resolve_device(args.device), resolve_dtype(args.dtype)


def _fresh_out(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    return out


def _load_generator(path: str, device, dtype):
    from pv3d.models import TriPlaneGenerator

    folder = Path(path)
    if (folder / "model" / "config.json").is_file():  # a train run's folder
        folder = folder / "model"
    if not folder.exists():
        raise FileNotFoundError(f"--weights {folder}: no such folder")
    return TriPlaneGenerator.from_pretrained(folder).to(device=device, dtype=dtype)


def cmd_make_synthetic(args: argparse.Namespace) -> None:
    from pv3d.data.synthetic import make_toy_heads

    make_toy_heads(_fresh_out(args.out), args.clips, args.frames, args.resolution, args.seed)
    print(f"wrote {args.clips} toy-head clips in the VoxCeleb layout to {args.out}")


def cmd_train(args: argparse.Namespace) -> None:
    from pv3d.train import train

    device, dtype = _device(args)
    precision = {"float32": "no", "float16": "fp16", "bfloat16": "bf16"}[str(dtype).removeprefix("torch.")]
    logs = train(
        _cfg(args), _fresh_out(args.out), resume=args.resume, device=device, mixed_precision=precision
    )
    print(f"saved the EMA generator to {args.out}/model; last losses {json.dumps(logs)}")


def _camera_path(args: argparse.Namespace, frames: int):
    import torch

    from pv3d.cameras import pose_vector
    from pv3d.data.voxceleb import _read_cameras

    if args.trajectory:
        path = Path(args.trajectory)
        if not path.is_file():
            raise FileNotFoundError(f"--trajectory {path}: camera file not found")
        cams = _read_cameras(path)
        if len(cams) < frames:
            raise ValueError(f"--trajectory {path}: {len(cams)} cameras, fewer than --frames {frames}")
        return cams[:frames]
    t = torch.linspace(0, 1, frames)
    return pose_vector(args.yaw * torch.sin(2 * torch.pi * t), 0.0)


def cmd_generate(args: argparse.Namespace) -> None:
    import torch

    from pv3d.cameras import canonical_camera
    from visioncore.files import atomic_path
    from visioncore.video import save_gif, write_video

    device, dtype = _device(args)
    g = _load_generator(args.weights, device, dtype).eval()
    cams = _camera_path(args, args.frames).to(device=device, dtype=dtype)
    out = _fresh_out(args.out)
    gen = torch.Generator().manual_seed(args.seed)
    t = torch.linspace(0, 1, args.frames, device=device, dtype=dtype)[None]
    for i in range(args.num):
        z = torch.randn(1, g.config.z_dim, generator=gen).to(device=device, dtype=dtype)
        zm = torch.randn(1, g.config.z_motion_dim, generator=gen).to(device=device, dtype=dtype)
        with torch.no_grad():
            res = g(
                z,
                zm,
                t,
                canonical_camera(1, device).to(dtype),
                c_render=cams[None],
                truncation_psi=args.psi,
                noise_mode="const",
            )
        frames = ((res["image"][0].float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu()
        if args.depth:
            depth = res["image_depth"][0].float()
            d = ((g.config.ray_end - depth) / (g.config.ray_end - g.config.ray_start)).clamp(0, 1)
            d = torch.nn.functional.interpolate(d * res["weights_sum"][0].float(), size=frames.shape[-1])
            frames = torch.cat([frames, (d * 255).round().byte().cpu().expand(-1, 3, -1, -1)], dim=-1)
        suffix = ".gif" if args.format == "gif" else ".mp4"
        with atomic_path(out / f"video_{i:04d}{suffix}") as tmp:
            if args.format == "gif":
                save_gif(tmp, frames, fps=args.fps)
            else:
                write_video(tmp, frames, fps=args.fps)
    print(f"wrote {args.num} video(s) to {out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    import torch

    from pv3d.data import VoxCelebDataset
    from pv3d.evaluate import fvd, load_arcface, load_feature_net, multiview_identity
    from pv3d.models.i3d import I3D_FRAMES_MIN
    from pv3d.repro import _generated_clips, multiview_metrics, temporal_metrics
    from visioncore.files import atomic_write_json

    device, dtype = _device(args)
    if dtype != torch.float32:
        raise ValueError("evaluate runs in fp32 (--dtype fp32)")
    cfg = _cfg(args)
    if args.feature_weights and cfg.data.num_frames < I3D_FRAMES_MIN:
        raise ValueError(
            f"data.num_frames {cfg.data.num_frames}: I3D needs clips of >= {I3D_FRAMES_MIN} frames"
        )
    # networks first: a missing or mismatched file is refused before any rendering
    net = load_feature_net(args.feature_weights).to(device)
    arcface = load_arcface(args.id_weights).to(device) if args.id_weights else None
    g = _load_generator(args.weights, torch.device("cpu"), torch.float32).eval()
    ds = VoxCelebDataset(
        args.data, cfg.data.list_name, cfg.data.num_frames, g.config.image_resolution, hflip=False
    )
    n = min(args.clips, len(ds))
    real = torch.stack([ds.clip(i) for i in range(n)])
    metrics = {
        "fvd": fvd(net, _generated_clips(g, ds, n, args.seed), real, batch=8),
        "fvd_network": "i3d_400" if args.feature_weights else "seeded_standin",
        "clips": n,
    }
    if arcface is not None:
        metrics["id"] = multiview_identity(g, arcface, args.samples, args.seed)
    metrics.update(temporal_metrics(g, args.samples, args.seed))
    mv = multiview_metrics(g, g, args.samples, args.seed)
    metrics.update({k: v for k, v in mv.items() if not k.endswith("image2d")})
    atomic_write_json(_fresh_out(args.out) / "metrics.json", metrics)
    print(json.dumps(metrics, indent=2))


def cmd_convert(args: argparse.Namespace) -> None:
    from pv3d.convert import convert_checkpoint
    from visioncore.files import atomic_write_json

    report = convert_checkpoint(args.checkpoint, args.out, _cfg(args))
    atomic_write_json(Path(args.out) / "convert_report.json", report)
    print(f"converted {args.checkpoint} -> {args.out} ({', '.join(report['networks'])})")


def cmd_demo(args: argparse.Namespace) -> None:
    from pv3d.demo import demo

    print(json.dumps(demo(_fresh_out(args.out)), indent=2))


def cmd_repro(args: argparse.Namespace) -> None:
    from pv3d.repro import format_table, headline, run_repro

    result = run_repro(_cfg(args), _fresh_out(args.out))
    print(format_table(result))
    print(headline(result))


def cmd_bench(args: argparse.Namespace) -> None:
    from pv3d.bench import bench

    device, _ = _device(args)
    print(json.dumps(bench(args.config, args.overrides, device, steps=args.steps), indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pv3d", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-synthetic", help="write toy heads in the VoxCeleb layout")
    p.add_argument("--out", required=True)
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_make_synthetic)

    p = sub.add_parser("train", help="train PV3D on a VoxCeleb-layout folder (data.root)")
    add_config_args(p, default="voxceleb")
    add_device_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("generate", help="render videos (MP4/GIF) along a camera path or a real trajectory")
    add_device_args(p)
    p.add_argument("--weights", required=True, help="a saved generator folder (or a train run's --out)")
    p.add_argument("--out", required=True)
    p.add_argument("--num", type=int, default=4)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--fps", type=float, default=25)
    p.add_argument(
        "--yaw", type=float, default=0.35, help="amplitude of the default sinusoidal yaw path (rad)"
    )
    p.add_argument("--trajectory", help="a smoothed_camera2world JSON to render along instead")
    p.add_argument("--psi", type=float, default=1.0, help="truncation psi")
    p.add_argument("--depth", action="store_true", help="append the rendered depth next to each frame")
    p.add_argument("--format", choices=["mp4", "gif"], default="mp4")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_generate)

    p = sub.add_parser(
        "evaluate",
        help="FVD, multi-view identity, temporal consistency, warping error and Chamfer of a generator",
    )
    add_config_args(p, default="voxceleb")
    add_device_args(p)
    p.add_argument("--weights", required=True, help="a saved generator folder (or a train run's --out)")
    p.add_argument("--data", required=True, help="a VoxCeleb-layout folder (real clips)")
    p.add_argument(
        "--feature-weights",
        help="I3D Kinetics-400 weights for FVD (i3d_pretrained_400.pt or .safetensors); "
        "default: a seeded I3D-interface stand-in (toy scale only)",
    )
    p.add_argument(
        "--id-weights",
        help="ArcFace IR-SE50 weights (model_ir_se50.pth or .safetensors): adds the multi-view identity 'id'",
    )
    p.add_argument("--clips", type=int, default=256, help="clips per side for FVD")
    p.add_argument(
        "--samples",
        type=int,
        default=32,
        help="identities for ID, samples for the temporal and multi-view metrics",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_evaluate)

    p = sub.add_parser("convert", help="convert a released .ckpt or EG3D-layout .pkl (never executed)")
    add_config_args(p, default="voxceleb")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_convert)

    p = sub.add_parser("demo", help="<= 40 s end to end on toy heads; writes DIR/metrics.json")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("repro", help="the acceptance experiment (issue 17)")
    add_config_args(p, default="repro")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_repro)

    p = sub.add_parser("bench", help="time and peak memory of one training iteration (JSON)")
    add_config_args(p, default="voxceleb")
    add_device_args(p)
    p.add_argument("--steps", type=int, default=3)
    p.set_defaults(fn=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.fn, args)


if __name__ == "__main__":
    sys.exit(main())
