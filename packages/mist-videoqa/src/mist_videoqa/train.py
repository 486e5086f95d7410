"""Training loop (accelerate, on ``visioncore.training``): Adam, wd 0, cosine schedule, gradient clip 12, VQA
cross-entropy; validation keeps the best model (``best/``) and the run ends with the last one (``model/``).

Resume is exact: ``--resume`` restores model, optimizer, scheduler, RNG states and the data order, so N steps equal
k steps + resume + N - k steps bit for bit (tested).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mist_videoqa.config import RunConfig
from mist_videoqa.data.annotations import load_answer_vocab
from mist_videoqa.data.dataset import QADataset, answer_tokens, build_dataset, collate, load_tokenizer
from mist_videoqa.evaluate import evaluate_model, model_inputs
from mist_videoqa.models.mist import MIST
from visioncore.config import to_dict
from visioncore.files import atomic_write_json
from visioncore.training import (
    CheckpointManager,
    check_finite,
    iterate_steps,
    make_accelerator,
    save_final,
    seed_everything,
    should_save,
    warmup_cosine_schedule,
)

__all__ = ["bert_config_fields", "build_model", "load_datasets", "qa_loss", "train"]

_BERT_FIELDS = {
    "vocab_size": "bert_vocab_size",
    "hidden_size": "bert_hidden",
    "num_hidden_layers": "bert_layers",
    "num_attention_heads": "bert_heads",
    "intermediate_size": "bert_ff",
    "max_position_embeddings": "bert_max_positions",
}


def bert_config_fields(bert_dir: str | os.PathLike) -> dict[str, int]:
    """The ``model.bert_*`` values of a local BERT folder (its ``config.json``)."""
    path = Path(bert_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a BERT folder (--bert needs config.json and weights)")
    config = json.loads(path.read_text())
    return {ours: int(config[theirs]) for theirs, ours in _BERT_FIELDS.items() if theirs in config}


def build_model(
    cfg: RunConfig,
    tokenizer: Any,
    *,
    bert_dir: str | None = None,
    init_from: str | None = None,
    log: Callable[[str], None] = print,
) -> MIST:
    """A fresh model: random or ``--bert`` text encoders, optional official weights, the answer vocabulary."""
    from transformers import BertModel

    model = MIST(cfg.model)
    if bert_dir:
        bert = BertModel.from_pretrained(bert_dir, local_files_only=True, add_pooling_layer=False)
        for target in (model.question_bert, model.answer_bert):
            target.load_state_dict(bert.state_dict(), strict=False)
    if init_from:
        from mist_videoqa.models.convert import init_from_official

        report = init_from_official(model, init_from)
        log(
            f"init-from {init_from}: {report.loaded} tensors loaded; skipped {len(report.skipped)} unused official "
            f"keys; {len(report.unmatched)} unmatched: {report.unmatched[:10]}; {len(report.missing)} model keys "
            f"not in the file: {report.missing[:10]}"
        )
    if not cfg.model.mc:
        vocab = load_answer_vocab(cfg.data.root, cfg.data.dataset)
        model.set_answers(*answer_tokens(tokenizer, vocab, cfg.model.amax))
    return model


def load_datasets(cfg: RunConfig, tokenizer: Any) -> tuple[QADataset, QADataset | None]:
    """Train and (if ``data.val_split`` is set) validation datasets, sharing the opened feature files."""
    stores: dict = {}
    train_ds = build_dataset(cfg.data, cfg.model, cfg.data.train_split, tokenizer, stores)
    val_ds = (
        build_dataset(cfg.data, cfg.model, cfg.data.val_split, tokenizer, stores)
        if cfg.data.val_split
        else None
    )
    return train_ds, val_ds


def qa_loss(logits: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over answers / choices; answers outside the vocabulary (-1) are ignored (0 if all are)."""
    known = answers >= 0
    total = F.cross_entropy(logits.float(), answers.clamp(min=0), reduction="none")
    return (total * known).sum() / known.sum().clamp(min=1)


def _param_groups(model: MIST, cfg: RunConfig) -> list[dict[str, Any]]:
    """All trainable parameters; the segment / region selectors at ``train.selector_lr_ratio`` x lr."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    selector = [p for n, p in named if "_selector." in n]
    rest = [p for n, p in named if "_selector." not in n]
    if cfg.train.selector_lr_ratio == 1.0 or not selector:
        return [{"params": rest + selector}]
    return [{"params": rest}, {"params": selector, "lr": cfg.train.lr * cfg.train.selector_lr_ratio}]


def _mixed_precision(dtype: str) -> str:
    return {"fp32": "no", "fp16": "fp16", "bf16": "bf16"}[dtype]


def train(
    cfg: RunConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    bert_dir: str | None = None,
    init_from: str | None = None,
    device: torch.device | None = None,
    dtype: str = "fp32",
    datasets: tuple[QADataset, QADataset | None] | None = None,
    trackers: tuple[str, ...] = ("jsonl",),
    log: Callable[[str], None] = print,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` into ``out_dir``; returns a summary (steps, last loss, best validation accuracy).

    ``stop_at`` ends the run early after that many steps (with a checkpoint, without the final model), as a
    pre-empted job would: the schedule still spans ``train.steps``, and ``resume=True`` continues it.
    """
    out = Path(out_dir)
    if bert_dir:
        cfg = replace(cfg, model=replace(cfg.model, **bert_config_fields(bert_dir)))
    seed_everything(cfg.train.seed)
    tokenizer = load_tokenizer(cfg.data.vocab_file)
    train_ds, val_ds = datasets if datasets is not None else load_datasets(cfg, tokenizer)
    model = build_model(cfg, tokenizer, bert_dir=bert_dir, init_from=init_from, log=log)
    cpu = device is not None and device.type == "cpu"
    acc = make_accelerator(
        out, mixed_precision=_mixed_precision(dtype), trackers=trackers, config=to_dict(cfg), cpu=cpu
    )
    # CLIP is not part of the model (features are precomputed); every other parameter trains, as released.
    params = [p for p in model.parameters() if p.requires_grad]
    # foreach: one fused update over all tensors instead of ~10 small ops per tensor (same Adam)
    optimizer = torch.optim.Adam(_param_groups(model, cfg), lr=cfg.train.lr, weight_decay=0.0, foreach=True)
    scheduler = warmup_cosine_schedule(
        optimizer, cfg.train.warmup_steps, cfg.train.steps, min_ratio=cfg.train.min_lr_ratio
    )
    loader = DataLoader(
        train_ds, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True, collate_fn=collate
    )
    model, optimizer, loader, scheduler = acc.prepare(model, optimizer, loader, scheduler)
    ckpt = CheckpointManager(acc, out, keep_last=cfg.train.keep_last)
    start = ckpt.resume() if resume else 0
    best = float(ckpt.extra_state().get("best_val", -1.0))
    summary: dict[str, Any] = {"start_step": start}
    loss = torch.zeros(())
    for step, batch in iterate_steps(acc, loader, start_step=start, max_steps=cfg.train.steps):
        model.train()
        output = model(**model_inputs(batch, acc.device, torch.float32))
        loss = qa_loss(output.logits, batch["answer"].to(acc.device))
        acc.backward(loss)
        acc.clip_grad_norm_(params, cfg.train.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        if done % cfg.train.log_every == 0 or done == cfg.train.steps:
            check_finite(loss, done, accelerator=acc, checkpoint=ckpt.latest())
            acc.log({"loss": loss.item(), "lr": scheduler.get_last_lr()[0]}, step=done)
        if val_ds is not None and (done % cfg.train.eval_every == 0 or done == cfg.train.steps):
            best = _validate(acc, model, val_ds, cfg, out, done, best, log)
        if should_save(done, cfg.train.save_every, cfg.train.steps) or done == stop_at:
            ckpt.save(done, extra={"best_val": best})
        if done == stop_at:
            acc.end_training()
            return summary | {"steps": done, "last_loss": float(loss.item()), "best_val_acc": best}
    save_final(acc, out, model=model, config=cfg, checkpoints=ckpt, step=cfg.train.steps)
    summary |= {"steps": cfg.train.steps, "last_loss": float(loss.item()), "best_val_acc": best}
    if acc.is_main_process:
        atomic_write_json(out / "train_summary.json", summary)
    acc.end_training()
    return summary


def _validate(
    acc: Any, model: Any, val_ds: QADataset, cfg: RunConfig, out: Path, step: int, best: float, log
) -> float:
    """Validation accuracy at ``step``; a new best is saved to ``out/best``. Leaves the global RNG untouched."""
    net = acc.unwrap_model(model)
    with torch.random.fork_rng(devices=[]):
        metrics, _ = evaluate_model(net, val_ds, batch_size=cfg.train.eval_batch_size, device=acc.device)
    acc.log({"val_acc": metrics["acc"]}, step=step)
    if metrics["acc"] > best:
        best = metrics["acc"]
        if acc.is_main_process:
            net.save_pretrained(out / "best")
            atomic_write_json(out / "best" / "val_metrics.json", {"step": step, **metrics})
    acc.wait_for_everyone()
    if acc.is_main_process:
        log(f"step {step}: val acc {metrics['acc']:.4f} (best {best:.4f})")
    return best
