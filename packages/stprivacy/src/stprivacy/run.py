"""What the CLI verbs evaluate, anonymize and labels do (kept out of ``cli.py`` so the CLI imports stay light)."""

from __future__ import annotations

from pathlib import Path

import torch

from visioncore.config import to_dict
from visioncore.files import atomic_path, atomic_write_json

from .config import Config
from .data import Normalizer, load_all, load_privacy_labels, load_split
from .data.clips import TensorClips
from .data.splits import find_split_lists
from .evaluate import anonymize_set, protocol
from .models import STPrivacy
from .train import make_datasets, new_recognizer

__all__ = ["anonymize_files", "evaluate_model", "label_report"]


def _in_memory(ds) -> TensorClips:
    return ds if isinstance(ds, TensorClips) else load_all(ds)


def evaluate_model(
    cfg: Config,
    model_dir: Path | None,
    out: Path,
    *,
    keep_ratio: float | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict:
    """The protocol on the configured split: ``model_dir`` None = raw video. Writes ``out/metrics.json``."""
    anonymizer = STPrivacy.from_pretrained(model_dir) if model_dir is not None else None
    train_ds, test_ds, classes = make_datasets(cfg)
    train, test = _in_memory(train_ds), _in_memory(test_ds)
    norm = Normalizer(cfg.data.mean, cfg.data.std)
    alpha = keep_ratio if keep_ratio is not None else (cfg.eval.keep_ratio or None)
    kw = dict(keep_ratio=alpha, device=device, dtype=dtype)
    result = protocol(
        anonymize_set(anonymizer, train, norm, **kw),
        anonymize_set(anonymizer, test, norm, **kw),
        train,
        test,
        make_model=lambda family, n: new_recognizer(cfg, family, n),
        action_family=cfg.eval.action,
        attackers=cfg.eval.attackers,
        num_classes=len(classes),
        attribute_names=cfg.data.attribute_names,
        norm=norm,
        steps=cfg.eval.steps,
        lr=cfg.eval.lr,
        batch_size=cfg.eval.batch_size,
        seed=cfg.seed,
        device=device,
        dtype=dtype,
    )
    result.update(
        {"model": str(model_dir) if model_dir else "raw", "keep_ratio": alpha, "config": to_dict(cfg)}
    )
    atomic_write_json(out / "metrics.json", result)
    return result


def anonymize_files(
    cfg: Config,
    videos: list[Path],
    model_dir: Path,
    out: Path,
    *,
    keep_ratio: float | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> list[Path]:
    """Centre clip of each video through the test path: ``<stem>_anonymized.mp4`` and ``<stem>_side_by_side.gif``."""
    from visioncore.video import read_video, save_gif, video_info, write_video

    model = STPrivacy.from_pretrained(model_dir).to(device=device, dtype=dtype)
    frames = model.grid[0] * model.tubelet[0]
    size = model.grid[1] * model.tubelet[1]
    norm = Normalizer(cfg.data.mean, cfg.data.std)
    clips = []
    for path in videos:  # read everything first: a bad file stops the run before anything is written
        if not path.is_file():
            raise FileNotFoundError(f"video not found: {path}")
        total = max(1, video_info(path).frames)
        start = max(0, total - ((frames - 1) * cfg.data.stride + 1)) // 2
        idx = [min(start + i * cfg.data.stride, total - 1) for i in range(frames)]
        clips.append(read_video(path, indices=idx, size=(size, size)).permute(1, 0, 2, 3))
    written = []
    for path, clip in zip(videos, clips):
        res = model.anonymize(norm(clip[None].to(device)).to(dtype), keep_ratio)
        anon = norm.to_uint8(res.video.float())[0].permute(1, 0, 2, 3).cpu()  # [T, C, H, W]
        raw = clip.permute(1, 0, 2, 3)
        target = out / f"{path.stem}_anonymized.mp4"
        with atomic_path(target) as tmp:
            write_video(tmp, anon, fps=8, codec="libx264") if size % 2 == 0 else write_video(
                tmp, anon, fps=8, codec="ffv1"
            )
        gif = out / f"{path.stem}_side_by_side.gif"
        with atomic_path(gif) as tmp:
            save_gif(tmp, torch.cat([raw, anon], dim=3), fps=4)
        written += [target, gif]
    return written


def label_report(file: Path, *, root: Path | None = None, split: int = 1) -> dict:
    """Key count, per-position positive rates and (with ``root``) how much of the split lists the labels cover."""
    labels = load_privacy_labels(file)
    m = labels.matrix()
    report: dict = {
        "file": str(file),
        "keys": len(labels),
        "positive_rate_by_position": [round(float(v), 4) for v in (m.mean(0) if len(m) else [])],
        "assumed_names": list(labels.names),
        "note": "the attribute order of the official pickles is undocumented; names are by position",
    }
    if root is not None:
        dataset, folder = find_split_lists(root, split)
        parts = load_split(dataset, root, folder, split, check=False)
        listed = {(it.class_name, it.stem) for it in parts.train + parts.test}
        coverage = {}
        for name, items in (("train", parts.train), ("test", parts.test)):
            covered = sum(it in labels for it in items)
            coverage[name] = {
                "videos": len(items),
                "labelled": covered,
                "fraction": round(covered / max(1, len(items)), 4),
            }
        report["split"] = {
            "dataset": dataset,
            "split": split,
            "lists": str(folder),
            **coverage,
            "labels_not_in_split": int(sum(key not in listed for key in labels.table)),
        }
    return report
