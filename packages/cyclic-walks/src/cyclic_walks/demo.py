"""``cyclic-walks demo``: synthetic scenes -> a short training run -> evaluation (both protocols) -> a mask figure.

A smoke check of the whole pipeline within 40 s on a CPU: at this budget (120 steps) the walk loss falls but the
slots do not yet group objects (FG-ARI needs ~1000 steps at this scale); the paper's effect is shown by ``repro``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from cyclic_walks.config import get_config
from visioncore.files import atomic_write_json

KIND = "smoke check (pipeline runs, walk loss falls; grouping needs ~1000 steps: see repro)"


def run_demo(
    out: Path, overrides: list[str] | tuple[str, ...] = (), device: torch.device | None = None
) -> dict:
    """Write data, train the tiny config, evaluate before/after and save ``masks.png``; returns ``metrics.json``."""
    from cyclic_walks.cli import eval_dataset, visualize
    from cyclic_walks.data import write_synthetic_voc
    from cyclic_walks.evaluate import evaluate
    from cyclic_walks.models import CyclicWalks, build_backbone
    from cyclic_walks.train import build_model, train

    start = time.time()
    device = device or torch.device("cpu")
    root = write_synthetic_voc(out / "data", num_train=96, num_val=32, size=64, seed=0)
    cfg = get_config("tiny", [f"data.root={root}", *overrides])
    backbone = build_backbone(cfg.backbone)
    dataset = eval_dataset(cfg)
    features, grid = backbone(torch.stack([dataset[i]["image"] for i in range(len(dataset))]))
    torch.manual_seed(cfg.train.seed)
    untrained = build_model(cfg, backbone.feature_dim)
    with torch.no_grad():
        torch.manual_seed(0)
        loss_init = untrained.loss(features, grid)[0].item()
    metrics: dict[str, float | str] = {
        "kind": KIND,
        "val_loss_init": loss_init,
        "fg_ari_init": float(
            evaluate(untrained, backbone, dataset, protocol="clean", device=device)["fg_ari"]
        ),
    }
    train(cfg, out / "run", backbone=backbone)
    model = CyclicWalks.from_pretrained(out / "run" / "model")
    with torch.no_grad():
        torch.manual_seed(0)
        metrics["val_loss_trained"] = model.loss(features, grid)[0].item()
    clean = evaluate(model, backbone, dataset, protocol="clean", device=device)
    official = evaluate(model, backbone, dataset, protocol="official", device=device)
    metrics.update(
        fg_ari_trained=float(clean["fg_ari"]),
        ari_trained=float(clean["ari"]),
        mbo_trained=float(clean["mbo"]),
        fg_ari_official=float(official["fg_ari"]),
        steps=float(cfg.train.max_steps),
    )
    visualize(model, backbone, dataset, out / "masks.png", device=device)
    metrics["seconds"] = time.time() - start
    atomic_write_json(out / "metrics.json", metrics)
    return metrics
