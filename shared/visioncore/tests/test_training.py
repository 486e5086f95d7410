"""Training helpers: exact resume, atomic checkpoints, finite-loss guard, 2-process gloo run."""

import json
import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from visioncore.training import (
    CheckpointManager,
    NonFiniteLossError,
    check_finite,
    iterate_steps,
    make_accelerator,
    run_distributed,
    seed_everything,
    warmup_cosine_schedule,
)


def _data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g)
    y = x @ torch.randn(6, 1, generator=g) + 0.1 * torch.randn(40, 1, generator=g)
    return TensorDataset(x, y)


def train(
    out: Path, max_steps: int, *, resume: bool = False, stop_at: int | None = None, save_every: int = 3
):
    """A toy loop with shuffling, dropout and an LR schedule: everything that must survive a resume."""
    seed_everything(0)
    acc = make_accelerator(out, trackers=("jsonl",))
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = warmup_cosine_schedule(opt, 2, max_steps)
    loader = DataLoader(_data(), batch_size=8, shuffle=True)  # 5 batches per epoch: resumes land mid-epoch
    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)
    ckpt = CheckpointManager(acc, out, keep_last=2)
    start = ckpt.resume() if resume else 0
    seen = []
    for step, (x, y) in iterate_steps(acc, loader, start_step=start, max_steps=max_steps):
        if stop_at is not None and step == stop_at:
            break
        loss = torch.nn.functional.mse_loss(model(x), y)
        check_finite(loss, step)
        acc.backward(loss)
        opt.step()
        sched.step()
        opt.zero_grad()
        seen.append(x.sum().item())
        acc.log({"loss": loss}, step=step)
        if (step + 1) % save_every == 0:
            ckpt.save(step + 1)
    state = acc.unwrap_model(model).state_dict()
    world = (acc.process_index, acc.num_processes)
    acc.end_training()
    return state, seen, world


def test_resume_is_bit_identical(tmp_path):
    full, seen_full, _ = train(tmp_path / "a", 14)
    train(tmp_path / "b", 14, stop_at=8)  # "killed" after step 7; last checkpoint at step 6 (mid-epoch 2)
    ckpt_dirs = sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir())
    assert ckpt_dirs == ["step_000003", "step_000006"]
    resumed, seen_resumed, _ = train(tmp_path / "b", 14, resume=True)
    assert seen_resumed == seen_full[6:]  # the same batches, in the same order
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    # keep_last=2 pruned the older ones
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == [
        "step_000009",
        "step_000012",
    ]
    lines = (tmp_path / "a" / "logs" / "train" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 14 and json.loads(lines[0])["step"] == 0


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    acc = make_accelerator(tmp_path, trackers=())
    model = acc.prepare(torch.nn.Linear(2, 2))
    ckpt = CheckpointManager(acc, tmp_path)
    first = ckpt.save(5)
    assert ckpt.latest() == first

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with torch.no_grad():
        model.weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save(10)
    monkeypatch.undo()
    assert ckpt.latest() == first  # the half-written step 10 is not taken for a checkpoint
    assert ckpt.resume() == 5
    # the next save cleans up the leftover temporary folder
    ckpt.save(10)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp")] == []


def test_resume_without_checkpoint_starts_at_zero(tmp_path):
    acc = make_accelerator(tmp_path, trackers=())
    assert CheckpointManager(acc, tmp_path).resume() == 0


def test_check_finite_names_step():
    check_finite(torch.tensor(1.0), 3)
    with pytest.raises(NonFiniteLossError, match="step 7"):
        check_finite(torch.tensor(float("nan")), 7)
    with pytest.raises(NonFiniteLossError, match="step 8"):
        check_finite(float("inf"), 8)


def test_warmup_cosine_schedule_shape():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine_schedule(opt, warmup_steps=4, total_steps=14, min_ratio=0.1)
    lrs = []
    for _ in range(14):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])  # step / warmup: lr 0 at step 0
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


def _two_process_worker(out: str):
    state, _, (rank, world) = train(Path(out) / "ddp", 6, save_every=100)
    assert world == 2
    torch.save({k: v.clone() for k, v in state.items()}, Path(out) / f"rank{rank}.pt")


def test_two_process_gloo_ranks_agree(tmp_path):
    run_distributed(_two_process_worker, str(tmp_path), num_processes=2)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0.keys() == r1.keys()
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    single, _, _ = train(tmp_path / "single", 6, save_every=100)
    # each rank saw different batches, so the DDP result is not the single-process one
    assert any(not torch.equal(single[k], r0[k]) for k in r0)


def test_default_trackers_write_jsonl_and_tensorboard(tmp_path):
    acc = make_accelerator(
        tmp_path,
        gradient_accumulation_steps=4,
        mixed_precision="bf16",
        project_name="pretrain",
        config={"model": {"depth": 2, "parts": ["eyes", "mouth"]}, "lr": 1e-3},
    )
    assert acc.gradient_accumulation_steps == 4 and acc.mixed_precision == "bf16"
    acc.log({"loss": torch.tensor(0.5), "lr": 1e-3}, step=3)
    acc.end_training()
    logs = tmp_path / "logs" / "pretrain"
    assert json.loads((logs / "metrics.jsonl").read_text()) == {"step": 3, "loss": 0.5, "lr": 1e-3}
    assert json.loads((logs / "config.json").read_text())["model.depth"] == 2
    assert list((tmp_path / "logs").rglob("events.out.tfevents.*"))


def test_progress_hidden_when_disabled_or_not_main(tmp_path):
    acc = make_accelerator(tmp_path, trackers=())
    from visioncore.training import progress

    assert not progress(range(3), acc).disable  # main process, shown
    assert progress(range(3), acc, disable=True).disable
    assert progress(range(3)).disable is False


def _threaded_matmul_worker(out: str) -> None:
    acc = make_accelerator(Path(out) / "run", trackers=())
    torch.set_num_threads(2)
    value = (torch.ones(256, 256) @ torch.ones(256, 256)).sum().item()
    (Path(out) / f"rank{acc.process_index}.txt").write_text(str(value))


@pytest.mark.timeout(300)  # a fork of this (OpenMP-using) process would hang here instead
def test_two_processes_start_after_multithreaded_work_in_the_caller(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in range(3):  # OpenMP parallel regions in the calling process
            (torch.randn(512, 512) @ torch.randn(512, 512)).sum()
        run_distributed(_threaded_matmul_worker, str(tmp_path))
    finally:
        torch.set_num_threads(threads)
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == [str(256.0**3)] * 2


def _failing_worker() -> None:
    raise ValueError("rank failure on purpose")


def test_a_failing_worker_raises_with_its_error():
    with pytest.raises(RuntimeError, match="rank failure on purpose"):
        run_distributed(_failing_worker)
    with pytest.raises(ValueError, match="module-level"):
        run_distributed(lambda: None)
