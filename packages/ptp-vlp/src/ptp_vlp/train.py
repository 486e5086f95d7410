"""Pretraining (BLIP with or without PTP prompts) and fine-tuning loops on ``visioncore.training``.

Checkpoints (accelerate state: model with its momentum encoders, queues and queue pointer, optimiser, scheduler,
RNGs) make resume exact: N steps equal k steps + ``--resume`` + N - k steps. The loss history and the count of
truncated prompts travel in the checkpoint's extra state.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader

from ptp_vlp.config import Config
from ptp_vlp.data.corpus import read_corpus
from ptp_vlp.data.datasets import EpochSampler, KarpathyTrain, PretrainDataset, read_karpathy
from ptp_vlp.models.blip import BLIPCaption, BLIPConfig, BLIPPretrain, BLIPRetrieval
from ptp_vlp.tokenizer import load_tokenizer, token_ids
from visioncore.config import to_dict
from visioncore.files import atomic_write_json
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

__all__ = ["blip_config", "build_model", "check_paths", "finetune", "pretrain"]

TASKS = {"retrieval_coco": "coco_karpathy", "retrieval_flickr": "flickr30k", "caption_coco": "coco_karpathy"}


def check_paths(cfg: Config, *, pretraining: bool) -> None:
    """Refuse missing inputs before anything is built (one line naming the option and the path)."""
    needed = [("data.tokenizer", cfg.data.tokenizer), ("data.image_root", cfg.data.image_root)]
    needed.append(
        ("data.corpus", cfg.data.corpus) if pretraining else ("data.annotation", cfg.data.annotation)
    )
    for option, value in needed:
        if not value:
            raise ValueError(f"{option} is not set (--set {option}=PATH)")
        if not Path(value).exists():
            raise FileNotFoundError(f"{option}: {value} does not exist")
    if not (Path(cfg.data.tokenizer) / "vocab.txt").is_file():
        raise FileNotFoundError(f"data.tokenizer: {cfg.data.tokenizer} has no vocab.txt")
    for option, value in (
        ("init.vit", cfg.init.vit),
        ("init.bert", cfg.init.bert),
        ("init.checkpoint", cfg.init.checkpoint),
    ):
        if value and not Path(value).exists():
            raise FileNotFoundError(f"{option}: {value} does not exist")


def blip_config(cfg: Config, tok: Any) -> BLIPConfig:
    return BLIPConfig(**dataclasses.asdict(cfg.model), **token_ids(tok))


def build_model(cfg: Config, tok: Any, kind: str = "pretrain") -> torch.nn.Module:
    """A fresh model of ``kind`` (pretrain, retrieval, caption), initialised from ``cfg.init``."""
    from ptp_vlp.weights import init_from_pretrained, load_blip_checkpoint

    cls = {"pretrain": BLIPPretrain, "retrieval": BLIPRetrieval, "caption": BLIPCaption}[kind]
    model = cls(blip_config(cfg, tok))
    if cfg.init.checkpoint:
        path = Path(cfg.init.checkpoint)
        if path.is_dir():  # a model folder written by `ptp-vlp pretrain` / `finetune`
            load_blip_checkpoint(model, path / "model.safetensors")
        else:
            load_blip_checkpoint(model, path)
    elif cfg.init.vit or cfg.init.bert:
        init_from_pretrained(model, cfg.init.vit or None, cfg.init.bert or None)
    return model


def _schedule(optimizer: torch.optim.Optimizer, cfg: Config, steps_per_epoch: int) -> LambdaLR:
    t = cfg.train
    if t.schedule == "cosine":
        return warmup_cosine_schedule(optimizer, t.warmup_steps, t.steps)
    start = t.warmup_lr / t.lr

    def factor(step: int) -> float:  # BLIP pretraining: warm-up in epoch 0, then lr * decay**epoch
        if step < t.warmup_steps:
            return start + (1.0 - start) * step / t.warmup_steps
        return max(t.min_lr / t.lr, t.decay ** (step // steps_per_epoch))

    return LambdaLR(optimizer, factor)


def _collate(items: list[dict]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]) for k in items[0]}


def _run(
    cfg: Config,
    out_dir: Path,
    model: torch.nn.Module,
    dataset: torch.utils.data.Dataset,
    losses_of: Callable[[torch.nn.Module, dict, float], dict[str, torch.Tensor]],
    *,
    resume: bool,
    show_progress: bool,
    cpu: bool,
) -> dict[str, Any]:
    """The shared loop: AdamW, schedule, alpha ramp, checkpoints, loss history; returns the run summary."""
    t = cfg.train
    # accelerate warns on every save that tied tensors are stored once: the decoder shares them by design
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)
    acc = make_accelerator(
        out_dir, mixed_precision=t.mixed_precision, trackers=("jsonl",), config=to_dict(cfg), cpu=cpu
    )
    sampler = EpochSampler(len(dataset), t.seed)
    loader = DataLoader(
        dataset,
        batch_size=t.batch_size,
        sampler=sampler,
        drop_last=True,
        collate_fn=_collate,
        num_workers=cfg.data.num_workers,
    )
    if len(loader) == 0:
        raise ValueError(
            f"train.batch_size {t.batch_size} is larger than the data set ({len(dataset)} samples)"
        )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    per_epoch = math.ceil(len(loader) / acc.num_processes)
    scheduler = _schedule(optimizer, cfg, per_epoch)
    model, optimizer, loader, scheduler = acc.prepare(model, optimizer, loader, scheduler)
    ckpt = CheckpointManager(acc, out_dir, keep_last=t.keep_last)
    start = ckpt.resume() if resume else 0
    extra = ckpt.extra_state() if start else {}
    history: dict[str, list[float]] = extra.get("history", {})
    truncated = int(extra.get("prompt_truncated", 0))
    per_epoch = len(loader)
    ramp = t.alpha_ramp_epochs * per_epoch
    model.train()
    bar = progress(total=t.steps, initial=start, accelerator=acc, disable=not show_progress)
    for step, batch in iterate_steps(acc, loader, start_step=start, max_steps=t.steps):
        alpha = t.alpha * min(1.0, step / ramp) if ramp > 0 else t.alpha
        losses = losses_of(model, batch, alpha)
        loss = sum(losses.values())
        acc.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        for name, value in losses.items():
            history.setdefault(name, []).append(float(value.detach()))
        if "truncated" in batch:
            truncated += int(batch["truncated"].sum())
        done = step + 1
        if done % t.log_every == 0 or done == t.steps:
            check_finite(losses, done, accelerator=acc, checkpoint=ckpt.latest())
            acc.log(
                {f"loss_{k}": v[-1] for k, v in history.items()} | {"lr": scheduler.get_last_lr()[0]},
                step=done,
            )
        if should_save(done, t.save_every, t.steps):
            ckpt.save(done, extra={"history": history, "prompt_truncated": truncated})
        bar.update(1)
    bar.close()
    save_final(acc, out_dir, model=model, config=cfg, checkpoints=ckpt, step=t.steps)
    truncated_all = int(acc.reduce(torch.tensor(truncated, device=acc.device), reduction="sum").item())
    summary = {
        "steps": t.steps,
        "losses": history,
        "prompt_truncated": truncated_all,
        "processes": acc.num_processes,
    }
    if acc.is_main_process:
        atomic_write_json(out_dir / "train_summary.json", summary)
    acc.end_training()
    return summary


def pretrain(
    cfg: Config, out_dir: str | Path, *, resume: bool = False, show_progress: bool = True, cpu: bool = False
) -> dict[str, Any]:
    """BLIP pretraining on the corpus TSV, with PTP prompts when ``cfg.ptp.enabled``."""
    check_paths(cfg, pretraining=True)
    rows = read_corpus(cfg.data.corpus)
    tok = load_tokenizer(cfg.data.tokenizer)
    seed_everything(cfg.train.seed)
    model = build_model(cfg, tok, "pretrain")
    dataset = PretrainDataset(
        rows,
        cfg.data.image_root,
        tok,
        image_size=cfg.model.image_size,
        seed=cfg.train.seed,
        ptp=cfg.ptp if cfg.ptp.enabled else None,
        augment=cfg.data.augment,
        min_scale=cfg.data.crop_min_scale,
        max_words=cfg.data.max_words,
        max_tokens=cfg.data.max_tokens,
    )

    def losses_of(model, batch, alpha):
        return model(batch["image"], batch["ids"], batch["mask"], alpha=alpha)

    return _run(
        cfg, Path(out_dir), model, dataset, losses_of, resume=resume, show_progress=show_progress, cpu=cpu
    )


def finetune(
    cfg: Config, out_dir: str | Path, *, resume: bool = False, show_progress: bool = True, cpu: bool = False
) -> dict[str, Any]:
    """Fine-tune retrieval (ITA with image-id targets + ITM) or captioning (LM after ``"a picture of "``), no PTP."""
    check_paths(cfg, pretraining=False)
    task = cfg.finetune.task
    entries = read_karpathy(Path(cfg.data.annotation) / f"{TASKS[task]}_train.json")
    tok = load_tokenizer(cfg.data.tokenizer)
    seed_everything(cfg.train.seed)
    kind = "caption" if task.startswith("caption") else "retrieval"
    model = build_model(cfg, tok, kind)
    prompt = cfg.finetune.prompt if kind == "caption" else ""
    dataset = KarpathyTrain(
        entries,
        cfg.data.image_root,
        tok,
        image_size=cfg.model.image_size,
        seed=cfg.train.seed,
        augment=cfg.data.augment,
        prompt=prompt,
        max_words=cfg.data.max_words,
        max_tokens=cfg.data.max_tokens,
    )
    prompt_tokens = len(tok(prompt.strip())["input_ids"]) - 1 if prompt else 0  # [CLS]->[DEC] + prompt words

    def losses_of(model, batch, alpha):
        if kind == "caption":
            return model(batch["image"], batch["ids"], batch["mask"], prompt_tokens=prompt_tokens)
        return model(batch["image"], batch["ids"], batch["mask"], batch["idx"], alpha=alpha)

    return _run(
        cfg, Path(out_dir), model, dataset, losses_of, resume=resume, show_progress=show_progress, cpu=cpu
    )
