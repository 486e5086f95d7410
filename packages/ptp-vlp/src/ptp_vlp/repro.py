"""``ptp-vlp repro``: block prompts in pretraining make a tiny BLIP position-aware, visible with no prompt at test time.

Per seed, three pretraining runs on the same ShapesGrid data, tokenizer, steps, initialisation and batch order:
``ptp`` (tsv prompts), ``none`` (plain BLIP), ``shuffled`` (prompts with a random block); on the first seed also
``ceiling`` (plain BLIP with a position phrase in every caption). Runs go to worker processes (one thread each) and
are skipped when their ``probe.json`` exists, so an interrupted repro continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ptp_vlp.config import Config
from ptp_vlp.data.synthetic import SyntheticSpec, caption_of, position_phrase, write_synthetic
from visioncore.config import save_config, to_dict
from visioncore.files import atomic_write_json

__all__ = ["GATES", "METHODS", "evaluate_gates", "probe_metrics", "run_repro"]

METHODS = ("ptp", "none", "shuffled")
KEYS = (
    *(f"fill_acc_{m}" for m in METHODS),
    *(f"pos_r1_{m}" for m in (*METHODS, "ceiling")),
    *(f"pos_r1_itm_{m}" for m in METHODS),
    *(f"pos_acc_lm_{m}" for m in METHODS),
    *(f"cls_r1_{m}" for m in METHODS),
    "loss_ratio_ita",
    "loss_ratio_itm",
    "loss_ratio_lm",
    "prompt_truncated",
)

GATES: tuple[tuple[str, Any], ...] = (
    ("fill_acc_ptp >= 0.20", lambda m: m["fill_acc_ptp"] >= 0.20),
    ("fill_acc_none in [0.06, 0.17]", lambda m: 0.06 <= m["fill_acc_none"] <= 0.17),
    ("fill_acc_shuffled in [0.06, 0.17]", lambda m: 0.06 <= m["fill_acc_shuffled"] <= 0.17),
    ("pos_r1_ptp >= pos_r1_none + 0.05", lambda m: m["pos_r1_ptp"] >= m["pos_r1_none"] + 0.05),
    ("pos_r1_ptp >= pos_r1_shuffled + 0.05", lambda m: m["pos_r1_ptp"] >= m["pos_r1_shuffled"] + 0.05),
    ("pos_r1_shuffled <= pos_r1_none + 0.05", lambda m: m["pos_r1_shuffled"] <= m["pos_r1_none"] + 0.05),
    ("pos_r1_ceiling >= pos_r1_ptp", lambda m: m["pos_r1_ceiling"] >= m["pos_r1_ptp"]),
    ("cls_r1_none >= 0.4", lambda m: m["cls_r1_none"] >= 0.4),
    ("cls_r1_ptp >= 0.4", lambda m: m["cls_r1_ptp"] >= 0.4),
    ("cls_r1_ptp >= cls_r1_none - 0.15", lambda m: m["cls_r1_ptp"] >= m["cls_r1_none"] - 0.15),
    ("loss_ratio_ita <= 0.7", lambda m: m["loss_ratio_ita"] <= 0.7),
    ("loss_ratio_lm <= 0.7", lambda m: m["loss_ratio_lm"] <= 0.7),
    ("prompt_truncated == 0", lambda m: m["prompt_truncated"] == 0),
)


def run_config(cfg: Config, data: Path, method: str, seed: int) -> Config:
    """The config of one run: same everything, only the prompt switch (and the ceiling's corpus) differ."""
    corpus = data / ("corpus_ceiling.tsv" if method == "ceiling" else "corpus.tsv")
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(
            cfg.data, corpus=str(corpus), image_root=str(data), tokenizer=str(data / "tokenizer")
        ),
        ptp=dataclasses.replace(
            cfg.ptp, enabled=method in ("ptp", "shuffled"), shuffle_blocks=method == "shuffled"
        ),
        train=dataclasses.replace(cfg.train, seed=seed),
        init=dataclasses.replace(cfg.init, vit="", bert="", checkpoint=""),
    )


def probe_metrics(model: Any, tok: Any, data: Path, cfg: Config) -> dict[str, float]:
    """fill / position / class probes on the test images (one probed object each)."""
    from ptp_vlp.evaluate import grounding_texts, load_images, score_texts

    probes = json.loads((data / "probes_test.json").read_text())
    images = load_images([data / p["image"] for p in probes], cfg.model.image_size)
    fill, pos, cls, blocks = [], [], [], []
    for p in probes:
        names, probe = p["names"], p["probe"]
        caption = caption_of(names)
        fill.append(grounding_texts(caption, names[probe], cfg.ptp.grid))
        pos.append([caption_of(names, {probe: position_phrase(k)}) for k in range(9)])
        swapped = [caption_of([a if i == probe else n for i, n in enumerate(names)]) for a in p["absent"]]
        cls.append([caption] + swapped)
        blocks.append(p["blocks"][probe])
    truth = np.array(blocks)
    max_tokens = cfg.data.max_tokens
    s_fill = score_texts(model, images, tok, fill, max_tokens)
    s_pos = score_texts(model, images, tok, pos, max_tokens)
    s_cls = score_texts(model, images, tok, cls, max_tokens)
    return {
        "fill_acc": float((s_fill["lm"].argmax(1).numpy() == truth).mean()),
        "pos_r1": float((s_pos["itc"].argmax(1).numpy() == truth).mean()),
        "pos_r1_itm": float((s_pos["itm"].argmax(1).numpy() == truth).mean()),
        "pos_acc_lm": float((s_pos["lm"].argmax(1).numpy() == truth).mean()),
        "cls_r1": float((s_cls["itc"].argmax(1).numpy() == 0).mean()),
    }


def loss_ratio(values: list[float]) -> float:
    """Mean of the last 10% of the losses over the mean of the first 10%."""
    k = max(1, len(values) // 10)
    return float(np.mean(values[-k:]) / np.mean(values[:k]))


def _one_run(job: tuple[dict, str, str, int]) -> dict:
    """Worker: pretrain one run, probe it, write ``probe.json`` (skipped if present)."""
    import torch
    from accelerate.state import AcceleratorState, GradientState

    from ptp_vlp.models.blip import BLIPPretrain
    from ptp_vlp.tokenizer import load_tokenizer
    from ptp_vlp.train import pretrain
    from visioncore.config import load_config

    cfg_dict, data, method, seed = job
    torch.set_num_threads(1)
    AcceleratorState._reset_state(reset_partial_state=True)  # a worker may run several jobs
    GradientState._reset_state()
    out = Path(data).parent / "runs" / f"seed{seed}_{method}"
    done = out / "probe.json"
    if done.is_file():
        return json.loads(done.read_text())
    cfg_path = out.parent / f".seed{seed}_{method}.yaml"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(json.dumps(cfg_dict))  # JSON is YAML
    cfg = run_config(load_config(Config, cfg_path), Path(data), method, seed)
    start, cpu0 = time.time(), time.process_time()
    summary = pretrain(cfg, out, resume=True, show_progress=False)
    model = BLIPPretrain.from_pretrained(out / "model")
    result = probe_metrics(model, load_tokenizer(cfg.data.tokenizer), Path(data), cfg)
    result |= {
        "method": method,
        "seed": seed,
        "loss_ratio": {k: loss_ratio(v) for k, v in summary["losses"].items()},
        "prompt_truncated": summary["prompt_truncated"],
        "wall_s": time.time() - start,
        "cpu_s": time.process_time() - cpu0,
    }
    atomic_write_json(done, result)
    return result


def _aggregate(results: list[dict], seeds: list[int]) -> tuple[dict[str, float], dict[str, dict]]:
    per_seed: dict[str, dict] = {}
    for seed in seeds:
        row: dict[str, float] = {}
        for r in results:
            if r["seed"] != seed:
                continue
            m = r["method"]
            if m == "ceiling":
                row["pos_r1_ceiling"] = r["pos_r1"]
                continue
            for name in ("fill_acc", "pos_r1", "pos_r1_itm", "pos_acc_lm", "cls_r1"):
                row[f"{name}_{m}"] = r[name]
        per_seed[str(seed)] = row
    metrics: dict[str, float] = {}
    for key in KEYS:
        if key.startswith(("loss_ratio", "prompt_truncated")):
            continue
        values = [row[key] for row in per_seed.values() if key in row]
        metrics[key] = float(np.mean(values))
    for name in ("ita", "itm", "lm"):
        metrics[f"loss_ratio_{name}"] = max(r["loss_ratio"][name] for r in results)
    metrics["prompt_truncated"] = int(sum(r["prompt_truncated"] for r in results))
    return {k: metrics[k] for k in KEYS}, per_seed


def evaluate_gates(metrics: dict[str, float]) -> dict[str, bool]:
    return {name: bool(check(metrics)) for name, check in GATES}


def run_repro(cfg: Config, out_dir: str | Path, *, print_table: bool = True) -> dict[str, float]:
    """Write the data, run every (seed, method) on ``cfg.repro.workers`` processes, write ``metrics.json`` (seed
    means; ``pos_r1_ceiling`` from the first seed), ``per_seed.json``, ``runs.json`` and ``gates.json``."""
    out = Path(out_dir)
    r = cfg.repro
    data = out / "data"
    spec = SyntheticSpec(
        n_train=r.n_train,
        n_test=r.n_test,
        image_size=cfg.model.image_size,
        position_rate=r.position_rate,
        seed=r.data_seed,
    )
    marker = data / "synthetic.json"
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if any(saved.get(k) != v for k, v in dataclasses.asdict(spec).items() if not isinstance(v, tuple)):
            raise ValueError(f"{data}: holds ShapesGrid data of another spec; use a new --out")
    else:
        write_synthetic(data, spec)
    runs_cfg = out / "config.yaml"
    if runs_cfg.is_file() and runs_cfg.read_text() != _yaml(cfg):
        raise ValueError(f"{out}: holds a repro of another config; use a new --out")
    save_config(cfg, runs_cfg)
    jobs = [(to_dict(cfg), str(data), m, s) for s in r.seeds for m in METHODS]
    jobs.insert(0, (to_dict(cfg), str(data), "ceiling", r.seeds[0]))
    start = time.time()
    if r.workers == 1:
        results = [_one_run(j) for j in jobs]
    else:
        with mp.get_context("spawn").Pool(r.workers, initializer=_single_thread) as pool:
            results = pool.map(_one_run, jobs, chunksize=1)
    metrics, per_seed = _aggregate(results, r.seeds)
    gates = evaluate_gates(metrics)
    atomic_write_json(out / "per_seed.json", per_seed)
    atomic_write_json(out / "runs.json", results)
    atomic_write_json(
        out / "gates.json",
        {
            "gates": gates,
            "all_pass": all(gates.values()),
            "wall_s": time.time() - start,
            "cpu_s_workers": sum(x["cpu_s"] for x in results),
        },
    )
    atomic_write_json(out / "metrics.json", metrics)
    if print_table:
        print(format_table(metrics, per_seed, gates))
    return metrics


def _single_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"


def _yaml(cfg: Config) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))


def format_table(metrics: dict, per_seed: dict, gates: dict[str, bool]) -> str:
    seeds = list(per_seed)
    lines = [f"{'metric':<22}{'mean':>8}" + "".join(f"{'seed ' + s:>9}" for s in seeds)]
    for key, value in metrics.items():
        cells = "".join(f"{per_seed[s][key]:>9.3f}" if key in per_seed[s] else f"{'':>9}" for s in seeds)
        lines.append(f"{key:<22}{value:>8.3f}{cells}")
    lines.append("")
    lines += [f"{'PASS' if ok else 'FAIL'}  {name}" for name, ok in gates.items()]
    return "\n".join(lines)
