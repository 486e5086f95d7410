"""``cyclic-walks bench``: one training step of SACRW against a slot-attention + MLP-decoder (DINOSAUR-style)
baseline on the same frozen features: time and memory, and their ratio (the paper's efficiency claim).

Memory is the bytes of tensors autograd saves for the backward pass (device-independent), plus the CUDA peak when
a GPU is used. Timings are medians of ``steps`` steps after one warm-up step.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from cyclic_walks.losses import cyclic_walk_losses, feature_reconstruction_loss
from cyclic_walks.models import BackboneConfig, CyclicWalks, DecoderBaseline, build_backbone

SETTINGS = {
    # the paper's setting: DINO ViT-S/8 at 224 (random weights: timing only), 7 slots (COCO), a small batch
    "paper": {
        "backbone": BackboneConfig(kind="vit_small", patch_size=8),
        "image_size": 224,
        "slots": 7,
        "batch": 2,
    },
    # the tiny config: colour-histogram tokens at stride 8 on 64 px images
    "tiny": {
        "backbone": BackboneConfig(
            kind="colour_histogram", patch_size=8, histogram_bins=3, input_norm="unit"
        ),
        "image_size": 64,
        "slots": 5,
        "batch": 16,
    },
}


def saved_tensor_bytes(fn) -> tuple[int, torch.Tensor]:
    """Run ``fn`` (a forward returning a loss) and count the bytes autograd keeps for backward."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn()
    return total, loss


def time_steps(model: nn.Module, loss_fn, steps: int, device: torch.device) -> dict[str, float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=4e-4)
    times, saved = [], 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        saved, loss = saved_tensor_bytes(loss_fn)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:  # the first step warms up kernels and allocators
            times.append(time.perf_counter() - start)
    out = {"step_seconds": float(np.median(times)), "saved_activation_mib": saved / 2**20}
    out["parameters"] = float(sum(p.numel() for p in model.parameters()))
    if device.type == "cuda":
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def bench_setting(name: str, steps: int = 3, device: torch.device | None = None) -> dict[str, object]:
    spec = SETTINGS[name]
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backbone = build_backbone(spec["backbone"]).to(device)
    torch.manual_seed(0)
    images = torch.rand(spec["batch"], 3, spec["image_size"], spec["image_size"], device=device)
    start = time.perf_counter()
    features, grid = backbone(images)
    backbone_seconds = time.perf_counter() - start
    dim, tokens, slots = features.shape[-1], features.shape[1], spec["slots"]
    walks = CyclicWalks(dim, slots, mlp_hidden=dim).to(device)
    decoder = DecoderBaseline(dim, slots, tokens, mlp_hidden=dim, decoder_hidden=4 * dim).to(device)
    mean, std = features.mean((0, 1)), features.std((0, 1)).clamp_min(1e-6)
    target = (features - mean) / std

    def walks_loss() -> torch.Tensor:
        parts = cyclic_walk_losses(features, walks(features))
        return walks.alpha * parts.wpw + walks.beta * parts.pwp

    def decoder_loss() -> torch.Tensor:
        return feature_reconstruction_loss(decoder(features)[1], target)

    result_walks = time_steps(walks, walks_loss, steps, device)
    result_decoder = time_steps(decoder, decoder_loss, steps, device)
    return {
        "device": str(device),
        "batch": spec["batch"],
        "tokens": tokens,
        "feature_dim": dim,
        "slots": slots,
        "backbone_forward_seconds": backbone_seconds,
        "cyclic_walks": result_walks,
        "decoder_baseline": result_decoder,
        "step_time_ratio": result_walks["step_seconds"] / result_decoder["step_seconds"],
        "activation_memory_ratio": result_walks["saved_activation_mib"]
        / result_decoder["saved_activation_mib"],
    }


def run_bench(settings: list[str], steps: int = 3, device: torch.device | None = None) -> dict[str, object]:
    return {name: bench_setting(name, steps, device) for name in settings}
