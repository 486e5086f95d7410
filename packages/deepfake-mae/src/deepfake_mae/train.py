"""Training loops (accelerate, resumable): Stage A `pretrain` (facial-part MAE on real faces) and Stage B
`train_detector` (the dual network on real + fake clips)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from deepfake_mae.config import Config, detector_kwargs, mae_kwargs
from deepfake_mae.data.dataset import FaceClipDataset
from deepfake_mae.data.layout import REAL, VideoRecord, balance_real_fake, ffpp_records
from deepfake_mae.losses import mae_loss, part_margin_loss
from deepfake_mae.models.detector import DeepfakeDetector, param_groups, weight_decay_groups
from deepfake_mae.models.mae import FacePartMAE, normalize_images
from deepfake_mae.models.masking import facial_part_mask, patch_membership, random_mask
from visioncore.config import to_dict
from visioncore.training import (
    CheckpointManager,
    check_finite,
    iterate_steps,
    make_accelerator,
    progress,
    save_final,
    seed_everything,
    should_save,
    warmup_cosine_schedule,
)

log = logging.getLogger("deepfake_mae")


def step_generator(seed: int, step: int, rank: int, device: torch.device | str = "cpu") -> torch.Generator:
    """Masks depend only on (seed, step, rank), so a resumed run draws exactly the masks of an uninterrupted one.
    The generator lives on ``device``: the device of the tensors it draws (the boxes the masks are built from)."""
    seed = (seed * 1_000_003 + step * 7_919 + rank * 104_729) % 2**63
    return torch.Generator(device=device).manual_seed(seed)


def sample_masks(
    cfg: Config, boxes: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stage A masks for a batch of frames: facial parts (+ random top-up) or the random-patch ablation."""
    grid = cfg.model.img_size // cfg.model.patch_size
    if cfg.masking.strategy == "random":
        return random_mask(boxes.shape[0], grid * grid, cfg.masking.mask_ratio, generator), None
    if cfg.masking.strategy != "parts":
        raise ValueError(f"masking.strategy must be 'parts' or 'random', got {cfg.masking.strategy!r}")
    member = patch_membership(boxes, grid, cfg.model.patch_size, cfg.masking.part_margin)
    return facial_part_mask(member, cfg.masking.mask_ratio, tuple(cfg.masking.parts_per_sample), generator)


def _bar(acc, total: int, initial: int, desc: str, show: bool):
    """Progress bar on the main process only (and not at all when ``show`` is off, e.g. in tests)."""
    return progress(total=total, initial=initial, accelerator=acc, desc=desc, disable=not show)


def _loader(dataset, batch_size: int, cfg: Config, shuffle: bool) -> DataLoader:
    if len(dataset) < batch_size:
        raise ValueError(f"only {len(dataset)} training samples for batch size {batch_size}")
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=shuffle, num_workers=cfg.data.num_workers
    )


def pretrain(
    cfg: Config,
    out_dir: str | Path,
    *,
    records: Sequence[VideoRecord] | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    show_progress: bool = True,
) -> FacePartMAE:
    """Stage A: the MAE on REAL frames only; writes checkpoints, logs and `<out>/model` (save_pretrained)."""
    out_dir = Path(out_dir)
    seed_everything(cfg.seed)
    if records is None:
        records = ffpp_records(cfg.data.root, "train", (REAL,))
    if any(r.label != 0 for r in records):
        raise ValueError("Stage A pretrains on real faces only; the record list contains fakes")
    acc = make_accelerator(
        out_dir, mixed_precision=cfg.pretrain.mixed_precision, project_name="pretrain", config=to_dict(cfg)
    )
    model = FacePartMAE(**mae_kwargs(cfg.model))
    if init_from is not None:
        from deepfake_mae.models.convert import load_pretrained_mae

        load_pretrained_mae(model, init_from)
    dataset = FaceClipDataset(
        records,
        clip_len=1,
        image_size=cfg.model.img_size,
        max_frames=cfg.data.train_max_frames,
        part_scheme=cfg.masking.part_scheme,
        preload=cfg.data.preload,
    )
    loader = _loader(dataset, cfg.pretrain.batch_size, cfg, shuffle=True)
    opt = torch.optim.AdamW(
        weight_decay_groups(model, cfg.pretrain.weight_decay), lr=cfg.pretrain.lr, betas=(0.9, 0.95)
    )
    sched = warmup_cosine_schedule(opt, cfg.pretrain.warmup_steps, cfg.pretrain.steps)
    # prepared: checkpointed with the run, and stepped once per call (make_accelerator's learning-rate rule)
    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)
    ckpt = CheckpointManager(acc, out_dir, keep_last=cfg.pretrain.keep_last)
    start = ckpt.resume() if resume else 0
    core: FacePartMAE = acc.unwrap_model(model)
    model.train()
    bar = _bar(acc, cfg.pretrain.steps, start, "pretrain", show_progress)
    for step, batch in iterate_steps(acc, loader, start_step=start, max_steps=cfg.pretrain.steps):
        images = normalize_images(batch["frames"][:, 0])
        mask, part_mask = sample_masks(
            cfg, batch["boxes"][:, 0].cpu(), step_generator(cfg.seed, step, acc.process_index)
        )
        mask = mask.to(images.device)
        pred = model(images, mask)  # through the (DDP-)wrapped forward so gradients are synchronised
        loss = mae_loss(
            pred,
            core.target(images),
            mask,
            None if part_mask is None else part_mask.to(images.device),
            cfg.masking.part_loss_weight,
        )
        acc.backward(loss)
        opt.step()
        sched.step()  # once per optimiser step
        opt.zero_grad(set_to_none=True)
        bar.update(1)
        done = step + 1
        if done % cfg.pretrain.log_every == 0 or done == cfg.pretrain.steps:  # host syncs at log steps only
            check_finite(loss.detach(), done, accelerator=acc, checkpoint=ckpt.latest())
            acc.log({"pretrain/loss": loss.item(), "pretrain/lr": sched.get_last_lr()[0]}, step=done)
        if should_save(done, cfg.pretrain.save_every, cfg.pretrain.steps):
            ckpt.save(done)
    bar.close()
    save_final(acc, out_dir, model=model, config=cfg, checkpoints=ckpt, step=cfg.pretrain.steps)
    acc.end_training()
    return core


def detector_loss(cfg: Config, out: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """L = BCE(fused logit, y) + lambda L_disc (the margin loss on network 2's discrepancies, per part by default;
    ``detector.margin_loss=mean`` puts it on the part average)."""
    loss = F.binary_cross_entropy_with_logits(out["logit"], labels.float())
    det = cfg.detector
    if det.branches != "encoder" and not det.freeze_net2 and det.disc_weight > 0:
        disc = part_margin_loss(out["discrepancy"], labels, det.margin, det.margin_loss)
        loss = loss + det.disc_weight * disc
    return loss


def build_detector(cfg: Config, pretrained: str | Path | FacePartMAE | None) -> DeepfakeDetector:
    """Both networks start from the Stage A MAE (a saved folder, a model, or random with None)."""
    model = DeepfakeDetector(**detector_kwargs(cfg))
    if pretrained is not None:
        mae = pretrained if isinstance(pretrained, FacePartMAE) else FacePartMAE.from_pretrained(pretrained)
        model.load_mae(mae)
    return model


def train_detector(
    cfg: Config,
    out_dir: str | Path,
    *,
    pretrained: str | Path | FacePartMAE | None = None,
    records: Sequence[VideoRecord] | None = None,
    resume: bool = False,
    show_progress: bool = True,
    discrepancy_cache: dict[tuple[str, int], torch.Tensor] | None = None,
) -> DeepfakeDetector:
    """Stage B: finetune the dual network on clips of real and fake videos (fake = 1); writes `<out>/model`."""
    out_dir = Path(out_dir)
    seed_everything(cfg.seed)
    if records is None:
        records = ffpp_records(cfg.data.root, "train", (REAL, *cfg.data.train_methods))
    if cfg.train.balance:
        records = balance_real_fake(list(records), np.random.default_rng(cfg.seed))
    acc = make_accelerator(
        out_dir, mixed_precision=cfg.train.mixed_precision, project_name="train", config=to_dict(cfg)
    )
    model = build_detector(cfg, pretrained)
    dataset = FaceClipDataset(
        records,
        clip_len=cfg.data.clip_len,
        image_size=cfg.model.img_size,
        max_frames=cfg.data.train_max_frames,
        part_scheme=cfg.masking.part_scheme,
        preload=cfg.data.preload,
    )
    loader = _loader(dataset, cfg.train.batch_size, cfg, shuffle=True)
    groups = param_groups(model, cfg.train.weight_decay, cfg.train.layer_decay, cfg.model.depth)
    for group in groups:
        group["lr"] = cfg.train.lr * group.pop("lr_scale")
    opt = torch.optim.AdamW(groups, lr=cfg.train.lr)
    sched = warmup_cosine_schedule(opt, cfg.train.warmup_steps, cfg.train.steps)
    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)  # stepped once per call
    ckpt = CheckpointManager(acc, out_dir, keep_last=cfg.train.keep_last)
    start = ckpt.resume() if resume else 0
    core: DeepfakeDetector = acc.unwrap_model(model)
    # Frozen network 2: discrepancies per (video key, clip start), computed once (or handed in by the caller).
    cache = discrepancy_cache if discrepancy_cache is not None else {}
    model.train()
    bar = _bar(acc, cfg.train.steps, start, "train", show_progress)
    for step, batch in iterate_steps(acc, loader, start_step=start, max_steps=cfg.train.steps):
        frames, boxes, labels = normalize_images(batch["frames"]), batch["boxes"], batch["label"]
        cached = None
        if cfg.detector.freeze_net2 and cfg.detector.branches != "encoder":
            keys = [
                (dataset.records[v].key, s) for v, s in zip(batch["video"].tolist(), batch["start"].tolist())
            ]
            missing = [i for i, k in enumerate(keys) if k not in cache]
            if missing:
                with torch.no_grad():
                    fresh = core.discrepancies(frames[missing], boxes[missing])
                cache.update({keys[i]: d for i, d in zip(missing, fresh)})
            cached = torch.stack([cache[k] for k in keys]).to(frames.device)
        generator = step_generator(cfg.seed, step, acc.process_index, device=frames.device)
        out = model(frames, boxes, generator=generator, discrepancy=cached)
        loss = detector_loss(cfg, out, labels)
        acc.backward(loss)
        opt.step()
        sched.step()  # once per optimiser step
        opt.zero_grad(set_to_none=True)
        bar.update(1)
        done = step + 1
        if done % cfg.train.log_every == 0 or done == cfg.train.steps:  # host syncs at log steps only
            check_finite(loss.detach(), done, accelerator=acc, checkpoint=ckpt.latest())
            values = {"train/loss": loss.item(), "train/disc": out["discrepancy"].mean().item()}
            acc.log({**values, "train/lr": sched.get_last_lr()[0]}, step=done)
        if should_save(done, cfg.train.save_every, cfg.train.steps):
            ckpt.save(done)
    bar.close()
    save_final(acc, out_dir, model=model, config=cfg, checkpoints=ckpt, step=cfg.train.steps)
    acc.end_training()
    return core
