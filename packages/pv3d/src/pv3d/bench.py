"""``pv3d bench``: time and peak memory of one training iteration (Gmain + Dmain + amortised Greg/Dreg).

Also ``fastpath_speedup`` (reference ops / ``ops.set_backend("compile")``) and ``video_overhead`` (a PV3D iteration /
the same without motion layers and video D, i.e. EG3D).
"""

from __future__ import annotations

import contextlib
import resource
import time
from dataclasses import replace
from typing import Any

import torch

from pv3d import ops
from pv3d.cameras import pose_vector
from pv3d.config import Config, get_config

__all__ = ["bench"]


def _batch(cfg: Config, device: torch.device) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    b, s, gc = cfg.train.batch_size, cfg.generator.image_resolution, cfg.generator
    yaws = torch.rand(b * 2, generator=gen) * 0.7 - 0.35
    c = pose_vector(yaws).reshape(b, 2, 25)
    t = torch.rand(b, 2, generator=gen).sort(dim=1).values
    batch = {
        "frames": torch.rand(b, 2, 3, s, s, generator=gen) * 2 - 1,
        "t_real": t,
        "c_real": c,
        "z": torch.randn(b, gc.z_dim, generator=gen),
        "z_motion": torch.randn(b, gc.z_motion_dim, generator=gen),
        "t_fake": t,
        "c_fake": c,
        "c_cond": c,
    }
    return {k: v.to(device) for k, v in batch.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _SingleProcess:
    """The part of an ``Accelerator`` a training step uses, for one process and a chosen autocast dtype (accelerate's
    state is a process-wide singleton, so one process cannot time two precisions with it)."""

    num_processes = 1

    def __init__(self, device: torch.device, dtype: torch.dtype | None):
        self.device, self.dtype = device, dtype

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()


def _time_steps(cfg: Config, device: torch.device, dtype: torch.dtype | None, steps: int) -> dict[str, float]:
    """Seconds of a plain iteration, of a density-reg iteration and of an iteration with both regularisers."""
    from pv3d.train import _adam, build_nets, training_step

    acc = _SingleProcess(device, dtype)
    g, _, d_img, d_vid = build_nets(cfg, 0)
    for net in (g, d_img, d_vid):
        net.to(device)
    opts = (
        _adam(g.parameters(), cfg.train.g_lr, cfg.train.density_every),
        _adam(list(d_img.parameters()) + list(d_vid.parameters()), cfg.train.d_lr, cfg.train.r1_every),
    )
    batch = _batch(cfg, device)

    def run(step: int) -> float:
        _sync(device)
        start = time.perf_counter()
        training_step((g, d_img, d_vid), opts, batch, step, cfg, acc)
        _sync(device)
        return time.perf_counter() - start

    run(1)  # warm-up
    plain = min(run(1) for _ in range(steps))
    density = run(cfg.train.density_every) if cfg.train.r1_every != cfg.train.density_every else plain
    both = run(0)
    return {"plain": plain, "density": density, "both": both}


@torch.no_grad()
def _forward(cfg: Config, device: torch.device) -> torch.Tensor:
    """One generator + discriminator forward (const noise, fixed jitter), for comparing op backends."""
    from pv3d.losses import d_logits
    from pv3d.train import build_nets

    g, _, d_img, d_vid = build_nets(cfg, 0)
    g, d_img, d_vid = g.to(device), d_img.to(device), d_vid.to(device)
    batch = _batch(cfg, device)
    gc = cfg.generator
    jitter = torch.rand(
        gc.render_resolution**2, gc.n_coarse + gc.n_fine, generator=torch.Generator().manual_seed(1)
    )
    out = g(
        batch["z"], batch["z_motion"], batch["t_fake"], batch["c_cond"], noise_mode="const", jitter=jitter
    )
    li, lv = d_logits(d_img, d_vid, out["image"], out["image_raw"], batch["t_fake"], batch["c_fake"])
    return torch.cat([out["image"].flatten(), li.flatten(), lv.flatten()]).cpu()


def _amortised(t: dict[str, float], cfg: Config) -> float:
    greg = max(t["density"] - t["plain"], 0.0)
    dreg = max(t["both"] - t["plain"] - greg, 0.0)
    return t["plain"] + greg / cfg.train.density_every + dreg / cfg.train.r1_every


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (KiB on Linux)


def bench(config: str, overrides: list[str], device: torch.device, steps: int = 3) -> dict[str, Any]:
    """JSON-able timings of one training iteration at ``config`` on ``device``."""
    cfg = get_config(config, overrides)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    mixed = "fp16" if device.type == "cuda" else "bf16"
    fp32 = _amortised(_time_steps(cfg, device, None, steps), cfg)
    peak = _peak_mb(device)
    amp_dtype = torch.float16 if mixed == "fp16" else torch.bfloat16
    amp = _amortised(_time_steps(cfg, device, amp_dtype, steps), cfg)
    eg3d_cfg = replace(
        cfg, generator=replace(cfg.generator, motion_layers=False), train=replace(cfg.train, video_weight=0.0)
    )
    eg3d = _amortised(_time_steps(eg3d_cfg, device, None, steps), eg3d_cfg)
    ref_out = _forward(cfg, device)
    backend = ops.set_backend("compile")
    try:
        fast_out = _forward(cfg, device)
        fast = _amortised(_time_steps(cfg, device, None, steps), cfg) if backend == "compile" else None
        backend_after = ops.get_backend()  # "reference" again if compiling failed at the first call
    finally:
        ops.set_backend("reference")
    return {
        "config": config,
        "device": str(device),
        "batch": cfg.train.batch_size,
        "image_resolution": cfg.generator.image_resolution,
        "render_resolution": cfg.generator.render_resolution,
        "samples_per_ray": cfg.generator.n_coarse + cfg.generator.n_fine,
        "iteration_s_fp32": fp32,
        f"iteration_s_mixed_{mixed}": amp,
        "clips_per_s_fp32": cfg.train.batch_size / fp32,
        "peak_memory_mb_fp32": peak,
        "fastpath_speedup": fp32 / fast if fast is not None and backend_after == "compile" else None,
        "fastpath_max_abs_diff": float((ref_out - fast_out).abs().max()),
        "video_overhead": fp32 / eg3d,
    }
