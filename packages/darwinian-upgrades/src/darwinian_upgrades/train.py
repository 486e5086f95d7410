"""One accelerate loop for every role: ``old``, ``independent``, ``bct``, ``dmu`` (embedding models) and ψ
(``train_adapter``, post hoc on cached features).

Roles and objectives (Sec. 3; L = CE_new + λ_bc L_(s)bc + λ_fa L_fa):
- ``old`` / ``independent``: CE of the model's own head.
- ``bct``: + λ_bc · CE(ω_o·φ_n(x), y) (``bct_influence_loss``).
- ``dmu``: + λ_bc · L_sbc (``selective_compatibility_loss``, weights s_i^γ from the frozen old model) and, with
  ``loss.adapter_mode=joint``, + λ_fa · L_fa for ψ (ω_n detached inside it); post hoc, ψ trains afterwards.
Exact resume: the seedable sampler, ``iterate_steps``' batch skipping and accelerate's saved RNG states make
N steps == k steps + resume + (N − k) steps, bit for bit (augmentation draws from the global RNG in the main
process, so ``data.num_workers`` must be 0 for that guarantee).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from darwinian_upgrades.config import Config, ModelConfig
from darwinian_upgrades.losses import (
    bct_influence_loss,
    contra_ract_loss,
    discriminativeness,
    focal_distillation_loss,
    forward_adaptation_loss,
    l2_compat_loss,
    selective_compatibility_loss,
    synthesise_old_rows,
)
from darwinian_upgrades.models import EmbeddingModel, ForwardAdapter, UpgradeModel
from visioncore.config import to_dict
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

ROLES = ("old", "independent", "bct", "dmu")


def build_model(mcfg: ModelConfig, num_classes: int) -> EmbeddingModel:
    """An embedding model from its config section; backbone weights only from a local file."""
    model = EmbeddingModel(
        num_classes,
        backbone=mcfg.backbone,
        width=mcfg.width,
        embed_dim=mcfg.embed_dim,
        head=mcfg.head,
        scale=mcfg.scale,
        margin=mcfg.margin,
    )
    if mcfg.weights:
        model.load_backbone_weights(mcfg.weights)
    return model


def dataset_labels(dataset: Dataset) -> torch.Tensor:
    entries = getattr(dataset, "entries", None)
    if entries is not None:
        return torch.tensor([label for _, label in entries])
    return torch.as_tensor([int(dataset[i][1]) for i in range(len(dataset))])  # type: ignore[arg-type]


def check_dims(old: EmbeddingModel, new_dim: int, source: str | Path) -> None:
    if old.embed_dim != new_dim:
        raise ValueError(
            f"{source}: the old model's embedding size {old.embed_dim} differs from the new model's {new_dim}; "
            "compatibility losses and cross-tests need equal sizes (or ψ for the gallery)"
        )


@torch.no_grad()
def extract(
    model: EmbeddingModel,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    flip: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(raw features, logits, labels) of a whole dataset, the model in eval mode; ``flip`` adds the features of
    the horizontally flipped images (IJB-C's flip-augmented features)."""
    was_training = model.training
    model.eval()
    feats, logits, labels = [], [], []
    for images, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        f = model.embed(images.to(device))
        if flip:
            f = f + model.embed(images.to(device).flip(-1))
        feats.append(f.float().cpu())
        logits.append(model.logits(f).float().cpu())
        labels.append(torch.as_tensor(y))
    model.train(was_training)
    return torch.cat(feats), torch.cat(logits), torch.cat(labels)


def old_classifier_rows(
    old: EmbeddingModel, dataset: Dataset, num_classes: int, *, batch_size: int = 256
) -> torch.Tensor:
    """ω_o sized to the new label space: rows of classes the old model never saw become class-mean old features."""
    weight = old.fc_classifier.weight.detach()
    seen = old.seen_classes.clone()
    if weight.shape[0] < num_classes:  # class growth beyond the old label space
        pad = num_classes - weight.shape[0]
        weight = torch.cat([weight, weight.new_zeros(pad, weight.shape[1])])
        seen = torch.cat([seen, seen.new_zeros(pad)])
    labels = dataset_labels(dataset)
    if bool(seen[labels.unique()].all()):
        return weight.clone()
    feats, _, labels = extract(old, dataset, batch_size=batch_size)
    return synthesise_old_rows(weight, feats, labels, seen, normalize=old.head != "linear")


def compute_losses(
    out: dict[str, torch.Tensor],
    labels: torch.Tensor,
    role: str,
    cfg: Config,
    pair: UpgradeModel,
    *,
    scores: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The role's loss terms (already weighted); ``scores`` overrides s_i (tests: all ones gives BCT)."""
    lc = cfg.loss
    losses = {"ce": F.cross_entropy(out["new_logits"], labels)}
    if role in ("old", "independent"):
        return losses
    old = pair.old
    assert old is not None
    head, scale = old.head, (old.scale if old.head != "linear" else None)
    old_weight = getattr(pair, "old_weight", old.fc_classifier.weight)
    if role == "bct":
        losses["bct"] = lc.lambda_bc * bct_influence_loss(
            out["new_feats"], old_weight, labels, head=head, scale=scale
        )
    else:
        s = discriminativeness(out["old_logits"], labels, tau=lc.tau) if scores is None else scores
        losses["sbc"] = lc.lambda_bc * selective_compatibility_loss(
            out["new_feats"], old_weight, labels, s, gamma=lc.gamma, head=head, scale=scale
        )
        if "adapted" in out:
            new = pair.new
            losses["fa"] = lc.lambda_fa * forward_adaptation_loss(
                out["adapted"],
                out["new_feats"],
                new.fc_classifier.weight.detach(),
                labels,
                s,
                head=new.head,
                scale=new.scale if new.head != "linear" else None,
                l2_weight=lc.l2_weight,
            )
    if lc.comparison == "l2":
        losses["l2"] = lc.comparison_weight * l2_compat_loss(out["new_feats"], out["old_feats"])
    elif lc.comparison == "fd":
        losses["fd"] = lc.comparison_weight * focal_distillation_loss(
            out["new_feats"], out["old_feats"], out["new_logits"], labels
        )
    elif lc.comparison == "contra_ract":
        losses["contra_ract"] = lc.comparison_weight * contra_ract_loss(
            out["new_feats"], out["old_feats"], labels, temperature=lc.ract_temperature
        )
    return losses


def run_loop(
    out_dir: str | Path,
    cfg: Config,
    module: nn.Module,
    dataset: Dataset,
    step_fn: Callable[[nn.Module, tuple], dict[str, torch.Tensor]],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    save_model: nn.Module,
    resume: bool = False,
    cpu: bool = True,
    mixed_precision: str = "no",
    trackers: tuple[str, ...] = ("jsonl",),
) -> int:
    """The shared loop: prepare, resume, step, log, check, checkpoint, save ``save_model`` to ``out_dir/model``."""
    tc = cfg.train
    acc = make_accelerator(
        out_dir, mixed_precision=mixed_precision, config=to_dict(cfg), trackers=trackers, cpu=cpu
    )
    params = [p for p in module.parameters() if p.requires_grad]
    if tc.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=lr, weight_decay=tc.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
    if tc.schedule == "cosine":
        scheduler = warmup_cosine_schedule(optimizer, tc.warmup_steps, steps, tc.min_lr_ratio)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=cfg.data.num_workers
    )
    module, optimizer, loader, scheduler = acc.prepare(module, optimizer, loader, scheduler)
    checkpoints = CheckpointManager(acc, out_dir, keep_last=tc.keep_last)
    start = checkpoints.resume() if resume else 0
    module.train()
    for step, batch in iterate_steps(acc, loader, start_step=start, max_steps=steps):
        losses = step_fn(module, batch)
        loss = sum(losses.values())
        acc.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        if done % tc.log_every == 0 or done == steps:
            check_finite(losses, done, accelerator=acc, checkpoint=checkpoints.latest())
            acc.log(
                {k: v.detach().float().item() for k, v in losses.items()}
                | {"lr": scheduler.get_last_lr()[0]},
                step=done,
            )
        if should_save(done, tc.save_every, steps):
            checkpoints.save(done)
    _sync_buffers(acc, save_model)
    save_final(acc, out_dir, model=save_model, config=cfg, checkpoints=checkpoints, step=steps)
    acc.end_training()
    return steps


def _sync_buffers(acc, model: nn.Module) -> None:
    """Rank 0's BatchNorm statistics for every rank: DDP broadcasts buffers before each forward, so after the last
    one each rank has updated its own copy with its own batch."""
    if acc.num_processes > 1:
        import torch.distributed as dist

        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


def train(
    cfg: Config,
    role: str,
    out_dir: str | Path,
    dataset: Dataset,
    *,
    old_model: EmbeddingModel | None = None,
    old_source: str | Path = "old model",
    num_classes: int | None = None,
    resume: bool = False,
    cpu: bool = True,
    mixed_precision: str = "no",
    trackers: tuple[str, ...] = ("jsonl",),
) -> EmbeddingModel:
    """Train one role's embedding model on ``dataset``; returns the trained model (also in ``out_dir/model``)."""
    if role not in ROLES:
        raise ValueError(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    if role in ("bct", "dmu") and old_model is None:
        raise ValueError(f"--role {role} needs --old-model DIR")
    labels = dataset_labels(dataset)
    num_classes = num_classes or int(labels.max()) + 1
    mcfg = cfg.old if role == "old" else cfg.new
    seed_everything(cfg.train.seed)  # same initialisation and batches for every new-model role
    new = build_model(mcfg, num_classes)
    new.seen_classes[labels.unique()] = True
    adapter = None
    old = None
    if role in ("bct", "dmu"):
        old = old_model
        check_dims(old, new.embed_dim, old_source)
        if role == "dmu" and cfg.loss.adapter_mode == "joint":
            adapter = ForwardAdapter(old.embed_dim, new.embed_dim)
    pair = UpgradeModel(new, old, adapter)
    if old is not None:
        pair.set_old_weight(old_classifier_rows(old, dataset, num_classes))

    def step_fn(module: nn.Module, batch: tuple) -> dict[str, torch.Tensor]:
        images, y = batch
        return compute_losses(module(images, y), y, role, cfg, pair)

    steps = cfg.train.old_steps if role == "old" else cfg.train.steps
    run_loop(
        out_dir,
        cfg,
        pair,
        dataset,
        step_fn,
        steps=steps,
        batch_size=cfg.train.batch_size,
        lr=cfg.train.lr,
        save_model=new,
        resume=resume,
        cpu=cpu,
        mixed_precision=mixed_precision,
        trackers=trackers,
    )
    if adapter is not None:
        adapter.save_pretrained(Path(out_dir) / "adapter")
    new.eval()
    return new


# ---------------------------------------------------------------------------------------------- ψ, post hoc
def adapter_features(
    old: EmbeddingModel,
    new: EmbeddingModel,
    dataset: Dataset,
    *,
    tau: float = 1.0,
    num_classes: int | None = None,
) -> TensorDataset:
    """Cached (φ_o(x), φ_n(x), s, y) of the training set for post-hoc ψ training."""
    labels = dataset_labels(dataset)
    weight = old_classifier_rows(old, dataset, num_classes or int(labels.max()) + 1)
    old_feats, _, y = extract(old, dataset)
    new_feats, _, _ = extract(new, dataset)
    scale = old.scale if old.head != "linear" else None
    from darwinian_upgrades.models.embedding import class_logits

    scores = discriminativeness(class_logits(old_feats, weight, head=old.head, scale=scale), y, tau=tau)
    return TensorDataset(old_feats, new_feats, scores, y)


def train_adapter(
    cfg: Config,
    out_dir: str | Path,
    cached: TensorDataset,
    new: EmbeddingModel,
    *,
    resume: bool = False,
    cpu: bool = True,
    trackers: tuple[str, ...] = ("jsonl",),
) -> ForwardAdapter:
    """ψ post hoc (DMU's "lightweight" variation): minimise L_fa on cached features, batch ``adapter.batch_size``."""
    old_dim, new_dim = cached.tensors[0].shape[1], cached.tensors[1].shape[1]
    seed_everything(cfg.train.seed)
    adapter = ForwardAdapter(old_dim, new_dim)
    weight = new.fc_classifier.weight.detach().clone()
    head, scale = new.head, (new.scale if new.head != "linear" else None)

    def step_fn(module: nn.Module, batch: tuple) -> dict[str, torch.Tensor]:
        old_f, new_f, s, y = batch
        return {
            "fa": forward_adaptation_loss(
                module(old_f),
                new_f,
                weight.to(old_f.device),
                y,
                s,
                head=head,
                scale=scale,
                l2_weight=cfg.loss.l2_weight,
            )
        }

    ac = cfg.adapter
    run_loop(
        out_dir,
        cfg,
        adapter,
        cached,
        step_fn,
        steps=ac.steps,
        batch_size=min(ac.batch_size, len(cached)),
        lr=ac.lr,
        save_model=adapter,
        resume=resume,
        cpu=cpu,
        trackers=trackers,
    )
    adapter.eval()
    return adapter
