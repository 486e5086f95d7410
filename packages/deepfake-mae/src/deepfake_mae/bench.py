"""`deepfake-mae bench`: pretraining-step and detector-step throughput (samples/s), achieved FLOP/s (counted with
torch's FlopCounterMode) as a fraction of the machine's fp32 matmul rate measured in the same run, and peak memory,
per config, as JSON."""

from __future__ import annotations

import resource
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from deepfake_mae.config import detector_kwargs, get_config, mae_kwargs
from deepfake_mae.data.synthetic import landmarks_of, random_identity
from deepfake_mae.losses import part_margin_loss
from deepfake_mae.models.detector import DeepfakeDetector, weight_decay_groups
from deepfake_mae.models.mae import FacePartMAE
from deepfake_mae.models.masking import facial_part_mask, part_boxes, patch_membership


def _boxes(img_size: int, count: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.stack([part_boxes(landmarks_of(random_identity(rng)) * img_size) for _ in range(count)])


def _peak_memory_mib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB (process peak RSS)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(step, steps: int, device: torch.device) -> tuple[float, float]:
    """(seconds per step, FLOPs per step): one counted step (also the warm-up), then `steps` timed ones."""
    with FlopCounterMode(display=False) as counter:
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps, float(counter.get_total_flops())


def matmul_gflops(device: torch.device, size: int = 1024, repeats: int = 3) -> float:
    """The machine's fp32 matmul rate (GFLOP/s, best of ``repeats``) with a large ``torch.mm`` on ``device``."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def bench_config(
    name: str, batch_size: int, steps: int, clip_len: int = 2, device: torch.device | None = None
) -> dict:
    device = device or torch.device("cpu")
    cfg = get_config(name)
    torch.manual_seed(0)
    size = cfg.model.img_size
    mae = FacePartMAE(**mae_kwargs(cfg.model)).to(device)
    opt = torch.optim.AdamW(weight_decay_groups(mae, 0.05), lr=1e-4, betas=(0.9, 0.95))
    images = torch.randn(batch_size, 3, size, size, device=device)
    boxes = _boxes(size, batch_size).to(device)
    member = patch_membership(boxes, mae.grid, mae.patch_size, cfg.masking.part_margin)
    generator = torch.Generator(device=device).manual_seed(0)

    def pretrain_step() -> None:
        mask, part = facial_part_mask(member, cfg.masking.mask_ratio, generator=generator)
        mae.loss(images, mask, part, cfg.masking.part_loss_weight).backward()
        opt.step()
        opt.zero_grad()

    pre_s, pre_flops = _measure(pretrain_step, steps, device)
    det = DeepfakeDetector(**detector_kwargs(cfg)).to(device)
    det_opt = torch.optim.AdamW([p for p in det.parameters() if p.requires_grad], lr=1e-4)
    frames = torch.randn(batch_size, clip_len, 3, size, size, device=device)
    clip_boxes = boxes[:, None].expand(-1, clip_len, -1, -1)
    labels = torch.arange(batch_size, device=device) % 2

    def detector_step() -> None:
        out = det(frames, clip_boxes, generator=generator)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out["logit"], labels.float())
        disc = part_margin_loss(out["discrepancy"], labels, cfg.detector.margin, cfg.detector.margin_loss)
        (loss + disc).backward()
        det_opt.step()
        det_opt.zero_grad()

    det_s, det_flops = _measure(detector_step, steps, device)
    peak_rate = matmul_gflops(device)
    pretrain_rate = pre_flops / pre_s / 1e9
    return {
        "img_size": size,
        "batch_size": batch_size,
        "detector_clip_len": clip_len,
        "pretrain_samples_per_s": batch_size / pre_s,
        "pretrain_gflop_per_step": pre_flops / 1e9,
        "pretrain_achieved_gflops": pretrain_rate,
        "matmul_fp32_gflops": peak_rate,
        "pretrain_fraction_of_matmul_rate": pretrain_rate / peak_rate,
        "detector_clips_per_s": batch_size / det_s,
        "detector_gflop_per_step": det_flops / 1e9,
        "detector_achieved_gflops": det_flops / det_s / 1e9,
        "peak_memory_mib": _peak_memory_mib(),
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


def run_bench(
    configs: list[str], batch_size: int = 2, steps: int = 2, device: torch.device | None = None
) -> dict[str, dict]:
    return {name: bench_config(name, batch_size, steps, device=device) for name in configs}
