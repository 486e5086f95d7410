"""The training loop (accelerate; spec sheet "Training recipe"): Adam 4e-4, linear warm-up times 0.5^(step/50k)
from step 0, inf-norm gradient clipping 1.0, mixed precision, frozen backbone, exact mid-epoch resume."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Dataset

from cyclic_walks.config import Config
from cyclic_walks.data import build_dataset
from cyclic_walks.models import CyclicWalks, FrozenBackbone, build_backbone
from visioncore.config import save_config, to_dict
from visioncore.training import (
    CheckpointManager,
    check_finite,
    iterate_steps,
    make_accelerator,
    progress,
    save_final,
    seed_everything,
    should_save,
)


class TrainResult(NamedTuple):
    model: CyclicWalks
    losses: dict[str, float]


def lr_factor(step: int, warmup_steps: int, half_life: int) -> float:
    """The official schedule: min(1, step / warmup) * 0.5^(step / half_life); the decay starts at step 0, and the
    learning rate of the first optimiser step (step 0) is 0, as in the official scheduler."""
    warmup = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
    return warmup * 0.5 ** (step / half_life)


def make_optimizer(model: torch.nn.Module, cfg: Config) -> tuple[torch.optim.Adam, LambdaLR]:
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    schedule = LambdaLR(optimizer, lambda s: lr_factor(s, cfg.train.warmup_steps, cfg.train.decay_half_life))
    return optimizer, schedule


def build_model(cfg: Config, feature_dim: int) -> CyclicWalks:
    m = cfg.model
    return CyclicWalks(
        feature_dim=feature_dim,
        num_slots=m.num_slots,
        iters=m.iters,
        mlp_hidden=m.mlp_hidden or feature_dim,
        tau=m.tau,
        affinity_threshold=m.affinity_threshold,
        alpha=m.alpha,
        beta=m.beta,
        position_prior=m.position_prior,
    )


def train_dataset(cfg: Config) -> Dataset:
    d = cfg.data
    return build_dataset(
        d.dataset,
        d.root,
        d.train_split,
        train=d.augment,
        image_size=d.image_size,
        eval_crop=d.eval_crop,
        eval_size=d.eval_size if not d.augment else d.image_size,
        protocol=cfg.eval.protocol,
        movi_variant=d.movi_variant,
        frames_per_clip=d.frames_per_clip,
        seed=cfg.train.seed,
    )


def train(
    cfg: Config,
    out_dir: str | Path,
    *,
    resume: bool = False,
    backbone: FrozenBackbone | None = None,
    dataset: Dataset | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train SACRW; checkpoints under ``out_dir/checkpoints``, the final model in ``out_dir/model``.

    ``stop_after`` ends the run early at that step (after its checkpoint), as an interruption would; tests use it.
    Returns this rank's trained model (unwrapped) and the last logged losses.
    """
    out_dir = Path(out_dir)
    seed_everything(cfg.train.seed)
    accelerator = make_accelerator(
        out_dir, mixed_precision=cfg.train.mixed_precision, config=to_dict(cfg), project_name="train"
    )
    if accelerator.is_main_process:
        save_config(cfg, out_dir / "config.yaml")
    backbone = (backbone or build_backbone(cfg.backbone)).to(accelerator.device)
    dataset = dataset if dataset is not None else train_dataset(cfg)
    model = build_model(cfg, backbone.feature_dim)
    optimizer, schedule = make_optimizer(model, cfg)
    loader = DataLoader(
        dataset,
        batch_size=cfg.train.batch_size,
        shuffle=cfg.data.shuffle,
        num_workers=cfg.data.num_workers,
        drop_last=True,
    )
    # The schedule counts optimiser steps, so it is not prepared (accelerate would step it once per process).
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    accelerator.register_for_checkpointing(schedule)
    checkpoints = CheckpointManager(accelerator, out_dir, keep_last=cfg.train.keep_last)
    start = checkpoints.resume() if resume else 0
    unwrapped: CyclicWalks = accelerator.unwrap_model(model)
    last: dict[str, float] = {}
    steps = iterate_steps(accelerator, loader, start_step=start, max_steps=cfg.train.max_steps)
    for step, batch in progress(steps, accelerator, total=cfg.train.max_steps, initial=start, desc="train"):
        with accelerator.autocast():
            features, grid = backbone(batch["image"])
            features = features.float()
            slots = model(features)  # through the (DDP) wrapper so gradients are synchronised
        # The walk losses (softmaxes at tau = 0.1, logs) run in float32 even under mixed precision.
        parts = unwrapped.losses(features, slots.float(), grid)
        loss = unwrapped.alpha * parts.wpw + unwrapped.beta * parts.pwp
        accelerator.backward(loss)
        if cfg.train.grad_clip_inf > 0:
            accelerator.clip_grad_norm_(model.parameters(), cfg.train.grad_clip_inf, norm_type=math.inf)
        optimizer.step()
        schedule.step()  # once per optimiser step, whatever the number of processes
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        if done % cfg.train.log_every == 0 or done == cfg.train.max_steps:
            # the only host syncs of the loop: at log steps
            losses = {"loss": loss.detach(), "loss_wpw": parts.wpw.detach(), "loss_pwp": parts.pwp.detach()}
            check_finite(losses, done, accelerator=accelerator, checkpoint=checkpoints.latest())
            last = {k: accelerator.reduce(v, "mean").item() for k, v in losses.items()}
            last["lr"] = schedule.get_last_lr()[0]
            accelerator.log(last, step=done)
        if should_save(done, cfg.train.save_every, cfg.train.max_steps):
            checkpoints.save(done)
        if stop_after is not None and done >= stop_after:
            break
    else:
        save_final(
            accelerator, out_dir, model=model, config=cfg, checkpoints=checkpoints, step=cfg.train.max_steps
        )
    accelerator.wait_for_everyone()  # other ranks may read the saved model right after
    accelerator.end_training()
    return TrainResult(unwrapped, last)
