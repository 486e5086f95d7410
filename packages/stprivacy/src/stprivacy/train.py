"""The three training phases (paper Sec. 3.4) as accelerate loops on ``visioncore.training``.

- ``init``: anonymizer (predictors, backbone, PAB) and the in-training action recognizer:
  ``ratio_weight * L_Spars + L_Action + lambda_rec * L_recon`` with Gumbel keep decisions.
- ``privacy``: privacy recognizer(s) (K adversaries, Wu et al.) trained on the frozen anonymizer's output.
- ``adversarial``: only the PAB trains (``freeze_for_anonymization``):
  ``ratio_weight * L_Spars + lambda_action * L_Action + lambda_privacy * privacy_loss``; the action recognizer and the
  adversaries are updated alternately on their own losses, adversaries optionally re-initialised (restarts).

Phases 2 and 3 use the per-slice top-k keep as a mask (``decide="topk"``, ours): the predictors are frozen there, and the
PAB then trains on exactly the tubelets the test path keeps. Each phase is its own run folder ``<out>/<phase>/`` with
checkpoints; ``resume`` continues a phase bit-exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from visioncore.config import to_dict
from visioncore.hub import read_state_dict
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

from .config import Config
from .data import ClipDataset, Normalizer, load_all, load_privacy_labels, load_split
from .losses import privacy_loss, reconstruction_loss, sparsity_loss
from .models import STPrivacy, build_recognizer, freeze_for_anonymization, inflate_image_checkpoint, recognize
from .models.recognizers import Conv3dNet, FrameCNN, PooledMLP, TubeletBag, VideoViT

__all__ = ["PHASES", "build_anonymizer", "load_recognizer", "make_datasets", "new_recognizer", "train"]

PHASES = ("init", "privacy", "adversarial")
_CLASSES: dict[str, type[nn.Module]] = {
    "vit": VideoViT,
    "cnn3d": Conv3dNet,
    "cnn2d": FrameCNN,
    "mlp": PooledMLP,
    "bag": TubeletBag,
}


def make_datasets(cfg: Config) -> tuple[Dataset, Dataset, list[str]]:
    """Train / test clip datasets of the configured official split (decoded once when ``data.in_memory``)."""
    d = cfg.data
    if not d.videos or not d.splits or not d.labels:
        raise ValueError("data.videos, data.splits and data.labels must be set (--set data.videos=DIR ...)")
    split = load_split(d.dataset, d.videos, d.splits, d.split)
    labels = load_privacy_labels(d.labels, d.attribute_names)
    common = dict(num_frames=d.num_frames, stride=d.stride, size=d.size)
    train_ds: Dataset = ClipDataset(split.train, labels, train=True, seed=cfg.seed, **common)
    test_ds: Dataset = ClipDataset(split.test, labels, **common)
    if d.in_memory:
        train_ds, test_ds = load_all(train_ds), load_all(test_ds)
    return train_ds, test_ds, split.classes


def build_anonymizer(cfg: Config) -> STPrivacy:
    """``STPrivacy`` from the config, with a local ViT image checkpoint inflated in when ``model.pretrained`` is set."""
    model = STPrivacy(**cfg.model.kwargs())
    if cfg.model.pretrained:
        path = Path(cfg.model.pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"model.pretrained: file not found: {path}")
        state = inflate_image_checkpoint(
            read_state_dict(path), cfg.model.inflation, tubelet_frames=model.tubelet[0], grid=model.grid
        )
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as err:
            raise ValueError(f"{path}: does not fit the anonymizer: {str(err).splitlines()[0]}") from None
    return model


def new_recognizer(cfg: Config, family: str, num_outputs: int) -> nn.Module:
    vit = cfg.privacy.vit() if num_outputs == len(cfg.data.attribute_names) else cfg.action.vit()
    return build_recognizer(
        family,
        num_outputs,
        video_shape=(cfg.data.num_frames, cfg.data.size),
        tubelet=cfg.model.tubelet,
        vit=vit,
    )


def load_recognizer(family: str, folder: str | Path) -> nn.Module:
    return _CLASSES[family].from_pretrained(folder)


def _cosine(step: int, total: int, warmup: int, min_ratio: float) -> float:
    if step < warmup:
        return step / max(1, warmup)
    progress_ = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress_))


def _groups(
    anonymizer: STPrivacy, cfg: Config, total: int, recognizers: list[nn.Module]
) -> tuple[list, list]:
    """AdamW groups predictor / base_decay / base_no_decay (+ recognizers) and their lr factors.

    Predictors: cosine from lr to min_lr. Backbone: 0 for ``backbone_freeze_steps``, then min(ratio, cosine) x lr
    (upstream ``adjust_d_learning_rate``).
    """
    t = cfg.train
    pred = [p for n, p in anonymizer.named_parameters() if p.requires_grad and n.startswith("predictors.")]
    base = [
        (n, p)
        for n, p in anonymizer.named_parameters()
        if p.requires_grad and not n.startswith("predictors.")
    ]
    no_decay = [p for n, p in base if p.ndim <= 1 or n == "pos_embed"]
    decay = [p for n, p in base if not (p.ndim <= 1 or n == "pos_embed")]
    rec = [p for m in recognizers for p in m.parameters()]
    groups, factors = [], []
    min_ratio = t.min_lr / t.lr
    cos: Callable[[int], float] = lambda s: _cosine(s, total, t.warmup_steps, min_ratio)
    back: Callable[[int], float] = lambda s: (
        0.0 if s < t.backbone_freeze_steps else min(t.backbone_lr_ratio, cos(s))
    )
    for params, wd, factor in (
        (pred, t.weight_decay, cos),
        (decay, t.weight_decay, back),
        (no_decay, 0.0, back),
    ):
        if params:
            groups.append({"params": params, "weight_decay": wd, "lr": t.lr})
            factors.append(factor)
    if rec:
        groups.append({"params": rec, "weight_decay": t.weight_decay, "lr": t.recognizer_lr})
        factors.append(lambda s: _cosine(s, total, t.warmup_steps, min_ratio))
    return groups, factors


def _recognizer_optimizer(
    models: list[nn.Module], cfg: Config, total: int
) -> tuple[torch.optim.Optimizer, object]:
    t = cfg.train
    opt = torch.optim.AdamW(
        [p for m in models for p in m.parameters()], lr=t.recognizer_lr, weight_decay=t.weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: _cosine(s, total, t.warmup_steps, t.min_lr / t.lr)
    )
    return opt, sched


def _loader(ds: Dataset, cfg: Config) -> DataLoader:
    return DataLoader(ds, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True)


def _unwrap(acc, model: nn.Module) -> nn.Module:
    return acc.unwrap_model(model)


def _reinit(model: nn.Module, cfg: Config, family: str, seed: int) -> None:
    """Restart an adversary: weights of a fresh model drawn from its own seed (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = new_recognizer(cfg, family, len(cfg.data.attribute_names))
    model.load_state_dict(fresh.state_dict())


def train(
    cfg: Config,
    out: str | Path,
    phase: str = "all",
    *,
    resume: bool = False,
    datasets: tuple[Dataset, Dataset, list[str]] | None = None,
    cpu: bool = False,
) -> Path:
    """Run ``phase`` (init | privacy | adversarial | all) into ``out/<phase>/``; returns the last phase's folder."""
    if phase not in (*PHASES, "all"):
        raise ValueError(f"unknown phase {phase!r} (known: {', '.join(PHASES)}, all)")
    train_ds, _, classes = datasets if datasets is not None else make_datasets(cfg)
    out = Path(out)
    folder = out
    for name in PHASES if phase == "all" else (phase,):
        folder = {"init": _train_init, "privacy": _train_privacy, "adversarial": _train_adversarial}[name](
            cfg, out, train_ds, len(classes), resume=resume, cpu=cpu
        )
    return folder


def _begin(cfg: Config, folder: Path, cpu: bool):
    seed_everything(cfg.seed)
    return make_accelerator(folder, config=to_dict(cfg), project_name="train", cpu=cpu, trackers=("jsonl",))


def _finish(
    acc, folder: Path, cfg: Config, anonymizer: nn.Module, ckpt: CheckpointManager, step: int, extra: dict
) -> None:
    save_final(acc, folder, model=_unwrap(acc, anonymizer), config=cfg, checkpoints=ckpt, step=step)
    if acc.is_main_process:
        for name, model in extra.items():
            _unwrap(acc, model).save_pretrained(folder / name)
    acc.wait_for_everyone()
    acc.end_training()


def _train_init(cfg: Config, out: Path, ds: Dataset, num_classes: int, *, resume: bool, cpu: bool) -> Path:
    folder = out / "init"
    t = cfg.train
    acc = _begin(cfg, folder, cpu)
    anonymizer = build_anonymizer(cfg)
    action = new_recognizer(cfg, cfg.action.family, num_classes)
    groups, factors = _groups(anonymizer, cfg, t.init_steps, [action])
    opt = torch.optim.AdamW(groups)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factors)
    anonymizer, action, opt, sched, loader = acc.prepare(anonymizer, action, opt, sched, _loader(ds, cfg))
    ckpt = CheckpointManager(acc, folder, keep_last=t.keep_last)
    start = ckpt.resume() if resume else 0
    norm = Normalizer(cfg.data.mean, cfg.data.std)
    anonymizer.train()
    action.train()
    for step, (video, label, _) in progress(
        iterate_steps(acc, loader, start_step=start, max_steps=t.init_steps),
        acc,
        total=t.init_steps,
        initial=start,
        desc="init",
    ):
        x = norm(video)
        out_ = anonymizer(x, tau=t.tau)
        losses = {
            "sparsity": sparsity_loss(out_.decisions, cfg.model.keep_ratio),
            "action": F.cross_entropy(recognize(action, out_.video, out_.keep), label),
            "recon": reconstruction_loss(out_.video, x, out_.keep, cfg.model.tubelet),
        }
        loss = t.ratio_weight * losses["sparsity"] + losses["action"] + t.lambda_rec * losses["recon"]
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        opt.step()
        sched.step()
        done = step + 1
        if done % t.log_every == 0 or done == t.init_steps:
            check_finite(losses, done, accelerator=acc, checkpoint=ckpt.latest())
            acc.log({**{k: v.item() for k, v in losses.items()}, "kept": out_.keep.mean().item()}, step=done)
        if should_save(done, t.save_every, t.init_steps):
            ckpt.save(done)
    _finish(acc, folder, cfg, anonymizer, ckpt, t.init_steps, {"action": action})
    return folder


def _frozen_anonymizer(out: Path, device: torch.device) -> STPrivacy:
    return STPrivacy.from_pretrained(out / "init" / "model").to(device)


def _train_privacy(cfg: Config, out: Path, ds: Dataset, num_classes: int, *, resume: bool, cpu: bool) -> Path:
    folder = out / "privacy"
    t = cfg.train
    acc = _begin(cfg, folder, cpu)
    anonymizer = _frozen_anonymizer(out, acc.device).requires_grad_(False).eval()
    advs = [new_recognizer(cfg, f, len(cfg.data.attribute_names)) for f in t.adversaries]
    opt, sched = _recognizer_optimizer(advs, cfg, t.privacy_steps)
    *advs, opt, sched, loader = acc.prepare(*advs, opt, sched, _loader(ds, cfg))
    ckpt = CheckpointManager(acc, folder, keep_last=t.keep_last)
    start = ckpt.resume() if resume else 0
    norm = Normalizer(cfg.data.mean, cfg.data.std)
    for step, (video, _, privacy) in progress(
        iterate_steps(acc, loader, start_step=start, max_steps=t.privacy_steps),
        acc,
        total=t.privacy_steps,
        initial=start,
        desc="privacy",
    ):
        with torch.no_grad():
            anon = anonymizer(norm(video), decide="topk")
        loss = torch.stack(
            [
                F.binary_cross_entropy_with_logits(recognize(a, anon.video, anon.keep), privacy.float())
                for a in advs
            ]
        ).mean()
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        opt.step()
        sched.step()
        done = step + 1
        if done % t.log_every == 0 or done == t.privacy_steps:
            check_finite({"privacy_bce": loss}, done, accelerator=acc, checkpoint=ckpt.latest())
            acc.log({"privacy_bce": loss.item()}, step=done)
        if should_save(done, t.save_every, t.privacy_steps):
            ckpt.save(done)
    extra = {f"adversary_{k}": a for k, a in enumerate(advs)}
    _finish(acc, folder, cfg, anonymizer, ckpt, t.privacy_steps, extra)
    return folder


def _train_adversarial(
    cfg: Config, out: Path, ds: Dataset, num_classes: int, *, resume: bool, cpu: bool
) -> Path:
    folder = out / "adversarial"
    t = cfg.train
    acc = _begin(cfg, folder, cpu)
    anonymizer = freeze_for_anonymization(STPrivacy.from_pretrained(out / "init" / "model"))
    anonymizer.train()
    action = load_recognizer(cfg.action.family, out / "init" / "action").train()
    advs = [
        load_recognizer(f, out / "privacy" / f"adversary_{k}").train() for k, f in enumerate(t.adversaries)
    ]
    groups, factors = _groups(anonymizer, cfg, t.adversarial_steps, [])
    opt = torch.optim.AdamW(groups)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factors)
    rec_opt, rec_sched = _recognizer_optimizer([action, *advs], cfg, t.adversarial_steps)
    anonymizer, action, *advs, opt, sched, rec_opt, rec_sched, loader = acc.prepare(
        anonymizer, action, *advs, opt, sched, rec_opt, rec_sched, _loader(ds, cfg)
    )
    ckpt = CheckpointManager(acc, folder, keep_last=t.keep_last)
    start = ckpt.resume() if resume else 0
    norm = Normalizer(cfg.data.mean, cfg.data.std)
    for step, (video, label, privacy) in progress(
        iterate_steps(acc, loader, start_step=start, max_steps=t.adversarial_steps),
        acc,
        total=t.adversarial_steps,
        initial=start,
        desc="adversarial",
    ):
        if t.restart_every and step % t.restart_every == 0 and step > 0:
            for k, (a, f) in enumerate(zip(advs, t.adversaries)):
                _reinit(_unwrap(acc, a), cfg, f, cfg.seed * 7919 + step * 31 + k)
            rec_opt.optimizer.state.clear() if hasattr(rec_opt, "optimizer") else rec_opt.state.clear()
        anon = anonymizer(norm(video), decide="topk")
        # 1) the PAB against the current recognizers
        l_act = F.cross_entropy(recognize(action, anon.video, anon.keep), label)
        l_priv = torch.stack(
            [
                privacy_loss(recognize(a, anon.video, anon.keep), privacy, t.privacy_loss, t.privacy_clip)
                for a in advs
            ]
        ).mean()
        loss = (
            t.ratio_weight * sparsity_loss(anon.decisions, cfg.model.keep_ratio)
            + t.lambda_action * l_act
            + t.lambda_privacy * l_priv
        )
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        opt.step()
        sched.step()
        # 2) the recognizers on their own losses, on the (detached) anonymized video
        detached = anon.video.detach()
        r_act = F.cross_entropy(recognize(action, detached, anon.keep), label)
        r_priv = torch.stack(
            [
                F.binary_cross_entropy_with_logits(recognize(a, detached, anon.keep), privacy.float())
                for a in advs
            ]
        ).mean()
        rec_opt.zero_grad(set_to_none=True)
        acc.backward(r_act + r_priv)
        rec_opt.step()
        rec_sched.step()
        done = step + 1
        if done % t.log_every == 0 or done == t.adversarial_steps:
            losses = {"anonymizer": loss, "action": r_act, "privacy_bce": r_priv}
            check_finite(losses, done, accelerator=acc, checkpoint=ckpt.latest())
            acc.log({k: v.item() for k, v in losses.items()}, step=done)
        if should_save(done, t.save_every, t.adversarial_steps):
            ckpt.save(done)
    extra = {"action": action, **{f"adversary_{k}": a for k, a in enumerate(advs)}}
    _finish(acc, folder, cfg, anonymizer, ckpt, t.adversarial_steps, extra)
    return folder
