"""``darwinian-upgrades bench``: step time and peak memory of independent, BCT and DMU training steps, and ψ on N
stored gallery features against re-extracting N images (the "lightweight" upgrade claim). JSON to stdout."""

from __future__ import annotations

import resource
import time

import torch

from darwinian_upgrades import config as config_mod
from darwinian_upgrades.models import EmbeddingModel, ForwardAdapter, UpgradeModel
from darwinian_upgrades.train import compute_losses

SIZES = {  # backbone, width, embedding size, image side, classes
    "tiny": ("tiny", 1.0, 32, 16, 160),
    "paper": ("resnet50", 1.0, 512, 224, 1000),
}


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process high-water mark (Linux: KiB)


def _timed(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def bench_size(name: str, device: torch.device, dtype: str, *, batch_size: int, gallery: int) -> dict:
    backbone, width, dim, side, classes = SIZES[name]
    repeats = 20 if name == "tiny" else 3
    cfg = config_mod.load("tiny")
    autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(dtype)
    torch.manual_seed(0)
    old = EmbeddingModel(classes, backbone=backbone, width=width, embed_dim=dim).to(device)
    images = torch.randn(batch_size, 3, side, side, device=device)
    labels = torch.randint(0, classes, (batch_size,), device=device)
    out: dict = {"backbone": backbone, "image_size": side, "batch_size": batch_size, "embed_dim": dim}
    for role in ("independent", "bct", "dmu"):
        new = EmbeddingModel(classes, backbone=backbone, width=width, embed_dim=dim).to(device)
        pair = UpgradeModel(new, None if role == "independent" else old).train()
        opt = torch.optim.SGD(new.parameters(), lr=1e-3)

        def step(pair=pair, role=role, opt=opt) -> None:
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                losses = compute_losses(pair(images, labels), labels, role, cfg, pair)
            sum(losses.values()).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        out[f"{role}_step_s"] = _timed(step, device, repeats)
        out[f"{role}_peak_mib"] = _peak_mib(device)
    out["dmu_over_bct"] = out["dmu_step_s"] / out["bct_step_s"]
    out["bct_over_independent"] = out["bct_step_s"] / out["independent_step_s"]
    psi = ForwardAdapter(dim, dim).to(device).eval()
    feats = torch.randn(gallery, dim, device=device)
    gallery_images = torch.randn(min(gallery, 64), 3, side, side, device=device)
    old.eval()
    with torch.no_grad():
        psi_s = _timed(lambda: psi(feats), device, repeats)
        per_image = _timed(lambda: old.embed(gallery_images), device, 1) / gallery_images.shape[0]
    out["gallery_items"] = gallery
    out["psi_s"] = psi_s
    out["reextract_s"] = per_image * gallery
    out["backfill_cost_ratio"] = psi_s / out["reextract_s"]
    return out


def bench(
    sizes: list[str], device: torch.device, dtype: str, *, batch_size: int = 4, gallery: int = 256
) -> dict:
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise ValueError(f"--sizes: unknown size(s) {', '.join(unknown)} (known: {', '.join(SIZES)})")
    if batch_size < 1 or gallery < 1:
        raise ValueError("--batch-size and --gallery must be positive")
    return {
        "device": str(device),
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        **{s: bench_size(s, device, dtype, batch_size=batch_size, gallery=gallery) for s in sizes},
    }
