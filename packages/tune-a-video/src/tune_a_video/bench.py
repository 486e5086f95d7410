"""``tune-a-video bench``: one-shot tuning step time and peak memory, tiny config and SD-v1 shapes (random weights).

Compares SDPA with the plain softmax attention path and gradient checkpointing on/off. On CPU the SD-v1 shape uses
1 frame at 512x512 (latent 64x64); with a GPU, 24 frames. Peak memory is ``torch.cuda.max_memory_allocated`` on GPU;
on CPU (where no allocator statistics exist) it is null, and every row reports the activation memory autograd saves
for backward (:class:`SavedActivations`), the part that attention kind and gradient checkpointing change.
"""

from __future__ import annotations

import time

import torch

from .models import InflatedUNet3DConditionModel, freeze_for_tuning, set_attention_backend

TINY = dict(
    block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, attention_head_dim=4,
    down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
)  # fmt: skip


class SavedActivations:
    """Bytes of the tensors autograd saves for backward during a forward pass (deduplicated by storage).

    Inside gradient-checkpointed blocks the checkpoint's own hooks take over, so what they drop is not counted: this is
    the activation memory that checkpointing and the attention implementation change, measured exactly on any device.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        self.weights = {p.untyped_storage().data_ptr() for p in module.parameters()}  # not activations
        self.storages: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.weights:
            self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    @property
    def megabytes(self) -> float:
        return sum(self.storages.values()) / 2**20


def time_tuning_step(
    unet: InflatedUNet3DConditionModel,
    frames: int,
    latent_size: int,
    steps: int,
    use_sdpa: bool,
    checkpointing: bool,
) -> dict:
    device = unet.device
    set_attention_backend(unet, use_sdpa)
    if checkpointing:
        unet.enable_gradient_checkpointing()
    else:
        unet.disable_gradient_checkpointing()
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=3e-5)
    x = torch.randn(
        1, unet.config.in_channels, frames, latent_size, latent_size, device=device, dtype=unet.dtype
    )
    ctx = torch.randn(1, 77, unet.config.cross_attention_dim, device=device, dtype=unet.dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps + 1):  # the first step warms up
        saved = SavedActivations(unet)
        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            loss = unet(x, torch.tensor([500], device=device), ctx).sample.float().pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {
        "frames": frames, "latent": latent_size, "sdpa": use_sdpa, "gradient_checkpointing": checkpointing,
        "step_seconds": sum(times[1:]) / max(len(times) - 1, 1), "peak_memory_mb": peak,
        "saved_activations_mb": saved.megabytes,
    }  # fmt: skip


def run_bench(
    sd_frames: int | None = None,
    sd_size: int = 512,
    steps: int = 2,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict:
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sd_frames = sd_frames if sd_frames is not None else (24 if device.type == "cuda" else 1)
    results: dict = {
        "device": str(device), "dtype": str(dtype).removeprefix("torch."), "torch_threads": torch.get_num_threads(),
        "tiny": [], "sd_v1": [],
    }  # fmt: skip
    torch.manual_seed(0)
    tiny = InflatedUNet3DConditionModel(**TINY).to(device, dtype)
    freeze_for_tuning(tiny)
    for sdpa in (True, False):
        for ckpt in (False, True):
            results["tiny"].append(time_tuning_step(tiny, 8, 16, max(steps, 3), sdpa, ckpt))
    sd = InflatedUNet3DConditionModel().to(
        device, dtype
    )  # SD v1.x config, random weights (about 909 M parameters)
    freeze_for_tuning(sd)
    results["sd_v1_trainable_parameters"] = sum(p.numel() for p in sd.parameters() if p.requires_grad)
    results["sd_v1_total_parameters"] = sum(p.numel() for p in sd.parameters())
    for sdpa in (True, False):
        for ckpt in (False, True):
            results["sd_v1"].append(time_tuning_step(sd, sd_frames, sd_size // 8, steps, sdpa, ckpt))
    return results
