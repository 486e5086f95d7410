"""``demo``: a smoke check in under 40 s. Small synthetic "what color is the <key>?" videos (AGQA layout), the
tiny model with one ISTA layer trained briefly with MIST's selector and with random segments; writes metrics.json.

At this length the numbers are a smoke check (the full effect needs ``repro``'s 1,500 steps); the direction
expected is MIST's segment hit rate above random's 0.25.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from visioncore.files import atomic_write_json

__all__ = ["demo"]

STEPS = 150


def demo(out: Path, *, device: torch.device | None = None) -> dict[str, Any]:
    from mist_videoqa.config import load_train_config
    from mist_videoqa.data.dataset import build_dataset, load_tokenizer
    from mist_videoqa.data.synthetic import SyntheticSpec, make_synthetic
    from mist_videoqa.evaluate import evaluate_model
    from mist_videoqa.models.mist import MIST
    from mist_videoqa.train import train

    start = time.perf_counter()
    device = device or torch.device("cpu")
    out.mkdir(parents=True, exist_ok=True)
    make_synthetic(out / "data", "agqa", SyntheticSpec(n_train=400, n_val=0, n_test=200, dim=32, seed=0))
    metrics: dict[str, Any] = {"kind": "smoke check", "steps": STEPS, "chance": 1 / 8}
    for name, selector in (("mist", "learned"), ("random_selector", "random")):
        overrides = [
            f"data.root={out / 'data'}",
            "data.val_split=''",
            "model.n_ista=1",
            f"model.selector={selector}",
            "model.selector_init=tied",  # the repro's selector settings (README, Diagnosis)
            "model.region_keys=features",
        ]
        overrides += [
            f"train.steps={STEPS}",
            "train.batch_size=16",
            "train.lr=2e-3",
            f"train.save_every={STEPS}",
        ]
        cfg = load_train_config("tiny", overrides)
        tokenizer = load_tokenizer(cfg.data.vocab_file)
        stores: dict = {}
        train_ds = build_dataset(cfg.data, cfg.model, "train", tokenizer, stores)
        test_ds = build_dataset(cfg.data, cfg.model, "test", tokenizer, stores)
        train(cfg, out / name, device=device, datasets=(train_ds, None), log=lambda _: None)
        model = MIST.from_pretrained(out / name / "model").to(device)
        result, _ = evaluate_model(model, test_ds, batch_size=100, device=device)
        metrics[f"acc_{name}"] = result["acc"]
        metrics[f"segment_hit_rate_{name}"] = result["segment_hit_rate"]
        metrics[f"mode_{name}"] = result["mode"]
    metrics["wall_s"] = time.perf_counter() - start
    atomic_write_json(out / "metrics.json", metrics)
    return metrics
