"""`deepfake-mae bench`: pretraining-step and detector-step throughput (samples/s), achieved FLOP/s (counted with
torch's FlopCounterMode) and peak memory, per config, as JSON."""

from __future__ import annotations

import resource
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from deepfake_mae.config import detector_kwargs, get_config, mae_kwargs
from deepfake_mae.data.synthetic import landmarks_of, random_identity
from deepfake_mae.losses import discrepancy_margin_loss
from deepfake_mae.models.detector import DeepfakeDetector
from deepfake_mae.models.mae import FacePartMAE
from deepfake_mae.models.masking import facial_part_mask, part_boxes, patch_membership


def _boxes(img_size: int, count: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.stack([part_boxes(landmarks_of(random_identity(rng)) * img_size) for _ in range(count)])


def _peak_memory_mib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB (process peak RSS)


def _measure(step, steps: int) -> tuple[float, float]:
    """(seconds per step, FLOPs per step): one counted step, then `steps` timed ones."""
    with FlopCounterMode(display=False) as counter:
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps, float(counter.get_total_flops())


def bench_config(name: str, batch_size: int, steps: int, clip_len: int = 2) -> dict:
    cfg = get_config(name)
    torch.manual_seed(0)
    size = cfg.model.img_size
    mae = FacePartMAE(**mae_kwargs(cfg.model))
    opt = torch.optim.AdamW(mae.parameters(), lr=1e-4)
    images = torch.randn(batch_size, 3, size, size)
    member = patch_membership(_boxes(size, batch_size), mae.grid, mae.patch_size, cfg.masking.part_margin)

    def pretrain_step() -> None:
        mask, part = facial_part_mask(member, cfg.masking.mask_ratio)
        mae.loss(images, mask, part, cfg.masking.part_loss_weight).backward()
        opt.step()
        opt.zero_grad()

    pre_s, pre_flops = _measure(pretrain_step, steps)
    det = DeepfakeDetector(**detector_kwargs(cfg))
    det_opt = torch.optim.AdamW([p for p in det.parameters() if p.requires_grad], lr=1e-4)
    frames = torch.randn(batch_size, clip_len, 3, size, size)
    boxes = _boxes(size, batch_size)[:, None].expand(-1, clip_len, -1, -1)
    labels = torch.arange(batch_size) % 2

    def detector_step() -> None:
        out = det(frames, boxes)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out["logit"], labels.float())
        (loss + discrepancy_margin_loss(out["discrepancy"].mean(1), labels, cfg.detector.margin)).backward()
        det_opt.step()
        det_opt.zero_grad()

    det_s, det_flops = _measure(detector_step, steps)
    return {
        "img_size": size,
        "batch_size": batch_size,
        "detector_clip_len": clip_len,
        "pretrain_samples_per_s": batch_size / pre_s,
        "pretrain_gflop_per_step": pre_flops / 1e9,
        "pretrain_achieved_gflops": pre_flops / pre_s / 1e9,
        "detector_clips_per_s": batch_size / det_s,
        "detector_gflop_per_step": det_flops / 1e9,
        "detector_achieved_gflops": det_flops / det_s / 1e9,
        "peak_memory_mib": _peak_memory_mib(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
    }


def run_bench(configs: list[str], batch_size: int = 2, steps: int = 2) -> dict[str, dict]:
    return {name: bench_config(name, batch_size, steps) for name in configs}
