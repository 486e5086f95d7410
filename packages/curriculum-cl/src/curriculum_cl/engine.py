"""Class-incremental learners on cached features, many runs at once.

With a frozen feature extractor only the linear head trains (paper: the new 1x1 classifier conv of SqueezeNet 1.1,
10 outputs even for 5 classes), so every run (curriculum x seed) is a tiny independent model. ``run_heads`` stacks
the heads of many runs into ``W [R, C, D]``, ``b [R, C]`` and trains them together: each step gathers one
minibatch per run, and a run whose experience has fewer batches simply sits out (masked Adam step). Adam's state is
reset at every experience, as Avalanche 0.1's ``make_optimizer`` does.

Strategies: naive fine-tuning, EWC ('separate' penalties), LwF (per-experience alpha, temperature), Replay
(experience-balanced memory of a fraction of the training set, each minibatch joined by as many memory samples),
SI (path-integral importance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from curriculum_cl.errors import CurriculumError
from curriculum_cl.losses import (
    ewc_penalty,
    lwf_distillation,
    masked_cross_entropy,
    si_consolidate,
    si_penalty,
)

ALGORITHMS = ("naive", "ewc", "lwf", "replay", "si")
FISHER_MODES = ("empirical_batch", "per_sample")


@dataclass
class FeatureSet:
    """Cached features: ``train [V, N, D]`` (V augmented views, 1 without augmentation), ``test [M, D]``."""

    train: torch.Tensor
    train_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.train.ndim == 2:
            self.train = self.train.unsqueeze(0)
        self.train = self.train.float()
        self.test = self.test.float()
        self.train_labels = self.train_labels.long()
        self.test_labels = self.test_labels.long()


@dataclass
class LearnerSettings:
    """Head training and strategy hyper-parameters (paper defaults; see configs/*.yaml)."""

    num_outputs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    passes: int = 1
    dropout: float = 0.0
    ewc_lambda: float = 0.4
    # empirical_batch: Avalanche's importance (squared minibatch-mean gradients; the default, for parity);
    # per_sample: Kirkpatrick et al.'s empirical Fisher (mean of per-sample squared log-likelihood gradients).
    ewc_fisher: str = "empirical_batch"
    lwf_alpha: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.333, 2.25, 3.2])
    lwf_temperature: float = 1.0
    replay_fraction: float = 0.1
    si_lambda: float = 1.0
    si_eps: float = 1e-7

    def __post_init__(self) -> None:
        from visioncore.config import ConfigError, in_range, positive

        for name in ("num_outputs", "lr", "batch_size", "passes", "lwf_temperature", "si_eps"):
            positive(f"learner.{name}", getattr(self, name))
        for name in ("ewc_lambda", "si_lambda"):
            positive(f"learner.{name}", getattr(self, name), allow_zero=True)
        in_range("learner.replay_fraction", self.replay_fraction, 0.0, 1.0)
        if self.ewc_fisher not in FISHER_MODES:
            raise ConfigError(
                f"learner.ewc_fisher must be one of {', '.join(FISHER_MODES)}, got {self.ewc_fisher!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"learner.dropout must be in [0, 1), got {self.dropout}")
        if not self.lwf_alpha or any(a < 0 for a in self.lwf_alpha):
            raise ConfigError(
                f"learner.lwf_alpha must be a non-empty list of values >= 0, got {self.lwf_alpha}"
            )


@dataclass
class RunSpec:
    """One run: a curriculum (its experiences' class labels) under one seed."""

    curriculum_id: int
    seed: int
    experiences: list[list[int]]


@dataclass
class RunResults:
    """``acc [R, T, T]``: accuracy on experience j after experience i.

    ``drift [R, T]``: over experience t, the mean L2 change of the previously seen classes' logits on those classes'
    own test images (NaN for t = 0). ``drift_centered``: the same with every logit vector centred (its mean over all
    output units subtracted first), so a common shift of all logits, to which LwF's softmax is blind, does not count.
    """

    acc: np.ndarray
    drift: np.ndarray | None = None
    drift_centered: np.ndarray | None = None


_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8


class _BatchedAdam:
    """torch.optim.Adam's update, per run, applied only to the runs that take a step."""

    def __init__(self, params: list[torch.Tensor], lr: float) -> None:
        self.params, self.lr = params, lr
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.steps = torch.zeros(params[0].shape[0], dtype=params[0].dtype)

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], active: torch.Tensor) -> None:
        self.steps += active.to(self.steps.dtype)
        t = self.steps.clamp_min(1.0)
        bc1, bc2 = 1 - _BETA1**t, 1 - _BETA2**t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            shape = (-1,) + (1,) * (p.ndim - 1)
            a = active.view(shape)
            m.copy_(torch.where(a, _BETA1 * m + (1 - _BETA1) * g, m))
            v.copy_(torch.where(a, _BETA2 * v + (1 - _BETA2) * g * g, v))
            denom = v.sqrt() / bc2.sqrt().view(shape) + _ADAM_EPS
            p.sub_(torch.where(a, (self.lr / bc1).view(shape) * m / denom, 0.0))


def init_heads(seeds: list[int], num_outputs: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.Linear / nn.Conv2d default init, U(-1/sqrt(D), 1/sqrt(D)), drawn from each run's seed."""
    bound = 1.0 / math.sqrt(dim)
    ws, bs = [], []
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        ws.append((torch.rand(num_outputs, dim, generator=gen) * 2 - 1) * bound)
        bs.append((torch.rand(num_outputs, generator=gen) * 2 - 1) * bound)
    return torch.stack(ws), torch.stack(bs)


def _pad_batches(batches: list[list[np.ndarray]], batch_size: int) -> tuple[torch.Tensor, ...]:
    """Per-run lists of index arrays -> idx [R, S, B], sample mask [R, S, B], step mask [R, S]."""
    runs, steps = len(batches), max(len(b) for b in batches)
    idx = np.zeros((runs, steps, batch_size), dtype=np.int64)
    mask = np.zeros((runs, steps, batch_size), dtype=bool)
    for r, run_batches in enumerate(batches):
        for s, b in enumerate(run_batches):
            idx[r, s, : len(b)] = b
            mask[r, s, : len(b)] = True
    return torch.from_numpy(idx), torch.from_numpy(mask), torch.from_numpy(mask.any(-1))


def _epoch_batches(pool: np.ndarray, batch_size: int, passes: int, rng: np.random.Generator | None) -> list:
    """Minibatches of ``passes`` passes over ``pool`` (shuffled per pass when ``rng`` is given; last batch short)."""
    out = []
    for _ in range(passes):
        order = rng.permutation(pool) if rng is not None else pool
        out.extend(order[i : i + batch_size] for i in range(0, len(order), batch_size))
    return out


def run_heads(
    features: FeatureSet,
    runs: list[RunSpec],
    algorithm: str,
    settings: LearnerSettings,
    *,
    base_seed: int = 0,
    record_drift: bool = False,
) -> RunResults:
    """Train one head per run through its curriculum; evaluate on the full test stream after every experience."""
    if algorithm not in ALGORITHMS:
        raise CurriculumError(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
    num_exp = len(runs[0].experiences)
    if any(len(r.experiences) != num_exp for r in runs):
        raise CurriculumError("all runs of one batch need the same number of experiences")
    C, (V, _, D) = settings.num_outputs, features.train.shape
    labels_np = features.train_labels.numpy()
    max_label = max(max(c for e in r.experiences for c in e) for r in runs)
    if max_label >= C:
        raise CurriculumError(f"class {max_label} needs more than learner.num_outputs={C} output units")
    class_pool = {int(c): np.flatnonzero(labels_np == c) for c in np.unique(labels_np)}
    for r in runs:
        for c in (c for e in r.experiences for c in e):
            if c not in class_pool:
                raise CurriculumError(f"class {c} has no training samples in the cached features")
    R = len(runs)
    W, b = init_heads([base_seed * 100_003 + r.seed for r in runs], C, D)
    W.requires_grad_(True)
    b.requires_grad_(True)
    params = [W, b]
    data_rngs = [np.random.default_rng([base_seed, r.seed, r.curriculum_id]) for r in runs]
    torch_gen = torch.Generator().manual_seed(base_seed * 7919 + 17)

    # exp_of_class[r, c] = experience index of class c in run r (-1: not in the curriculum)
    exp_of_class = torch.full((R, C), -1, dtype=torch.long)
    for i, r in enumerate(runs):
        for t, exp in enumerate(r.experiences):
            exp_of_class[i, exp] = t
    test_exp = exp_of_class[:, features.test_labels]  # [R, M]
    test_onehot = (
        torch.nn.functional.one_hot(test_exp.clamp_min(0), num_exp).float() * (test_exp >= 0)[..., None]
    )

    acc = np.zeros((R, num_exp, num_exp))
    drift = np.full((R, num_exp), np.nan) if record_drift else None
    drift_centered = np.full((R, num_exp), np.nan) if record_drift else None
    ewc_anchors: list[list[torch.Tensor]] = []
    ewc_importances: list[list[torch.Tensor]] = []
    si_omega = [torch.zeros_like(p) for p in params]
    si_anchor = [p.detach().clone() for p in params]
    memory: list[dict[int, np.ndarray]] = [{} for _ in runs]
    prev_test_logits = None

    for t in range(num_exp):
        pools = [np.concatenate([class_pool[c] for c in r.experiences[t]]) for r in runs]
        batches = [
            _epoch_batches(p, settings.batch_size, settings.passes, g) for p, g in zip(pools, data_rngs)
        ]
        idx, smask, active = _pad_batches(batches, settings.batch_size)
        mem_idx, mem_len = _memory_tensor(memory)
        seen_units = (exp_of_class < t) & (exp_of_class >= 0)  # [R, C]
        lwf_alpha = settings.lwf_alpha[min(t, len(settings.lwf_alpha) - 1)]
        prev_params = [p.detach().clone() for p in params]
        start_params = [p.detach().clone() for p in params]
        si_path = [torch.zeros_like(p) for p in params]
        optimizer = _BatchedAdam(params, settings.lr)

        for s in range(idx.shape[1]):
            batch_idx, batch_mask, step_active = idx[:, s], smask[:, s], active[:, s]
            if algorithm == "replay" and t > 0:
                picks = (torch.rand(R, settings.batch_size, generator=torch_gen) * mem_len[:, None]).long()
                batch_idx = torch.cat([batch_idx, mem_idx.gather(1, picks)], 1)
                batch_mask = torch.cat([batch_mask, batch_mask.any(1, keepdim=True).expand_as(batch_mask)], 1)
            x = _gather(features.train, batch_idx, V, torch_gen)
            y = features.train_labels[batch_idx]
            if settings.dropout > 0:
                keep = torch.rand(x.shape, generator=torch_gen) >= settings.dropout
                x = x * keep / (1 - settings.dropout)
            logits = torch.baddbmm(b[:, None, :], x, W.transpose(1, 2))
            task_loss = masked_cross_entropy(logits, y, batch_mask)
            loss = task_loss
            if algorithm == "ewc" and ewc_anchors:
                loss = loss + settings.ewc_lambda * ewc_penalty(params, ewc_anchors, ewc_importances)
            elif algorithm == "lwf" and t > 0:
                with torch.no_grad():
                    prev_logits = torch.baddbmm(prev_params[1][:, None, :], x, prev_params[0].transpose(1, 2))
                distill = lwf_distillation(
                    logits, prev_logits, seen_units, batch_mask, settings.lwf_temperature
                )
                loss = loss + lwf_alpha * distill
            elif algorithm == "si" and t > 0:
                loss = loss + settings.si_lambda * si_penalty(params, si_anchor, si_omega)
            weight = step_active.to(loss.dtype)
            grads = torch.autograd.grad((loss * weight).sum(), params, retain_graph=algorithm == "si")
            if algorithm == "si":
                task_grads = torch.autograd.grad((task_loss * weight).sum(), params)
                before = [p.detach().clone() for p in params]
            optimizer.step(list(grads), step_active)
            if algorithm == "si":
                for w, g, p, p0 in zip(si_path, task_grads, params, before):
                    w.add_(-g * (p.detach() - p0))

        if algorithm == "ewc":
            ewc_anchors.append([p.detach().clone() for p in params])
            fisher = fisher_per_sample if settings.ewc_fisher == "per_sample" else fisher_diagonal
            ewc_importances.append(fisher(features, params, pools, settings.batch_size))
        elif algorithm == "si":
            delta = [p.detach() - p0 for p, p0 in zip(params, start_params)]
            si_omega = si_consolidate(si_omega, si_path, delta, settings.si_eps)
            si_anchor = [p.detach().clone() for p in params]
        elif algorithm == "replay":
            _update_memory(memory, pools, t, settings.replay_fraction, runs, class_pool, data_rngs)

        with torch.no_grad():
            test_logits = torch.einsum("md,rcd->rmc", features.test, W) + b[:, None, :]
            correct = (test_logits.argmax(-1) == features.test_labels[None]).float()
            acc[:, t, :] = (
                (correct[..., None] * test_onehot).sum(1) / test_onehot.sum(1).clamp_min(1)
            ).numpy()
            if record_drift and t > 0:
                old_images = ((test_exp < t) & (test_exp >= 0)).float()
                change = test_logits - prev_test_logits
                centred = change - change.mean(-1, keepdim=True)  # = change of the centred logit vectors
                for out, delta in ((drift, change), (drift_centered, centred)):
                    norms = (delta * seen_units[:, None, :]).norm(dim=-1)
                    out[:, t] = ((norms * old_images).sum(1) / old_images.sum(1).clamp_min(1)).numpy()
            prev_test_logits = test_logits
    return RunResults(acc=acc, drift=drift, drift_centered=drift_centered)


def _gather(train: torch.Tensor, idx: torch.Tensor, views: int, gen: torch.Generator) -> torch.Tensor:
    """Features of ``idx [R, B]``; with cached augmented views, a random view per sample draw."""
    if views == 1:
        return train[0][idx]
    view = torch.randint(0, views, idx.shape, generator=gen)
    return train[view, idx]


def fisher_diagonal(
    features: FeatureSet, params: list[torch.Tensor], pools: list[np.ndarray], batch_size: int
) -> list[torch.Tensor]:
    """EWC importances as Avalanche 0.1: squared gradients of each minibatch's mean loss (experience data in
    order, no shuffle), averaged over the run's number of minibatches."""
    batches = [_epoch_batches(p, batch_size, 1, None) for p in pools]
    idx, smask, active = _pad_batches(batches, batch_size)
    importance = [torch.zeros_like(p) for p in params]
    W, b = params
    for s in range(idx.shape[1]):
        x = features.train[0][idx[:, s]]
        logits = torch.baddbmm(b[:, None, :], x, W.transpose(1, 2))
        loss = masked_cross_entropy(logits, features.train_labels[idx[:, s]], smask[:, s])
        grads = torch.autograd.grad(loss.sum(), params)
        for imp, g in zip(importance, grads):
            imp.add_(g.pow(2) * active[:, s].view((-1,) + (1,) * (g.ndim - 1)))
    counts = active.sum(1).clamp_min(1).float()
    return [imp / counts.view((-1,) + (1,) * (imp.ndim - 1)) for imp in importance]


@torch.no_grad()
def fisher_per_sample(
    features: FeatureSet, params: list[torch.Tensor], pools: list[np.ndarray], batch_size: int
) -> list[torch.Tensor]:
    """EWC importances as Kirkpatrick et al. (2017) define the empirical Fisher: the mean over the experience's
    samples of the squared gradient of each sample's log-likelihood log p(y | x). For the linear head the per-sample
    gradient is closed-form, (p - onehot(y)) x^T for W and p - onehot(y) for b, so no per-sample backward is needed."""
    batches = [_epoch_batches(p, batch_size, 1, None) for p in pools]
    idx, smask, _ = _pad_batches(batches, batch_size)
    W, b = params
    fisher_w, fisher_b = torch.zeros_like(W), torch.zeros_like(b)
    for s in range(idx.shape[1]):
        x = features.train[0][idx[:, s]]  # [R, B, D]
        y = features.train_labels[idx[:, s]]
        mask = smask[:, s].to(x.dtype)[..., None]  # [R, B, 1]
        residual = torch.softmax(torch.baddbmm(b[:, None, :], x, W.transpose(1, 2)), -1)
        residual = (residual - torch.nn.functional.one_hot(y, W.shape[1]).to(x.dtype)) * mask  # [R, B, C]
        fisher_w += torch.einsum("rbc,rbd->rcd", residual.pow(2), x.pow(2))
        fisher_b += residual.pow(2).sum(1)
    counts = smask.flatten(1).sum(1).clamp_min(1).to(W.dtype)
    return [fisher_w / counts[:, None, None], fisher_b / counts[:, None]]


def _memory_tensor(memory: list[dict[int, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    flat = [np.concatenate(list(m.values())) if m else np.zeros(0, dtype=np.int64) for m in memory]
    size = max(1, max(len(f) for f in flat))
    idx = np.zeros((len(flat), size), dtype=np.int64)
    for r, f in enumerate(flat):
        idx[r, : len(f)] = f
    return torch.from_numpy(idx), torch.tensor([max(1, len(f)) for f in flat], dtype=torch.float32)


def _update_memory(
    memory: list[dict[int, np.ndarray]],
    pools: list[np.ndarray],
    t: int,
    fraction: float,
    runs: list[RunSpec],
    class_pool: dict[int, np.ndarray],
    rngs: list[np.random.Generator],
) -> None:
    """Experience-balanced memory: after experience t each experience keeps size // (t + 1) random samples."""
    for r, run in enumerate(runs):
        total = sum(len(class_pool[c]) for e in run.experiences for c in e)
        per_exp = max(1, int(fraction * total) // (t + 1))
        memory[r][t] = rngs[r].permutation(pools[r])[:per_exp]
        for k in memory[r]:
            memory[r][k] = memory[r][k][:per_exp]
