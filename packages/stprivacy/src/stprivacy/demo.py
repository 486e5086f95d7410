"""``stprivacy demo``: a <= 40 s smoke check on tiny synthetic videos (the effect itself is measured by ``repro``).

Writes the synthetic data set in the HMDB51 layouts, trains the init phase briefly (sparsification), and compares a
fresh action model and fresh attackers on raw vs sparsified test videos. Labelled a smoke check: the numbers are
printed, nothing is claimed from a run this short.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from visioncore.config import load_config
from visioncore.files import atomic_write_json

from .config import Config
from .data import Normalizer
from .data.synthetic import write_synthetic
from .evaluate import anonymize_set, protocol
from .models import STPrivacy
from .repro import STATIC, _load
from .train import new_recognizer, train

__all__ = ["demo"]


def demo(out: Path, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> dict:
    start, cpu0 = time.time(), time.process_time()
    cfg: Config = load_config(Config, "tiny", package="stprivacy")
    cfg = dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, batch_size=16, init_steps=40, log_every=20, save_every=40),
        eval=dataclasses.replace(cfg.eval, steps=50, batch_size=16, attackers=["mlp"]),
    )
    write_synthetic(out / "data", 200, 80, seed=0)
    train_clips, test_clips, classes, masks = _load(cfg, out / "data")
    train(cfg, out / "run", "init", datasets=(train_clips, test_clips, classes), cpu=True)
    anon = STPrivacy.from_pretrained(out / "run" / "init" / "model")
    norm = Normalizer(cfg.data.mean, cfg.data.std)
    metrics: dict = {"kind": "smoke check (tiny, 40 steps); the acceptance experiment is `stprivacy repro`"}
    for name, model in (("raw", None), ("sparse", anon)):
        tr, te = (
            anonymize_set(model, c, norm, device=device, dtype=dtype) for c in (train_clips, test_clips)
        )
        res = protocol(
            tr,
            te,
            train_clips,
            test_clips,
            make_model=lambda family, n: new_recognizer(cfg, family, n),
            action_family=cfg.eval.action,
            attackers=cfg.eval.attackers,
            num_classes=len(classes),
            attribute_names=cfg.data.attribute_names,
            norm=norm,
            steps=cfg.eval.steps,
            lr=cfg.eval.lr,
            batch_size=cfg.eval.batch_size,
            seed=0,
            device=device,
            dtype=dtype,
        )
        ap = res["worst"]["ap"]
        metrics[f"top1_{name}"] = res["top1"]
        metrics[f"ap_static_{name}"] = sum(ap[cfg.data.attribute_names[i]] for i in STATIC) / len(STATIC)
        if model is not None:
            metrics["kept_fraction"] = float(te.keep.mean())
    metrics["wall_s"] = time.time() - start
    metrics["cpu_s"] = time.process_time() - cpu0
    atomic_write_json(out / "metrics.json", metrics)
    return metrics
