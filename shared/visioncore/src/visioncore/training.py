"""Thin helpers around `accelerate` for the paper packages' own training loops (not a trainer).

A loop built on these pieces looks like::

    seed_everything(cfg.seed)
    acc = make_accelerator(out_dir, mixed_precision=cfg.mixed_precision, config=to_dict(cfg))
    model, opt, loader = acc.prepare(model, opt, loader)
    ckpt = CheckpointManager(acc, out_dir, keep_last=3)
    start = ckpt.resume() if resume else 0
    for step, batch in iterate_steps(acc, loader, start_step=start, max_steps=cfg.steps):
        loss = ...; check_finite(loss, step); acc.backward(loss); opt.step(); opt.zero_grad()
        if (step + 1) % cfg.save_every == 0: ckpt.save(step + 1)

Checkpoints are ``<project_dir>/checkpoints/step_000500/`` folders written by ``accelerator.save_state`` into a
hidden temporary folder and renamed into place once complete, so a crash mid-save never leaves a checkpoint that looks
complete; ``trainer_state.json`` (the step and any extra state) is the last file written before the rename.
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.tracking import GeneralTracker, on_main_process
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from torch.optim.lr_scheduler import LambdaLR
from tqdm.auto import tqdm

from visioncore.devices import retain_freed_host_memory
from visioncore.errors import NonFiniteLossError

__all__ = [
    "CheckpointManager",
    "JsonlTracker",
    "NonFiniteLossError",
    "check_finite",
    "iterate_steps",
    "make_accelerator",
    "progress",
    "run_distributed",
    "save_final",
    "seed_everything",
    "should_save",
    "warmup_cosine_schedule",
]

_STEP_DIR = re.compile(r"^step_(\d+)$")
_STATE_FILE = "trainer_state.json"


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices) so a run is repeatable (``accelerate.utils.set_seed``)."""
    set_seed(seed)


class JsonlTracker(GeneralTracker):
    """An accelerate tracker that appends one JSON object per ``log`` call; works offline, always."""

    name = "jsonl"
    requires_logging_directory = True

    def __init__(self, run_name: str, logging_dir: str | os.PathLike):
        # No file system work here: the tracker is built before the Accelerator, when the process rank is unknown
        # (asking for it would initialise accelerate's state as a single process).
        super().__init__()
        self.path = Path(logging_dir) / run_name / "metrics.jsonl"

    @property
    def tracker(self) -> Path:
        return self.path

    @on_main_process
    def store_init_configuration(self, values: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        (self.path.parent / "config.json").write_text(json.dumps(values, indent=2, default=str))

    @on_main_process
    def log(self, values: dict, step: int | None = None, **kwargs: Any) -> None:
        row = {"step": step, **{k: _plain(v) for k, v in values.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> flat scalar dict (tensorboard's hparams accept scalars and strings only)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def make_accelerator(
    project_dir: str | os.PathLike,
    *,
    mixed_precision: str = "no",
    gradient_accumulation_steps: int = 1,
    trackers: Sequence[str] = ("jsonl", "tensorboard"),
    project_name: str = "train",
    config: Mapping[str, Any] | None = None,
    cpu: bool = False,
) -> Accelerator:
    """An ``Accelerator`` logging to ``project_dir/logs/<project_name>/`` (JSONL and tensorboard).

    Uses accelerate's seedable sampler so that the shuffle order of an epoch depends only on the seed and the epoch:
    this is what makes a resumed run see exactly the batches an uninterrupted one would.

    Learning-rate schedules count optimizer steps, whatever the number of processes: the loop calls
    ``scheduler.step()`` once per optimizer step (under gradient accumulation only when ``accelerator.sync_gradients``),
    and a scheduler passed through ``accelerator.prepare`` steps once per call (``step_scheduler_with_optimizer=False``;
    accelerate's default would step it once per process, shortening a warm-up N-fold on N GPUs).
    """
    project_dir = Path(project_dir)
    logging_dir = project_dir / "logs"
    log_with: list[Any] = []
    for name in trackers:
        if name == "jsonl":
            log_with.append(JsonlTracker(project_name, logging_dir))
        elif name == "tensorboard":
            log_with.append("tensorboard")
        else:
            raise ValueError(f"unknown tracker {name!r} (known: jsonl, tensorboard)")
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=gradient_accumulation_steps,
        log_with=log_with or None,
        project_config=ProjectConfiguration(project_dir=str(project_dir), logging_dir=str(logging_dir)),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        step_scheduler_with_optimizer=False,
        cpu=cpu,
    )
    if accelerator.device.type == "cpu":  # CPU steps otherwise page-fault every activation in anew
        retain_freed_host_memory()
    if log_with:
        accelerator.init_trackers(project_name, config=_flatten(dict(config or {})))
    return accelerator


class CheckpointManager:
    """Atomic, pruned, resumable checkpoints under ``<project_dir>/checkpoints/step_XXXXXX/``."""

    def __init__(self, accelerator: Accelerator, project_dir: str | os.PathLike, keep_last: int = 3):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.accelerator = accelerator
        self.root = Path(project_dir) / "checkpoints"
        self.keep_last = keep_last
        self._extra: dict[str, Any] = {}

    def complete(self) -> list[Path]:
        """Finished checkpoints, oldest first (a folder counts only once its state file is in place)."""
        if not self.root.is_dir():
            return []
        found = [
            (int(m.group(1)), p)
            for p in self.root.iterdir()
            if (m := _STEP_DIR.match(p.name)) and (p / _STATE_FILE).is_file()
        ]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        done = self.complete()
        return done[-1] if done else None

    def save(self, step: int, extra: Mapping[str, Any] | None = None) -> Path:
        """Save the full training state (models, optimisers, schedulers, RNGs) at ``step``; all ranks must call it."""
        acc = self.accelerator
        final = self.root / f"step_{step:06d}"
        tmp = self.root / f".tmp_step_{step:06d}"
        if acc.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)  # left over by a crash
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            state = {"step": step, "extra": dict(extra or {})}
            (tmp / _STATE_FILE).write_text(json.dumps(state, indent=2, default=_plain))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            self._prune()
        acc.wait_for_everyone()
        return final

    def _prune(self) -> None:
        for old in self.complete()[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)

    def resume(self, path: str | os.PathLike | None = None) -> int:
        """Load the latest (or the given) checkpoint into the prepared objects; return its step (0 if none)."""
        target = Path(path) if path is not None else self.latest()
        if target is None:
            self._extra = {}
            return 0
        state_file = target / _STATE_FILE
        if not state_file.is_file():
            raise FileNotFoundError(f"{target}: not a complete checkpoint (no {_STATE_FILE})")
        self.accelerator.wait_for_everyone()
        self.accelerator.load_state(str(target))
        state = json.loads(state_file.read_text())
        self._extra = state.get("extra", {})
        return int(state["step"])

    def extra_state(self) -> dict[str, Any]:
        """The ``extra`` mapping saved with the checkpoint last resumed from."""
        return dict(self._extra)


def iterate_steps(
    accelerator: Accelerator,
    dataloader: Iterable,
    *,
    start_step: int = 0,
    max_steps: int,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(step, batch)`` for ``step`` in ``[start_step, max_steps)``, looping over epochs.

    ``step`` counts batches seen by this process. Resuming at ``start_step`` sets the sampler's epoch and skips the
    batches of that epoch already consumed (``accelerator.skip_first_batches``), so the run continues with exactly the
    batches an uninterrupted run would have seen. With gradient accumulation the optimiser step is
    ``step // gradient_accumulation_steps``.
    """
    per_epoch = len(dataloader)  # type: ignore[arg-type]
    if per_epoch == 0:
        raise ValueError("the dataloader is empty (fewer samples than one batch per process?)")
    step = start_step
    epoch, skip = divmod(start_step, per_epoch)
    while step < max_steps:
        if hasattr(dataloader, "set_epoch"):
            dataloader.set_epoch(epoch)
        batches = accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
        for batch in _isolated_start(batches):
            yield step, batch
            step += 1
            if step >= max_steps:
                return
        epoch, skip = epoch + 1, 0


def _isolated_start(batches: Iterable) -> Iterator[Any]:
    """Iterate ``batches`` without letting the start of the iteration draw from the global torch RNG.

    A DataLoader draws a worker base seed from the global RNG when its iterator starts. An uninterrupted run starts
    iterators at epoch boundaries, a resumed run mid-epoch, so that draw would shift every later random number
    (dropout, noise, masks) of the resumed run. Datasets should draw augmentation randomness from their own seeded
    generators (e.g. seeded by epoch and index), not the global RNG, for the same reason.
    """
    iterator = iter(batches)
    with torch.random.fork_rng(devices=[]):
        first = next(iterator, _END)
    if first is _END:
        return
    yield first
    yield from iterator


_END = object()


def check_finite(
    losses: torch.Tensor | float | Mapping[str, torch.Tensor | float],
    step: int,
    *,
    accelerator: Accelerator | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> None:
    """Raise ``NonFiniteLossError`` on every rank when any rank's loss is NaN or infinite.

    ``losses`` is one loss or a mapping name -> loss. The non-finite flags are summed over processes, so a NaN seen on
    one rank stops them all instead of leaving the others waiting in the next all-reduce; every rank must call this at
    the same steps. It syncs with the host: call it at log steps, not every step. The message names the step, the
    loss and ``checkpoint`` (the last good state; pass ``CheckpointManager.latest()``).
    """
    items = losses.items() if isinstance(losses, Mapping) else [("loss", losses)]
    names = [name for name, _ in items]
    values = torch.stack(
        [
            v.detach().float().mean().cpu() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
            for _, v in items
        ]
    )
    bad = (~torch.isfinite(values)).float()
    if accelerator is not None and accelerator.num_processes > 1:
        bad = accelerator.reduce(bad.to(accelerator.device), reduction="sum").cpu()
    elif dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(bad)
    if not bool(bad.any()):
        return
    which = ", ".join(f"{name}={values[i].item()}" for i, name in enumerate(names) if bad[i] > 0)
    last = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was saved before it"
    raise NonFiniteLossError(f"non-finite loss at step {step} ({which}, on some process); {last}")


def should_save(step: int, every: int, max_steps: int) -> bool:
    """Whether to checkpoint after ``step`` completed steps: every ``every`` steps (0: never) and at the end."""
    return step == max_steps or (every > 0 and step % every == 0)


def save_final(
    accelerator: Accelerator,
    out_dir: str | os.PathLike,
    *,
    model: torch.nn.Module,
    config: Any,
    checkpoints: CheckpointManager | None,
    step: int,
) -> Path:
    """The end of a training run: ``config.yaml``, ``model/`` (``save_pretrained`` of the unwrapped model) and a
    final checkpoint at ``step`` unless one is already there. All ranks must call it; returns ``out_dir/model``."""
    from visioncore.config import save_config

    out_dir = Path(out_dir)
    if checkpoints is not None:
        latest = checkpoints.latest()
        if latest is None or latest.name != f"step_{step:06d}":
            checkpoints.save(step)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_config(config, out_dir / "config.yaml")
        accelerator.unwrap_model(model).save_pretrained(out_dir / "model")
    accelerator.wait_for_everyone()
    return out_dir / "model"


def warmup_cosine_schedule(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> LambdaLR:
    """Linear warm-up from 0 (``step / warmup_steps``), then half-cosine decay to ``min_ratio`` times the base LR at
    ``total_steps`` (the MAE / ViT recipes): transformers' ``get_cosine_with_min_lr_schedule_with_warmup``."""
    from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup

    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps, min_lr_rate=min_ratio
    )


def progress(iterable: Iterable | None = None, accelerator: Accelerator | None = None, **kwargs: Any) -> tqdm:
    """A tqdm progress bar, shown on the main process only."""
    hidden = kwargs.pop("disable", False) or (accelerator is not None and not accelerator.is_main_process)
    return tqdm(iterable, disable=hidden, dynamic_ncols=True, **kwargs)


def _fresh_state_call(fn: Any, args: tuple) -> None:
    # Forked workers inherit the parent's accelerate singletons (single-process); forget them first.
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    fn(*args)


def run_distributed(fn: Any, *args: Any, num_processes: int = 2) -> None:
    """Run ``fn(*args)`` in ``num_processes`` CPU processes joined by gloo (as ``accelerate launch --multi_gpu``).

    For tests of the training loops: ``accelerate launch --cpu --num_processes 2`` silently runs one process. The
    workers are forked by a fresh helper interpreter (``visioncore._launch``), never by this process: after any
    multi-threaded torch op, GNU OpenMP hangs in forked children. ``fn`` must be a module-level function; ``args``
    must pickle. A failure in a worker raises ``RuntimeError`` with the helper's stderr.
    """
    if "<" in fn.__qualname__:
        raise ValueError(f"run_distributed needs a module-level function, got {fn.__qualname__}")
    header = {
        "file": inspect.getfile(fn),
        "module": fn.__module__,
        "qualname": fn.__qualname__,
        "num_processes": num_processes,
        "sys_path": sys.path,
    }
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.pkl"
        job.write_bytes(pickle.dumps((header, pickle.dumps(args))))
        done = subprocess.run(
            [sys.executable, "-m", "visioncore._launch", str(job)],
            capture_output=True,
            text=True,
            check=False,
        )
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode:
        tail = "\n".join(done.stderr.splitlines()[-40:])
        raise RuntimeError(
            f"run_distributed({fn.__qualname__}): a worker failed (exit {done.returncode}):\n{tail}"
        )
