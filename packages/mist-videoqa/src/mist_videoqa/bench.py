"""``bench``: one training step at the AGQA size (2 ISTA, topk 2, topj 12, 134 tokens, BERT-base with random
weights), MIST against the same transformer attending densely over all 512 regions (550 tokens): time, FLOPs
(``torch.utils.flop_counter``, forward + backward) and peak memory, with the MIST/dense ratios."""

from __future__ import annotations

import resource
import time
from dataclasses import replace
from typing import Any

import torch

from mist_videoqa.models.config import MISTConfig
from mist_videoqa.models.mist import MIST
from mist_videoqa.train import qa_loss

__all__ = ["bench"]


def _inputs(cfg: MISTConfig, batch: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "video": torch.randn(batch, cfg.num_frames, cfg.num_regions + 1, cfg.feature_dim, generator=g).to(
            device, dtype
        ),
        "q_feat": torch.randn(batch, cfg.feature_dim, generator=g).to(device, dtype),
        "question_ids": torch.randint(5, cfg.bert_vocab_size, (batch, 12), generator=g).to(device),
        "question_mask": torch.ones(batch, 12, dtype=torch.long, device=device),
    }


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return (
        int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    )  # process high-water mark (Linux: KiB)


def _step(
    cfg: MISTConfig, batch: int, device: torch.device, dtype: torch.dtype, repeats: int
) -> dict[str, Any]:
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = MIST(cfg).to(device, dtype).train()
    answers = torch.randint(5, cfg.bert_vocab_size, (cfg.num_answers, 4))
    model.set_answers(answers, torch.ones_like(answers))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    inputs = _inputs(cfg, batch, device, dtype)
    labels = torch.randint(0, cfg.num_answers, (batch,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        loss = qa_loss(model(**inputs).logits, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up (allocations, Adam state)
    with FlopCounterMode(display=False) as counter:
        step()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return {
        "tokens": cfg.seq_len,
        "step_s": sorted(times)[len(times) // 2],
        "flops": counter.get_total_flops(),
        "peak_bytes": _peak_bytes(device),
        "questions_per_s": batch / sorted(times)[len(times) // 2],
    }


def bench(
    device: torch.device,
    dtype: torch.dtype,
    *,
    batch: int = 8,
    config: MISTConfig | None = None,
    repeats: int = 3,
) -> dict[str, Any]:
    """JSON-able timings of MIST and of dense attention (``config``: the AGQA model unless given)."""
    cfg = config or MISTConfig()
    mist = _step(cfg, batch, device, dtype, repeats)
    dense = _step(replace(cfg, selector="dense"), batch, device, dtype, repeats)
    return {
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "batch": batch,
        "mist": mist,
        "dense": dense,
        "time_ratio": mist["step_s"] / dense["step_s"],
        "flops_ratio": mist["flops"] / dense["flops"],
        "peak_memory_ratio": mist["peak_bytes"] / dense["peak_bytes"],
        "note": "peak memory on CPU is the process high-water mark (ru_maxrss), so the dense ratio is a lower bound",
    }
