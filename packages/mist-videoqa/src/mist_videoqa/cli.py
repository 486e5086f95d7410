"""``mist-videoqa`` command line. Heavy libraries (transformers, h5py users) are imported inside the verbs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from visioncore.config import add_config_args, config_from_args
from visioncore.console import run_command
from visioncore.devices import add_device_args, resolve_device, resolve_dtype

PACKAGE = "mist_videoqa"


def _cfg(args: argparse.Namespace):
    from mist_videoqa.config import RunConfig

    return config_from_args(RunConfig, args, package=PACKAGE)


def _fresh_dir(path: str, what: str = "--out") -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: {what} exists and is not a folder")
    return out


def _make_synthetic(args: argparse.Namespace) -> None:
    from mist_videoqa.data.synthetic import SyntheticSpec, make_synthetic

    spec = SyntheticSpec(args.n_train, args.n_val, args.n_test, dim=args.dim, seed=args.seed)
    counts = make_synthetic(_fresh_dir(args.out), args.layout, spec)
    print(json.dumps({"out": args.out, "layout": args.layout, **counts}))


def _make_splits(args: argparse.Namespace) -> None:
    from mist_videoqa.data.splits import make_splits

    counts = make_splits(
        args.root, _fresh_dir(args.out), dataset=args.dataset, val_fraction=args.val_fraction, seed=args.seed,
        test_from=args.test_from,
    )  # fmt: skip
    print(json.dumps(counts))


def _extract(args: argparse.Namespace) -> None:
    from mist_videoqa.data.annotations import load_qas
    from mist_videoqa.data.dataset import feature_paths
    from mist_videoqa.extract import (
        ClipEncoder,
        envqa_frame_sources,
        extract_text_features,
        extract_video_features,
    )

    cfg = _cfg(args)
    qas = [qa for split in args.splits.split(",") for qa in load_qas(cfg.data.root, cfg.data.dataset, split)]
    video_h5, text_h5 = feature_paths(cfg.data)
    if args.meta:
        sources = envqa_frame_sources(args.meta, args.frames or args.videos)
    else:
        folder = Path(args.videos)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: video folder not found (--videos)")
        sources = {}
        for qa in qas:
            name = qa.video_id.removesuffix(".mp4")  # not strip('.mp4'): that strips characters
            matches = sorted(folder.glob(f"{name}.*"))
            if not matches:
                raise FileNotFoundError(f"{folder}: no video file for id {name}")
            sources[qa.feature_key] = matches[0]
    encoder = ClipEncoder(args.clip, resolve_device(args.device), resolve_dtype(args.dtype))
    extract_video_features(encoder, sources, video_h5, num_frames=cfg.model.num_frames)
    extract_text_features(encoder, {qa.qid: qa.question for qa in qas}, text_h5)
    print(
        json.dumps({"video_features": str(video_h5), "text_features": str(text_h5), "videos": len(sources)})
    )


def _train(args: argparse.Namespace) -> None:
    from mist_videoqa.train import train

    cfg = _cfg(args)
    summary = train(
        cfg, _fresh_dir(args.out), resume=args.resume, bert_dir=args.bert, init_from=args.init_from,
        device=resolve_device(args.device), dtype=args.dtype, trackers=("jsonl", "tensorboard"),
    )  # fmt: skip
    print(json.dumps(summary))


def _load_model(model_dir: str, device, dtype):
    from mist_videoqa.models.mist import MIST

    return MIST.from_pretrained(model_dir).to(device, dtype)


def _evaluate(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from mist_videoqa.data.dataset import build_dataset, load_tokenizer
    from mist_videoqa.evaluate import evaluate_model, per_qid
    from visioncore.files import atomic_write_json

    cfg = _cfg(args)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    model = _load_model(args.model, device, dtype)
    cfg = replace(cfg, model=model.config)
    dataset = build_dataset(cfg.data, cfg.model, args.split, load_tokenizer(cfg.data.vocab_file))
    metrics, pred = evaluate_model(
        model, dataset, batch_size=cfg.train.eval_batch_size, device=device, dtype=dtype
    )
    out = _fresh_dir(args.out)
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_json(out / f"{args.split}-{metrics['acc']:.4f}.json", per_qid(dataset, pred))
    print(json.dumps(metrics, indent=2))


def _ask(args: argparse.Namespace) -> None:
    from mist_videoqa.ask import ask

    result = ask(
        args.source, args.question, model_dir=args.model, out=_fresh_dir(args.out), video_id=args.video_id,
        clip_dir=args.clip, text_features=args.text_features, qid=args.qid, vocab_file=args.vocab_file,
        answers=args.answers, device=resolve_device(args.device), dtype=resolve_dtype(args.dtype),
    )  # fmt: skip
    print(json.dumps(result, indent=2))


def _demo(args: argparse.Namespace) -> None:
    from mist_videoqa.demo import demo

    print(json.dumps(demo(_fresh_dir(args.out), device=resolve_device(args.device)), indent=2))


def _repro(args: argparse.Namespace) -> None:
    from mist_videoqa.repro import repro

    seeds = [int(s) for s in args.seeds.split(",")]
    repro(_fresh_dir(args.out), args, workers=args.workers, seeds=seeds, report_only=args.report_only)


def _bench(args: argparse.Namespace) -> None:
    from mist_videoqa.bench import bench

    print(
        json.dumps(bench(resolve_device(args.device), resolve_dtype(args.dtype), batch=args.batch), indent=2)
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mist-videoqa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "make-synthetic", help="synthetic long-video QA in a released layout (AGQA/NExT-QA/STAR)"
    )
    p.add_argument("--out", required=True, help="data root to write (datasets/ and feats/)")
    p.add_argument("--layout", default="agqa", choices=["agqa", "nextqa", "star"])
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-val", type=int, default=0)
    p.add_argument("--n-test", type=int, default=400)
    p.add_argument("--dim", type=int, default=64, help="feature dimension D (model.feature_dim)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_make_synthetic)

    p = sub.add_parser(
        "make-splits", help="rebuild AGQA/Env-QA train/val/test with a real val split from train"
    )
    p.add_argument("--root", required=True, help="data root with datasets/<dataset>/")
    p.add_argument("--out", required=True, help="new data root to write the splits to")
    p.add_argument("--dataset", default="agqa", choices=["agqa", "envqa"])
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument(
        "--test-from", default="test", help="split file holding the test QAs (AGQA release: 'val')"
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=_make_splits)

    p = sub.add_parser("extract-features", help="CLIP frame/crop and question features from local videos")
    add_config_args(p, default="agqa")
    p.add_argument("--clip", required=True, help="local transformers CLIP ViT-B/32 folder")
    p.add_argument("--videos", default="", help="folder of <video_id>.* video files")
    p.add_argument("--frames", default="", help="Env-QA: folder of PNG frames")
    p.add_argument("--meta", default="", help="Env-QA: meta JSON {video: {frame_ids: [...]}}")
    p.add_argument("--splits", default="train,val,test")
    add_device_args(p)
    p.set_defaults(fn=_extract)

    p = sub.add_parser("train", help="train MIST (accelerate loop, exact --resume)")
    add_config_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--bert", default=None, help="local BERT folder for the question and answer encoders")
    p.add_argument("--init-from", default=None, help="official best_model.pth to initialise from")
    add_device_args(p)
    p.set_defaults(fn=_train)

    p = sub.add_parser("evaluate", help="accuracy per type and per-qid predictions of a trained model")
    add_config_args(p)
    p.add_argument("--model", required=True, help="a saved model folder (out/model or out/best)")
    p.add_argument("--split", default="test")
    p.add_argument("--out", required=True)
    add_device_args(p)
    p.set_defaults(fn=_evaluate)

    p = sub.add_parser("ask", help="answer one question and draw the chosen segments and regions")
    p.add_argument("source", help="a feature h5 (with --video-id) or a video file (with --clip)")
    p.add_argument("question")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--video-id", default=None)
    p.add_argument("--clip", default=None, help="local CLIP folder: features of a video and of the question")
    p.add_argument("--text-features", default=None, help="question feature h5 (without --clip)")
    p.add_argument(
        "--qid", default=None, help="row of --text-features holding this question's CLIP embedding"
    )
    p.add_argument("--vocab-file", default="", help="BERT vocab.txt (default: the packaged tiny vocab)")
    p.add_argument(
        "--answers", default=None, help="vocab.json mapping answers to ids (to print the answer text)"
    )
    add_device_args(p)
    p.set_defaults(fn=_ask)

    p = sub.add_parser("demo", help="<= 40 s synthetic run: MIST vs. random segments (writes metrics.json)")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cpu")
    p.set_defaults(fn=_demo)

    p = sub.add_parser("repro", help="the acceptance experiment of issue 22 (writes metrics.json)")
    add_config_args(p, default="repro")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--workers", type=int, default=2, help="parallel worker processes (one thread each)")
    p.add_argument(
        "--report-only", action="store_true", help="summarise the runs already finished under --out"
    )
    p.set_defaults(fn=_repro)

    p = sub.add_parser("bench", help="one AGQA-size training step, MIST vs. dense attention (JSON)")
    p.add_argument("--batch", type=int, default=8)
    add_device_args(p)
    p.set_defaults(fn=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.fn, args)


if __name__ == "__main__":
    sys.exit(main())
