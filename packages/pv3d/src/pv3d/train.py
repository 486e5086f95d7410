"""PV3D training loop (accelerate): Gmain, Greg (density, every 4), Dmain, Dreg (R1, every 16), EMA G.

Every random draw of step s on rank r comes from generators seeded by (seed, s, r), so a run resumed from a
checkpoint continues bit-exactly; gradients are averaged across processes by one all-reduce per phase (the
generator is called through several entry points per step, which DDP's forward hooks would not see).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from pv3d import ops
from pv3d.config import Config
from pv3d.data import VoxCelebDataset, sample_times
from pv3d.losses import blur_sigma, d_logits, density_reg, ema_beta, r1_penalty, swap_prob
from pv3d.models import ImageDiscriminator, TriPlaneGenerator, VideoDiscriminator
from visioncore.config import to_dict
from visioncore.files import atomic_write_json
from visioncore.training import CheckpointManager, check_finite, make_accelerator, save_final, should_save

__all__ = ["build_nets", "step_seed", "train"]


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of every random draw of ``step`` on ``rank``."""
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**62)


def build_nets(
    cfg: Config, seed: int
) -> tuple[TriPlaneGenerator, TriPlaneGenerator, ImageDiscriminator, VideoDiscriminator]:
    """(G, G_ema, image D, video D), initialised from ``seed``."""
    torch.manual_seed(seed)
    g = TriPlaneGenerator(cfg.generator)
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)
    return g, g_ema, ImageDiscriminator(cfg.image_d), VideoDiscriminator(cfg.video_d)


def _adam(params, lr: float, interval: int) -> torch.optim.Adam:
    ratio = interval / (interval + 1)  # lazy-regularisation correction of lr and beta2 (StyleGAN2 App. C)
    return torch.optim.Adam(params, lr=lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)


def _sync_grads(params: list[torch.nn.Parameter], accelerator) -> None:
    if accelerator.num_processes == 1:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    flat = accelerator.reduce(flat, reduction="mean")
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def _phase(loss: torch.Tensor, opt, params, accelerator) -> None:
    opt.zero_grad(set_to_none=True)
    accelerator.backward(loss)
    _sync_grads(params, accelerator)
    opt.step()


class Batch(dict):
    """One step's inputs on one rank."""


def draw_batch(ds: VoxCelebDataset, cfg: Config, b: int, gen: torch.Generator, nimg: int) -> Batch:
    """Real two-frame clips and the fakes' latents, times, real camera trajectories and swapped conditioning."""
    tc, gc = cfg.train, cfg.generator
    items = [ds.sample(int(i), gen) for i in torch.randint(len(ds), (b,), generator=gen)]
    t_fake = sample_times(b, gen)
    c_fake = torch.stack([ds.camera_pair(t_fake[i], gen) for i in range(b)])
    swap = torch.rand(b, generator=gen) < swap_prob(
        nimg, tc.swap_prob_start, tc.swap_prob_end, tc.swap_fade_kimg
    )
    c_cond = torch.where(swap[:, None, None], c_fake.roll(-1, dims=0), c_fake)
    return Batch(
        frames=torch.stack([it["frames"] for it in items]),
        t_real=torch.stack([it["t"] for it in items]),
        c_real=torch.stack([it["c"] for it in items]),
        z=torch.randn(b, gc.z_dim, generator=gen),
        z_motion=torch.randn(b, gc.z_motion_dim, generator=gen),
        t_fake=t_fake,
        c_fake=c_fake,
        c_cond=c_cond,
    )


@torch.no_grad()
def update_ema(g_ema: torch.nn.Module, g: torch.nn.Module, beta: float) -> None:
    for p_ema, p in zip(g_ema.parameters(), g.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(g_ema.buffers(), g.buffers()):
        b_ema.copy_(b)


def training_step(
    nets, opts, batch: dict[str, torch.Tensor], step: int, cfg: Config, acc
) -> dict[str, torch.Tensor]:
    """One PV3D iteration: Gmain, Greg (every density_every), Dmain, Dreg (every r1_every). Returns the losses.

    ``nets`` = (G, image D, video D), ``opts`` = (G optimiser, D optimiser). A video weight of 0 drops the video D
    (EG3D's recipe, for the benchmark's video overhead).
    """
    g, d_img, d_vid = nets
    opt_g, opt_d = opts
    tc, gc = cfg.train, cfg.generator
    g_params = list(g.parameters())
    d_params = list(d_img.parameters()) + list(d_vid.parameters())
    b = batch["z"].shape[0]
    nimg = step * tc.batch_size
    use_density = gc.renderer == "triplane" and tc.density_reg > 0
    vid = tc.video_weight > 0
    sigma = blur_sigma(nimg, tc.blur_sigma, tc.blur_fade_kimg)
    real_raw = ops.filtered_resize(batch["frames"].flatten(0, 1), gc.render_resolution)
    real_raw = real_raw.reshape(b, 2, *real_raw.shape[1:])
    losses: dict[str, torch.Tensor] = {}

    # Gmain: fool both discriminators on clips rendered along real camera trajectories.
    d_img.requires_grad_(False)
    d_vid.requires_grad_(False)
    with acc.autocast():
        fake = g(batch["z"], batch["z_motion"], batch["t_fake"], batch["c_cond"], c_render=batch["c_fake"])
        li, lv = d_logits(
            d_img, d_vid, fake["image"], fake["image_raw"], batch["t_fake"], batch["c_fake"], sigma, vid
        )
        losses["g_img"] = F.softplus(-li).mean()
        loss = tc.image_weight * losses["g_img"]
        if vid:
            losses["g_vid"] = F.softplus(-lv).mean()
            loss = loss + tc.video_weight * losses["g_vid"]
    _phase(loss, opt_g, g_params, acc)

    # Greg: density regularisation, lazily every density_every steps.
    if use_density and step % tc.density_every == 0:
        nt = 2
        with acc.autocast():
            ws = g.map(batch["z"].repeat_interleave(nt, 0), batch["c_cond"].flatten(0, 1))
            motion = batch["z_motion"].repeat_interleave(nt, 0) * batch["t_fake"].reshape(-1, 1)
            planes = g.synthesize(ws, motion)
            losses["density"] = density_reg(g.density, planes, tc.density_points, tc.density_noise)
        _phase(losses["density"] * tc.density_reg * tc.density_every, opt_g, g_params, acc)

    # Dmain: real clips vs (detached) fakes.
    d_img.requires_grad_(True)
    d_vid.requires_grad_(True)
    with torch.no_grad(), acc.autocast():
        fake = g(
            batch["z"],
            batch["z_motion"],
            batch["t_fake"],
            batch["c_cond"],
            c_render=batch["c_fake"],
            update_emas=True,
        )
    with acc.autocast():
        fi, fv = d_logits(
            d_img, d_vid, fake["image"], fake["image_raw"], batch["t_fake"], batch["c_fake"], sigma, vid
        )
        ri, rv = d_logits(
            d_img, d_vid, batch["frames"], real_raw, batch["t_real"], batch["c_real"], sigma, vid
        )
        losses["d_img"] = F.softplus(fi).mean() + F.softplus(-ri).mean()
        loss = tc.image_weight * losses["d_img"]
        if vid:
            losses["d_vid"] = F.softplus(fv).mean() + F.softplus(-rv).mean()
            loss = loss + tc.video_weight * losses["d_vid"]
    _phase(loss, opt_d, d_params, acc)

    # Dreg: lazy R1 on real inputs, every r1_every steps.
    if tc.r1_gamma > 0 and step % tc.r1_every == 0:
        with acc.autocast():
            pen_img, pen_vid = r1_penalty(
                d_img, d_vid, batch["frames"], real_raw, batch["t_real"], batch["c_real"], sigma, vid
            )
            losses["r1_img"] = pen_img.mean()
            r1 = tc.image_weight * losses["r1_img"]
            if vid:
                losses["r1_vid"] = pen_vid.mean()
                r1 = r1 + tc.video_weight * losses["r1_vid"]
        _phase(r1 * (tc.r1_gamma / 2) * tc.r1_every, opt_d, d_params, acc)

    return losses


def train(
    cfg: Config,
    out: str | Path,
    *,
    resume: bool | str = False,
    device: torch.device | None = None,
    mixed_precision: str = "no",
    dataset: VoxCelebDataset | None = None,
) -> dict[str, Any]:
    """Train PV3D (or the image2d baseline) with ``cfg``; writes ``out/model`` (EMA G), ``out/image_d``,
    ``out/video_d``, checkpoints and logs. Returns the last logged losses."""
    out = Path(out)
    tc = cfg.train
    # validate the data before anything is written
    ds = dataset or VoxCelebDataset(
        cfg.data.root,
        cfg.data.list_name,
        cfg.data.num_frames,
        cfg.data.image_size,
        cfg.data.hflip,
        cache=True,
    )
    acc = make_accelerator(
        out,
        mixed_precision=mixed_precision,
        trackers=("jsonl",),
        config=to_dict(cfg),
        cpu=device is not None and device.type == "cpu",
    )
    if tc.batch_size % acc.num_processes:
        raise ValueError(
            f"train.batch_size {tc.batch_size} is not divisible by {acc.num_processes} processes"
        )
    b = tc.batch_size // acc.num_processes
    dev = acc.device
    g, g_ema, d_img, d_vid = build_nets(cfg, tc.seed)
    for net in (g, g_ema, d_img, d_vid):
        net.to(dev)
    opt_g = _adam(g.parameters(), tc.g_lr, tc.density_every)
    opt_d = _adam(list(d_img.parameters()) + list(d_vid.parameters()), tc.d_lr, tc.r1_every)
    opt_g, opt_d = acc.prepare(opt_g, opt_d)
    acc.register_for_checkpointing(g, g_ema, d_img, d_vid)
    ckpt = CheckpointManager(acc, out, keep_last=tc.keep_last)
    start = 0
    if resume:
        start = ckpt.resume(None if resume is True else resume)
    nets = (g, d_img, d_vid)
    logs: dict[str, Any] = {}
    latest: dict[str, torch.Tensor] = {}  # the last value of every loss, regularisers included
    for step in range(start, tc.steps):
        seed = step_seed(tc.seed, step, acc.process_index)
        torch.manual_seed(seed)  # layer noise draws from the global generator
        gen = torch.Generator().manual_seed(seed)
        nimg = step * tc.batch_size
        batch = {k: v.to(dev) for k, v in draw_batch(ds, cfg, b, gen, nimg).items()}
        losses = training_step(nets, (opt_g, opt_d), batch, step, cfg, acc)
        latest.update(losses)
        update_ema(g_ema, g, ema_beta(nimg, tc.batch_size, tc.ema_kimg, tc.ema_rampup))
        done = step + 1
        if done % tc.log_every == 0 or done == tc.steps:
            check_finite(losses, done, accelerator=acc, checkpoint=ckpt.latest())
            logs = {k: round(float(v.detach()), 6) for k, v in latest.items()}
            acc.log(
                {
                    **logs,
                    "blur_sigma": blur_sigma(nimg, tc.blur_sigma, tc.blur_fade_kimg),
                    "kimg": (nimg + tc.batch_size) / 1e3,
                },
                step=done,
            )
        if should_save(done, tc.save_every, tc.steps):
            ckpt.save(done)
    save_final(acc, out, model=g_ema, config=cfg, checkpoints=ckpt, step=tc.steps)
    if acc.is_main_process:
        d_img.save_pretrained(out / "image_d")
        d_vid.save_pretrained(out / "video_d")
        atomic_write_json(out / "last_losses.json", logs)
    acc.wait_for_everyone()
    acc.end_training()
    return logs
