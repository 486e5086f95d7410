"""``seq-gan bench``: tokenizer step time and peak memory (phase 1 vs 2), parameter counts beside the paper's, and
MaskGIT (12 rounds) vs AR (one step per token) sampling time; the paper's 256 px config and the tiny one. JSON."""

from __future__ import annotations

import resource
import time

import torch

from seq_gan.ar import ARTransformer
from seq_gan.losses import hinge_d_loss, hinge_g_loss, tokenizer_objective
from seq_gan.maskgit import MaskGIT
from seq_gan.models.discriminator import PatchDiscriminator
from seq_gan.models.perceptual import SmallPerceptualNet, VGG16Perceptual
from seq_gan.models.vqgan import VQTokenizer, count_parameters

PAPER_PARAMS_M = {"baseline_conv_vq": 54.5, "attention_x2": 61.4, "seq_gan_final": 57.9}
TINY = dict(resolution=16, ch=8, ch_mult=[1, 2, 2], num_res_blocks=0, z_channels=8, num_codes=32, code_dim=8,
            norm_groups=4, hit_window=2)  # fmt: skip
PAPER = dict(resolution=256)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (Linux: KiB)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step_time(
    tok: VQTokenizer, perceptual, batch: int, res: int, alpha: float, device, dtype, steps: int
) -> float:  # noqa: ANN001
    disc = PatchDiscriminator(ndf=64 if res >= 64 else 8, n_layers=3 if res >= 64 else 2).to(device)
    opt_g = torch.optim.Adam([p for p in tok.parameters() if p.requires_grad], lr=1e-4)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, res, res, device=device) * 2 - 1
    low, sem = perceptual.tap_names, (perceptual.tap_names[-1], "logits")
    times = []
    for i in range(steps + 1):
        _sync(device)
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss, _, x_hat, _ = tokenizer_objective(tok, perceptual, x, alpha=alpha, gamma=0.01 if alpha else 0.0,
                                                    low_layers=low, sem_layers=sem)  # fmt: skip
            loss = loss + 0.1 * hinge_g_loss(disc(x_hat))
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        d_loss = hinge_d_loss(disc(x), disc(x_hat.detach()))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        _sync(device)
        if i:  # the first step warms up
            times.append(time.perf_counter() - t)
    return sum(times) / len(times)


def _tokenizer_bench(kwargs: dict, perceptual, batch: int, device, dtype, steps: int) -> dict:  # noqa: ANN001
    torch.manual_seed(0)
    p1 = VQTokenizer(**kwargs).to(device).train()
    res = p1.resolution
    t1 = _step_time(p1, perceptual, batch, res, 1.0, device, dtype, steps)
    m1 = _peak_mb(device)
    p2 = p1.enhanced().to(device).train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t2 = _step_time(p2, perceptual, batch, res, 0.0, device, dtype, steps)
    m2 = _peak_mb(device)
    return {
        "resolution": res,
        "batch": batch,
        "phase1_step_s": t1,
        "phase2_step_s": t2,
        "phase2_over_phase1": t2 / t1,
        "peak_mem_mb_phase1": m1,
        "peak_mem_mb_phase2": m2,
        "params_m_phase1": count_parameters(p1) / 1e6,
        "params_m_phase2": count_parameters(p2) / 1e6,
        "params_m_encoder": count_parameters(p1.encoder) / 1e6,
        "params_m_decoder_conv": count_parameters(p1.decoder) / 1e6,
        "params_m_decoder_enhanced": count_parameters(p2.decoder) / 1e6,
    }


@torch.no_grad()
def _sampling_bench(num_codes: int, grid: int, dim: int, depth: int, heads: int, device, batch: int) -> dict:  # noqa: ANN001
    kwargs = dict(
        num_codes=num_codes, grid=grid, num_classes=10, dim=dim, depth=depth, heads=heads, dropout=0.0
    )
    labels = torch.arange(batch, device=device) % 10
    out = {"transformer_params_m": count_parameters(MaskGIT(**kwargs)) / 1e6, "batch": batch}
    for name, model in (("maskgit", MaskGIT(**kwargs)), ("ar", ARTransformer(**kwargs))):
        model = model.to(device).eval()
        _sync(device)
        t = time.perf_counter()
        model.sample(labels, generator=torch.Generator(device=device).manual_seed(0))
        _sync(device)
        out[f"{name}_sampling_s"] = time.perf_counter() - t
    out["ar_over_maskgit_sampling"] = out["ar_sampling_s"] / out["maskgit_sampling_s"]
    return out


def run_bench(
    paper: bool = True, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> dict:
    device = device or torch.device("cpu")
    result = {
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "paper_params_m": PAPER_PARAMS_M,
    }
    small = SmallPerceptualNet([8, 16, 32, 32]).freeze().to(device)
    result["tiny"] = _tokenizer_bench(TINY, small, 8, device, dtype, steps=3)
    result["tiny_sampling"] = _sampling_bench(32, 4, 32, 2, 4, device, batch=4)
    if paper:  # 256 px, batch 4, VGG16 (random weights: timing only) + GAN
        vgg = VGG16Perceptual(None).to(device)
        result["paper"] = _tokenizer_bench(
            PAPER, vgg, 4, device, dtype, steps=1 if device.type == "cpu" else 5
        )
        # a reduced transformer on 16x16 tokens keeps the CPU bench short; the ratio is what matters
        depth, dim = (2, 256) if device.type == "cpu" else (24, 768)
        result["paper_sampling"] = _sampling_bench(
            1024, 16, dim, depth, 8 if dim == 256 else 16, device, batch=2
        )
        result["paper_sampling"]["note"] = (
            f"{depth} layers x d {dim} (AR without a KV cache: recomputes the prefix)"
        )
    return result
