"""``stprivacy bench``: one adversarial training step (anonymizer + action + privacy recognizer) at paper size and at
tiny size, and the test-time anonymize + recognize speed-up of pruning (alpha 0.7, 128 tokens, over alpha 1.0, 392)."""

from __future__ import annotations

import resource
import time

import torch
import torch.nn.functional as F

from .losses import privacy_loss, sparsity_loss
from .models import STPrivacy, VideoViT, freeze_for_anonymization

__all__ = ["bench"]

PAPER = dict(img_size=112, num_frames=16, tubelet=(2, 16, 16), embed_dim=384, depth=12, num_heads=6)
TINY = dict(img_size=32, num_frames=8, tubelet=(2, 8, 8), embed_dim=48, depth=6, num_heads=3)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _adversarial_step(size: dict, locs: tuple, batch: int, device: torch.device, dtype: torch.dtype) -> dict:
    anon = freeze_for_anonymization(STPrivacy(**size, pruning_loc=locs, keep_ratio=0.7)).to(device, dtype)
    vit = {k: v for k, v in size.items()}
    action = VideoViT(51, **vit).to(device, dtype)
    priv = VideoViT(5, **vit).to(device, dtype)
    opt = torch.optim.AdamW([p for p in anon.parameters() if p.requires_grad])
    rec_opt = torch.optim.AdamW([*action.parameters(), *priv.parameters()])
    x = torch.randn(
        batch, 3, size["num_frames"], size["img_size"], size["img_size"], device=device, dtype=dtype
    )
    y = torch.randint(0, 51, (batch,), device=device)
    p = torch.randint(0, 2, (batch, 5), device=device)

    def step() -> None:
        out = anon(x, decide="topk")
        loss = 2.0 * sparsity_loss(out.decisions, 0.7) + 0.5 * F.cross_entropy(
            action.forward_masked(out.video, out.keep).float(), y
        )
        loss = loss + 0.5 * privacy_loss(priv.forward_masked(out.video, out.keep).float(), p)
        opt.zero_grad()
        loss.backward()
        opt.step()
        v = out.video.detach()
        r = F.cross_entropy(action.forward_masked(v, out.keep).float(), y)
        r = r + F.binary_cross_entropy_with_logits(priv.forward_masked(v, out.keep).float(), p.float())
        rec_opt.zero_grad()
        r.backward()
        rec_opt.step()

    step()  # warm-up
    _sync(device)
    t = time.perf_counter()
    step()
    _sync(device)
    return {"step_s": time.perf_counter() - t, "batch": batch, "peak_memory_mb": _peak_mb(device)}


@torch.no_grad()
def _throughput(
    size: dict, locs: tuple, alpha: float, batch: int, device: torch.device, dtype: torch.dtype, reps: int
) -> float:
    anon = STPrivacy(**size, pruning_loc=locs, keep_ratio=0.7).to(device, dtype).eval()
    action = VideoViT(51, **size).to(device, dtype).eval()
    x = torch.randn(
        batch, 3, size["num_frames"], size["img_size"], size["img_size"], device=device, dtype=dtype
    )
    res = anon.anonymize(x, alpha)
    action.forward_aligned(res.video, res.index)
    _sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        res = anon.anonymize(x, alpha)
        action.forward_aligned(res.video, res.index)
    _sync(device)
    return batch * reps / (time.perf_counter() - t)


def bench(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, paper: bool = True) -> dict:
    device = torch.device(device)
    result: dict = {"device": str(device), "dtype": str(dtype).removeprefix("torch.")}
    sizes = {"tiny": (TINY, (1, 2, 3), 8, 3)}
    if paper:
        sizes["paper"] = (
            PAPER,
            (3, 6, 9),
            2 if device.type == "cpu" else 8,
            2 if device.type == "cpu" else 10,
        )
    for name, (size, locs, batch, reps) in sizes.items():
        entry = {"adversarial_step": _adversarial_step(size, locs, batch, device, dtype)}
        pruned = _throughput(size, locs, 0.7, batch, device, dtype, reps)
        full = _throughput(size, locs, 1.0, batch, device, dtype, reps)
        entry.update(
            {
                "videos_per_s_alpha_0.7": pruned,
                "videos_per_s_alpha_1.0": full,
                "pruned_speedup": pruned / full,
            }
        )
        result[name] = entry
    return result
