"""``ptp-vlp bench``: pretraining step time and peak memory with and without PTP prompts (text padded to 30 tokens
either way, so the ratio is about 1: PTP adds no parameters and no compute), and prompt generation cost."""

from __future__ import annotations

import random
import resource
import statistics
import time
from typing import Any

import torch

from ptp_vlp.models.blip import BLIPConfig, BLIPPretrain
from ptp_vlp.prompts import ptp_text

__all__ = ["run_bench"]

SHAPES = {
    "pretrain_4m": dict(vit="base", image_size=224, patch_size=16, queue_size=57600),
    "tiny": dict(
        vit="tiny", image_size=48, patch_size=8, vision_width=32, vision_depth=1, vision_heads=2, vocab_size=40,
        text_width=32, text_depth=1, text_heads=2, text_intermediate=64, max_text_positions=32, embed_dim=16,
        queue_size=16, cls_token_id=2, sep_token_id=3, bos_token_id=38, enc_token_id=39,
    ),
}  # fmt: skip
BATCH = {"pretrain_4m": 2, "tiny": 8}


def _texts(batch: int, prompt: bool, rng: random.Random) -> list[list[int]]:
    """Word ids of captions (12 words) with or without a 7-word prompt, padded to 30 tokens either way."""
    out = []
    for _ in range(batch):
        n = 12 + (7 if prompt else 0)
        out.append([2] + [rng.randrange(5, 30) for _ in range(n)] + [3] + [0] * (30 - n - 2))
    return out


def _step_times(model: BLIPPretrain, batch: int, device, dtype, steps: int) -> tuple[float, float]:
    """Median step time (s) without and with prompts, the two interleaved so that load changes hit both alike."""
    cfg = model.config
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    rng = random.Random(0)
    images = torch.randn(batch, 3, cfg.image_size, cfg.image_size, device=device)
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(steps + 1):
        for prompt in (False, True):
            ids = torch.tensor(_texts(batch, prompt, rng), device=device)
            mask = (ids != 0).long()
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                loss = sum(model(images, ids, mask).values())
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:  # the first round warms up
                times[prompt].append(time.perf_counter() - start)
    return statistics.median(times[False]), statistics.median(times[True])


def _peak_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bench(device: torch.device, dtype: torch.dtype, *, quick: bool = False) -> dict[str, Any]:
    torch.manual_seed(0)
    result: dict[str, Any] = {"device": str(device), "dtype": str(dtype).removeprefix("torch.")}
    rng = random.Random(0)
    boxes, names = [[10, 10, 50, 50], [60, 20, 90, 40]], ["chair", "table"]
    n = 20000
    start = time.perf_counter()
    for _ in range(n):
        ptp_text("a white table with two chairs in a room", boxes, names, 100, 100, rng=rng)
    result["prompt_us_per_sample"] = (time.perf_counter() - start) / n * 1e6
    for name in ("tiny",) if quick else ("tiny", "pretrain_4m"):
        model = BLIPPretrain(BLIPConfig(**SHAPES[name])).to(device).train()
        plain, prompted = _step_times(model, BATCH[name], device, dtype, steps=10 if name == "tiny" else 3)
        result[name] = {
            "batch": BATCH[name],
            "step_s_plain": plain,
            "step_s_ptp": prompted,
            "ptp_step_time_ratio": prompted / plain,
            "images_per_s_ptp": BATCH[name] / prompted,
            "peak_memory_mb": _peak_mb(device),
        }
        del model
    result["ptp_step_time_ratio"] = result["tiny" if quick else "pretrain_4m"]["ptp_step_time_ratio"]
    return result
