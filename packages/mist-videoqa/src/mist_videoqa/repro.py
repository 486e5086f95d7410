"""``repro``: the acceptance experiment of issue 22 on synthetic "what color is the <key>?" videos (AGQA layout).

Every variant trains the same reader with the config ``configs/repro.yaml`` (same data, steps, lr, layers, seeds);
only the selection changes: MIST (``topk`` mode, soft relaxation), its hard straight-through and ``official``
relaxations, a 2-layer MIST, uniform frames and mean-pooled frames at the same token budget, random and oracle
segment selectors (regions still learned), a question-blind control, and dense attention over all regions (seed 0
only, ``DENSE_STEPS`` steps: a dense step costs about ten MIST steps). Finished runs are kept under ``DIR/runs`` and
reused, so an interrupted repro resumes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visioncore.files import atomic_write_json

__all__ = ["DENSE_STEPS", "VARIANTS", "repro"]

DENSE_STEPS = 300
VARIANTS: dict[str, list[str]] = {
    "mist": [],
    "mist_2layer": ["model.n_ista=2"],
    "mist_st": ["model.relax=st"],
    "mist_official": ["model.selection=official"],
    "uniform": ["model.selector=uniform"],
    "mean_pool": ["model.selector=mean_pool"],
    "random_selector": ["model.selector=random"],
    "oracle_selector": ["model.selector=oracle"],
    "question_blind": ["model.question_blind=true"],
    "dense": ["model.selector=dense", f"train.steps={DENSE_STEPS}", f"train.eval_every={DENSE_STEPS}"],
}
GATED = ["acc_uniform", "acc_mean_pool", "acc_random_selector"]


def _data_spec(cfg: Any) -> Any:
    from mist_videoqa.data.synthetic import SyntheticSpec

    return SyntheticSpec(n_train=2000, n_val=0, n_test=400, dim=cfg.model.feature_dim, seed=0)


def _run_job(job: tuple[str, int, str, list[str], str]) -> dict[str, Any]:
    """Train and test one (variant, seed); its metrics are cached in ``runs/<variant>_s<seed>/result.json``."""
    variant, seed, config, overrides, out = job
    run_dir = Path(out) / "runs" / f"{variant}_s{seed}"
    cached = run_dir / "result.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    torch.set_num_threads(1)
    from mist_videoqa.config import load_train_config
    from mist_videoqa.data.dataset import build_dataset, load_tokenizer
    from mist_videoqa.evaluate import evaluate_model
    from mist_videoqa.train import train

    cfg = load_train_config(config, [*VARIANTS[variant], *overrides, f"train.seed={seed}"])
    cfg = replace(cfg, data=replace(cfg.data, root=str(Path(out) / "data")))
    tokenizer = load_tokenizer(cfg.data.vocab_file)
    stores: dict = {}
    train_ds = build_dataset(cfg.data, cfg.model, cfg.data.train_split, tokenizer, stores)
    test_ds = build_dataset(cfg.data, cfg.model, cfg.data.test_split, tokenizer, stores)
    start, cpu0 = time.perf_counter(), time.process_time()
    train(cfg, run_dir, device=torch.device("cpu"), datasets=(train_ds, None), log=lambda _: None)
    train_wall, train_cpu = time.perf_counter() - start, time.process_time() - cpu0
    from mist_videoqa.models.mist import MIST

    model = MIST.from_pretrained(run_dir / "model")
    torch.manual_seed(1000 + seed)  # the evaluation draws of the official mode / random selector
    metrics, pred = evaluate_model(
        model, test_ds, batch_size=cfg.train.eval_batch_size, device=torch.device("cpu")
    )
    result = {"variant": variant, "seed": seed, "steps": cfg.train.steps, "mode": metrics["mode"]}
    result |= {"acc": metrics["acc"], "train_wall_s": train_wall, "train_cpu_s": train_cpu}
    for key in (
        "segment_hit_rate",
        "region_hit_rate",
        "segment_hit_rate_best_layer",
        "segment_hit_rate_per_layer",
    ):
        if key in metrics:
            result[key] = metrics[key]
    if variant == "mist":
        again, _ = evaluate_model(model, test_ds, batch_size=37, device=torch.device("cpu"))
        _, pred2 = evaluate_model(
            model, test_ds, batch_size=cfg.train.eval_batch_size, device=torch.device("cpu")
        )
        same = np.array_equal(pred["top"], pred2["top"]) and again["acc"] == metrics["acc"]
        result["eval_repeat_identical"] = int(same and np.array_equal(pred["segments"], pred2["segments"]))
        result["selection"] = {k: pred[k][:4].tolist() for k in ("segments", "regions")}
    atomic_write_json(cached, result)
    return result


def _cost(cfg: Any) -> dict[str, float]:
    """Forward FLOPs and wall time per question of MIST and of dense attention over every region (same reader)."""
    from torch.utils.flop_counter import FlopCounterMode

    from mist_videoqa.models.mist import MIST

    torch.manual_seed(0)
    out: dict[str, float] = {}
    m = cfg.model
    batch = 16
    video = torch.randn(batch, m.num_frames, m.num_regions + 1, m.feature_dim)
    inputs = {
        "video": video,
        "q_feat": torch.randn(batch, m.feature_dim),
        "question_ids": torch.randint(5, 100, (batch, 8)),
        "question_mask": torch.ones(batch, 8, dtype=torch.long),
    }
    for name, model_cfg in (("mist", m), ("dense", replace(m, selector="dense"))):
        model = MIST(model_cfg).eval()
        with torch.no_grad():
            model(**inputs)  # answers encoded and cached: count the per-question forward only
            with FlopCounterMode(display=False) as counter:
                model(**inputs)
            times = []
            for _ in range(5):
                start = time.perf_counter()
                model(**inputs)
                times.append(time.perf_counter() - start)
        out[f"flops_{name}"] = counter.get_total_flops() / batch
        out[f"time_{name}"] = float(np.median(times)) / batch
    return out


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _summarise(results: list[dict[str, Any]], cost: dict[str, float], seeds: list[int]) -> dict[str, Any]:
    by = {(r["variant"], r["seed"]): r for r in results}
    names = {
        "acc_mist": "mist", "acc_mist_2layer": "mist_2layer", "acc_mist_st": "mist_st",
        "acc_mist_official": "mist_official", "acc_uniform": "uniform", "acc_mean_pool": "mean_pool",
        "acc_random_selector": "random_selector", "acc_oracle_selector": "oracle_selector",
        "acc_question_blind": "question_blind",
    }  # fmt: skip
    metrics: dict[str, Any] = {}
    per_seed: dict[str, dict[str, Any]] = {str(s): {} for s in seeds}
    for key, variant in names.items():
        values = []
        for s in seeds:
            if (variant, s) in by:
                per_seed[str(s)][key] = by[(variant, s)]["acc"]
                values.append(by[(variant, s)]["acc"])
        metrics[key] = _mean(values)
    mist_runs = [by[("mist", s)] for s in seeds if ("mist", s) in by]
    for key in ("segment_hit_rate", "region_hit_rate"):
        for r in mist_runs:
            per_seed[str(r["seed"])][key] = r[key]
        metrics[key] = _mean([r[key] for r in mist_runs])
    for s in seeds:  # the 2-layer run's hit rates, per layer and best layer; the mode behind every number
        if ("mist_2layer", s) in by:
            two = by[("mist_2layer", s)]
            per_seed[str(s)]["segment_hit_rate_2layer_per_layer"] = two.get("segment_hit_rate_per_layer")
            per_seed[str(s)]["segment_hit_rate_2layer_best_layer"] = two.get("segment_hit_rate_best_layer")
        per_seed[str(s)]["modes"] = {v: by[(v, s)]["mode"] for v in names.values() if (v, s) in by}
    metrics["chance"] = 1.0 / 8
    metrics["flops_ratio"] = cost["flops_mist"] / cost["flops_dense"]
    metrics["time_ratio"] = cost["time_mist"] / cost["time_dense"]
    metrics["acc_dense"] = by[("dense", seeds[0])]["acc"] if ("dense", seeds[0]) in by else float("nan")
    metrics["eval_repeat_identical"] = int(
        bool(mist_runs) and all(r["eval_repeat_identical"] for r in mist_runs)
    )
    metrics["per_seed"] = per_seed
    return metrics


def _gates(m: dict[str, Any]) -> dict[str, bool]:
    gates = {f"acc_mist >= {k} + 0.2": m["acc_mist"] >= m[k] + 0.2 for k in GATED}
    gates["segment_hit_rate >= 0.5"] = m["segment_hit_rate"] >= 0.5
    gates["acc_mist >= acc_oracle_selector - 0.20"] = m["acc_mist"] >= m["acc_oracle_selector"] - 0.20
    gates["acc_question_blind <= 0.25"] = m["acc_question_blind"] <= 0.25
    gates["flops_ratio <= 0.3"] = m["flops_ratio"] <= 0.3
    gates["eval_repeat_identical = 1"] = m["eval_repeat_identical"] == 1
    return gates


def _table(m: dict[str, Any], seeds: list[int]) -> str:
    lines = [f"{'metric':24s} {'mean':>7s}  " + "  ".join(f"seed {s:<3d}" for s in seeds)]
    for key, value in m.items():
        if key == "per_seed" or not isinstance(value, int | float):
            continue
        per = [m["per_seed"][str(s)].get(key) for s in seeds]
        cells = "  ".join(f"{p:8.3f}" if isinstance(p, float) else f"{'':8s}" for p in per)
        lines.append(f"{key:24s} {value:7.3f}  {cells}")
    return "\n".join(lines)


def _selection_png(out: Path, cfg: Any, result: dict[str, Any]) -> None:
    from mist_videoqa.data.annotations import load_qas
    from mist_videoqa.viz import save_selection_strip, selection_tiles

    qas = load_qas(out / "data", "agqa", "test")[:4]
    m = cfg.model
    rows = [
        selection_tiles(
            m.num_frames,
            m.num_regions,
            m.frames_per_segment,
            result["selection"]["segments"][i][-1],
            np.array(result["selection"]["regions"][i][-1]),
            event_segment=qa.event_segment,
            key_regions=qa.key_regions,
        )  # fmt: skip
        for i, qa in enumerate(qas)
    ]
    save_selection_strip(out / "selection.png", rows)


def _cached(job: tuple) -> dict[str, Any] | None:
    path = Path(job[4]) / "runs" / f"{job[0]}_s{job[1]}" / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def repro(
    out: Path,
    args: argparse.Namespace,
    *,
    workers: int = 2,
    seeds: list[int] | None = None,
    report_only: bool = False,
) -> dict[str, Any]:
    """Run every (variant, seed), then write ``out/metrics.json`` and ``out/selection.png`` and print the table.

    ``report_only`` summarises the runs already finished under ``out/runs`` (means over the seeds that ran; a
    variant with no finished run is NaN and listed under ``missing_runs`` in ``run_info.json``).
    """
    from mist_videoqa.config import load_train_config
    from mist_videoqa.data.synthetic import make_synthetic

    seeds = seeds or [0, 1, 2]
    cfg = load_train_config(args.config, args.overrides)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if not (out / "data" / "synthetic.json").is_file():
        make_synthetic(out / "data", "agqa", _data_spec(cfg))
    # the dense run (seed 0 only, ungated, about three MIST runs of CPU) first, so that the other worker works
    # through the short runs meanwhile instead of idling at the end; then seed-major. Finished runs are cached, so
    # an interrupted repro resumes where it stopped.
    jobs = [("dense", seeds[0], args.config, list(args.overrides), str(out))]
    jobs += [
        (v, s, args.config, list(args.overrides), str(out)) for s in seeds for v in VARIANTS if v != "dense"
    ]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if report_only:
        results = [r for j in jobs if (r := _cached(j)) is not None]
    elif workers > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_run_job, jobs, chunksize=1)
    else:
        results = [_run_job(j) for j in jobs]
    torch.set_num_threads(1)
    cost = _cost(cfg)
    metrics = _summarise(results, cost, seeds)
    atomic_write_json(out / "metrics.json", metrics)
    gates = _gates(metrics)
    mist0 = next((r for r in results if r["variant"] == "mist"), None)
    if mist0 is not None:
        _selection_png(out, cfg, mist0)
    run_cpu = sum(r["train_cpu_s"] for r in results)
    info = {
        "wall_s": time.perf_counter() - start,
        "train_cpu_s_all_jobs": run_cpu,
        "gates": gates,
        "cost": cost,
    }
    info["dense_steps"] = DENSE_STEPS
    done = {(r["variant"], r["seed"]) for r in results}
    info["missing_runs"] = [f"{j[0]}_s{j[1]}" for j in jobs if (j[0], j[1]) not in done]
    atomic_write_json(out / "run_info.json", info)
    print(_table(metrics, seeds))
    for gate, ok in gates.items():
        print(f"{'PASS' if ok else 'FAIL'}  {gate}")
    print(f"wall {info['wall_s']:.0f} s, training CPU {run_cpu:.0f} s (all jobs)")
    return metrics
