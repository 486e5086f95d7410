"""The acceptance experiment (issue 14): sparsification and anonymization against fresh attackers, 3 seeds.

Per seed: synthetic data written in the HMDB51 layouts (``make-synthetic``), the three training phases, then per
condition a fresh action model and a fresh attacker ensemble trained on the anonymized train split and tested on the
anonymized test split. Conditions: raw, constant (all-zero video), sparse (after init), random_keep (same anonymizer,
k random tubelets per slice), full (after the adversarial phase), full_a08 / full_a10 (keep ratio 0.8 / 1.0); and the
keep mask alone. Writes ``DIR/metrics.json`` (seed means, exactly the issue's keys), ``DIR/per_seed.json`` and
``DIR/gates.json``.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import torch

from visioncore.config import to_dict
from visioncore.files import atomic_write_json

from .config import Config
from .data import Normalizer, load_privacy_labels
from .data.clips import ClipDataset, TensorClips, load_all
from .data.splits import hmdb51_split
from .data.synthetic import write_synthetic
from .evaluate import (
    AnonymizedSet,
    anonymize_set,
    keep_mask_video,
    predict,
    privacy_metrics,
    protocol,
    worst_case,
)
from .models import STPrivacy
from .train import load_recognizer, new_recognizer, train

__all__ = ["CONDITIONS", "GATES", "repro", "run_seed", "summarize"]

CONDITIONS = ("raw", "constant", "sparse", "random_keep", "full", "full_a08", "full_a10")
STATIC, ACTOR, NULL = (0, 1), (2, 3), 4

# (description, test on the seed means); fixed by the issue.
GATES = {
    "ceiling_top1_raw": ("top1_raw >= 0.9", lambda m: m["top1_raw"] >= 0.9),
    "ceiling_ap_static_raw": ("ap_static_raw >= 0.9", lambda m: m["ap_static_raw"] >= 0.9),
    "ceiling_ap_actor_raw": ("ap_actor_raw >= 0.9", lambda m: m["ap_actor_raw"] >= 0.9),
    "control_top1_constant": ("top1_constant <= 0.35", lambda m: m["top1_constant"] <= 0.35),
    "control_cmap_constant": ("cmap_constant in [0.4, 0.6]", lambda m: 0.4 <= m["cmap_constant"] <= 0.6),
    "control_ap_null": (
        "every ap_null_<c> in [0.4, 0.65]",
        lambda m: all(0.4 <= m[f"ap_null_{c}"] <= 0.65 for c in CONDITIONS),
    ),
    "sparse_kept_static": (
        "kept_static_tubelets <= 0.5 * kept_fraction",
        lambda m: m["kept_static_tubelets"] <= 0.5 * m["kept_fraction"],
    ),
    "sparse_ap_static_vs_raw": (
        "ap_static_sparse <= ap_static_raw - 0.25",
        lambda m: m["ap_static_sparse"] <= m["ap_static_raw"] - 0.25,
    ),
    "sparse_ap_static_vs_random": (
        "ap_static_sparse <= ap_static_random_keep - 0.1",
        lambda m: m["ap_static_sparse"] <= m["ap_static_random_keep"] - 0.1,
    ),
    "sparse_ap_actor": ("ap_actor_sparse >= 0.8", lambda m: m["ap_actor_sparse"] >= 0.8),
    "sparse_top1": ("top1_sparse >= 0.75", lambda m: m["top1_sparse"] >= 0.75),
    "sparse_top1_vs_random": (
        "top1_sparse >= top1_random_keep + 0.1",
        lambda m: m["top1_sparse"] >= m["top1_random_keep"] + 0.1,
    ),
    "anon_joint": ("ap_actor_full_joint <= 0.65", lambda m: m["ap_actor_full_joint"] <= 0.65),
    "anon_fresh": (
        "ap_actor_full <= ap_actor_sparse + 0.05",
        lambda m: m["ap_actor_full"] <= m["ap_actor_sparse"] + 0.05,
    ),
    "utility_top1_full": ("top1_full >= 0.7", lambda m: m["top1_full"] >= 0.7),
    "utility_top1_full_vs_random": (
        "top1_full >= top1_random_keep + 0.1",
        lambda m: m["top1_full"] >= m["top1_random_keep"] + 0.1,
    ),
    "knob_a10_a08": (
        "cmap_full_a10 >= cmap_full_a08 - 0.02",
        lambda m: m["cmap_full_a10"] >= m["cmap_full_a08"] - 0.02,
    ),
    "knob_a08_full": (
        "cmap_full_a08 >= cmap_full - 0.02",
        lambda m: m["cmap_full_a08"] >= m["cmap_full"] - 0.02,
    ),
}


def _summary(worst: dict, names: list[str]) -> dict[str, float]:
    ap = [worst["ap"][names[i]] for i in range(len(names))]
    return {
        "cmap": worst["cmap"],
        "f1": worst["f1"],
        "ap_static": float(np.mean([ap[i] for i in STATIC])),
        "ap_actor": float(np.mean([ap[i] for i in ACTOR])),
        "ap_null": float(ap[NULL]),
    }


def _load(cfg: Config, root: Path) -> tuple[TensorClips, TensorClips, list[str], dict[str, np.ndarray]]:
    split = hmdb51_split(root / "videos", root / "splits", 1)
    labels = load_privacy_labels(root / "privacy_labels.pickle", cfg.data.attribute_names)
    common = dict(num_frames=cfg.data.num_frames, stride=cfg.data.stride, size=cfg.data.size)
    train = load_all(ClipDataset(split.train, labels, train=True, seed=cfg.seed, **common))
    test = load_all(ClipDataset(split.test, labels, **common))
    masks = np.load(root / "render_masks.npz")
    by_name = {str(n): i for i, n in enumerate(masks["names"])}
    order = [by_name[f"{it.class_name}/{it.stem}"] for it in split.test]
    return train, test, split.classes, {"actor": masks["actor"][order], "static": masks["static"][order]}


def _kept(keep: torch.Tensor, mask: np.ndarray) -> float:
    m = torch.from_numpy(mask.reshape(len(mask), -1)).float()
    return float((keep * m).sum() / m.sum().clamp_min(1))


def _phase(cfg: Config, folder: Path, phase: str, datasets: tuple, resumable: bool) -> None:
    """Train a phase unless a finished one of this run (same config) is there."""
    finished = folder / "run" / phase / "model" / "model.safetensors"
    if not (resumable and finished.is_file()):
        train(cfg, folder / "run", phase, datasets=datasets, cpu=True)


def run_seed(
    cfg: Config,
    out: Path,
    seed: int,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    num_train: int = 1200,
    num_test: int = 400,
) -> dict:
    """One seed of the experiment; returns its metrics (and writes ``out/seed_<s>/metrics.json``)."""
    torch.set_num_threads(1)
    cfg = dataclasses.replace(cfg, seed=seed)
    folder = out / f"seed_{seed}"
    done = folder / "metrics.json"
    if done.is_file():
        saved = json.loads(done.read_text())
        if saved.get("config") == to_dict(cfg) and saved.get("sizes") == [num_train, num_test]:
            return saved["metrics"]
    start, cpu0 = time.time(), time.process_time()
    # A seed cut short resumes from its last finished stage: data, phases and conditions are all seeded, so skipping
    # finished ones gives the same numbers as an uninterrupted run.
    if not (folder / "data" / "render_masks.npz").is_file():
        write_synthetic(folder / "data", num_train, num_test, seed)
    train_clips, test_clips, classes, masks = _load(cfg, folder / "data")
    datasets = (train_clips, test_clips, classes)
    norm = Normalizer(cfg.data.mean, cfg.data.std)
    kw = dict(device=device, dtype=dtype)
    names = list(cfg.data.attribute_names)
    record = {"config": to_dict(cfg), "sizes": [num_train, num_test]}
    partial_file = folder / "partial.json"
    partial = json.loads(partial_file.read_text()) if partial_file.is_file() else {}
    same = {k: partial.get(k) for k in record} == record
    metrics: dict[str, float] = dict(partial["metrics"]) if same else {}

    def evaluate(cond: str, tr: AnonymizedSet, te: AnonymizedSet) -> None:
        if f"top1_{cond}" in metrics:
            return
        e = cfg.eval
        res = protocol(
            tr, te, train_clips, test_clips,
            make_model=lambda family, n: new_recognizer(cfg, family, n),
            action_family=e.action, attackers=e.attackers, num_classes=len(classes), attribute_names=names,
            norm=norm, steps=e.steps, lr=e.lr, batch_size=e.batch_size, seed=seed, **kw,
        )  # fmt: skip
        s = _summary(res["worst"], names)
        if cond == "keepmask":
            metrics.update({"ap_static_keepmask": s["ap_static"], "top1_keepmask": res["top1"]})
        else:
            metrics[f"top1_{cond}"] = res["top1"]
            metrics.update({f"{k}_{cond}": v for k, v in s.items()})
        # partial results survive a run cut short (sparsification first: it needs the init phase only)
        atomic_write_json(
            folder / "partial.json", {"seed": seed, "metrics": metrics, "wall_s": time.time() - start}
        )

    # 1) sparsification: the init phase, then raw / sparse / random_keep / keep mask / constant
    _phase(cfg, folder, "init", datasets, same)
    sparse = STPrivacy.from_pretrained(folder / "run" / "init" / "model")
    raw = (anonymize_set(None, train_clips, norm), anonymize_set(None, test_clips, norm))
    evaluate("raw", *raw)
    sparse_sets = tuple(anonymize_set(sparse, c, norm, **kw) for c in (train_clips, test_clips))
    keep = sparse_sets[1].keep
    metrics["kept_fraction"] = float(keep.mean())
    metrics["kept_actor_tubelets"] = _kept(keep, masks["actor"])
    metrics["kept_static_tubelets"] = _kept(keep, masks["static"])
    evaluate("sparse", *sparse_sets)
    evaluate(
        "random_keep",
        anonymize_set(sparse, train_clips, norm, random_keep_seed=seed * 2 + 1, **kw),
        anonymize_set(sparse, test_clips, norm, random_keep_seed=seed * 2 + 2, **kw),
    )
    evaluate("keepmask", *(AnonymizedSet(keep_mask_video(s.keep, sparse), s.keep) for s in sparse_sets))
    constant = lambda clips: AnonymizedSet(norm.to_uint8(torch.zeros(clips.videos.shape)), None)
    evaluate("constant", constant(train_clips), constant(test_clips))
    # 2) anonymization: privacy + adversarial phases, then full at alpha, 0.8, 1.0
    _phase(cfg, folder, "privacy", datasets, same)
    _phase(cfg, folder, "adversarial", datasets, same)
    full = STPrivacy.from_pretrained(folder / "run" / "adversarial" / "model")
    full_sets = tuple(anonymize_set(full, c, norm, **kw) for c in (train_clips, test_clips))
    evaluate("full", *full_sets)
    for name, alpha in (("full_a08", 0.8), ("full_a10", 1.0)):
        evaluate(
            name, *(anonymize_set(full, c, norm, keep_ratio=alpha, **kw) for c in (train_clips, test_clips))
        )
    joint = {}
    for k, family in enumerate(cfg.train.adversaries):
        adv = load_recognizer(family, folder / "run" / "adversarial" / f"adversary_{k}")
        probs = torch.sigmoid(predict(adv, full_sets[1].videos, norm, **kw)).numpy()
        joint[f"{family}_{k}"] = privacy_metrics(probs, test_clips.privacy.numpy(), names)
    metrics["ap_actor_full_joint"] = _summary(worst_case(joint), names)["ap_actor"]
    metrics["ap_actor_fresh_minus_joint"] = metrics["ap_actor_full"] - metrics["ap_actor_full_joint"]
    timing = {"wall_s": time.time() - start, "cpu_s": time.process_time() - cpu0}
    record = {
        "seed": seed,
        "metrics": metrics,
        "timing": timing,
        "config": to_dict(cfg),
        "sizes": [num_train, num_test],
    }
    atomic_write_json(done, record)
    return metrics


def _worker(args: tuple) -> dict:
    return run_seed(*args)


def summarize(per_seed: dict[int, dict[str, float]]) -> tuple[dict[str, float], dict[str, dict]]:
    keys = list(next(iter(per_seed.values())))
    means = {k: float(np.mean([m[k] for m in per_seed.values()])) for k in keys}
    gates = {name: {"gate": text, "holds": bool(test(means))} for name, (text, test) in GATES.items()}
    return means, gates


def _table(means: dict[str, float], per_seed: dict[int, dict[str, float]]) -> str:
    seeds = sorted(per_seed)
    lines = [f"{'key':<28}{'mean':>8}" + "".join(f"{f'seed {s}':>9}" for s in seeds)]
    for k, v in means.items():
        lines.append(f"{k:<28}{v:>8.3f}" + "".join(f"{per_seed[s][k]:>9.3f}" for s in seeds))
    return "\n".join(lines)


def repro(
    cfg: Config,
    out: Path,
    *,
    seeds: list[int] = (0, 1, 2),
    workers: int = 2,
    device="cpu",
    dtype=torch.float32,
) -> dict[str, float]:
    """All seeds (on ``workers`` processes); prints the table and writes metrics.json / per_seed.json / gates.json."""
    start, cpu0 = time.time(), time.process_time()
    jobs = [(cfg, out, s, str(device), dtype) for s in seeds]
    if workers > 1 and len(seeds) > 1:
        with mp.get_context("spawn").Pool(min(workers, len(seeds))) as pool:
            results = pool.map(_worker, jobs)
    else:
        results = [_worker(j) for j in jobs]
    per_seed = dict(zip(seeds, results))
    means, gates = summarize(per_seed)
    seed_cpu = sum(
        json.loads((out / f"seed_{s}" / "metrics.json").read_text())["timing"]["cpu_s"] for s in seeds
    )
    atomic_write_json(out / "metrics.json", means)
    atomic_write_json(out / "per_seed.json", {str(s): m for s, m in per_seed.items()})
    timing = {
        "wall_s": time.time() - start,
        "cpu_s_main": time.process_time() - cpu0,
        "cpu_s_seeds": seed_cpu,
    }
    atomic_write_json(out / "gates.json", {"gates": gates, "timing": timing, "seeds": list(seeds)})
    print(_table(means, per_seed))
    for name, g in gates.items():
        print(f"{'HOLDS' if g['holds'] else 'FAILS':<6} {name:<30} {g['gate']}")
    print(f"wall {timing['wall_s']:.0f} s, cpu (seed workers) {seed_cpu:.0f} s")
    return means
