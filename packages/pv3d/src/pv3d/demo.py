"""``pv3d demo``: <= 40 s on toy heads. The motion effect (a shared z_motion * t makes videos temporally consistent,
redrawing it per frame does not) on an untrained tiny generator, the renderer's camera control against the writer's
analytic render, and a smoke check of the training loop (a few iterations, finite losses, saved model)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from pv3d.config import get_config

__all__ = ["demo"]


def demo(out: Path) -> dict[str, float | str]:
    from pv3d.data.synthetic import load_heads, make_toy_heads
    from pv3d.repro import real_multiview_metrics, render_gate, temporal_metrics
    from pv3d.train import build_nets, train
    from visioncore.files import atomic_write_json

    start = time.perf_counter()
    torch.set_num_threads(1)
    data = out / "data"
    make_toy_heads(data, num_clips=6, num_frames=16, resolution=32, seed=0)
    cfg = get_config(
        "tiny", [f"data.root={data}", "train.steps=3", "train.save_every=3", "train.log_every=3"]
    )
    _, g, _, _ = build_nets(cfg, 0)
    result: dict[str, float | str] = {
        "kind": "effect on an untrained tiny generator + training smoke check",
    }
    result.update(temporal_metrics(g, 8, 0))
    result.update(real_multiview_metrics(list(load_heads(data).values()), 32))
    result.update(render_gate(cfg.generator.plane_channels, cfg.generator.decoder_hidden))
    logs = train(cfg, out / "train", device=torch.device("cpu"))
    result["smoke_losses_finite"] = float(all(torch.isfinite(torch.tensor(v)) for v in logs.values()))
    result["seconds"] = time.perf_counter() - start
    atomic_write_json(out / "metrics.json", result)
    return result
