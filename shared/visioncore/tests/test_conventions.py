"""The shared CLI conventions: atomic files, one-line errors, config flags and checks, devices, safe pickles, the
non-finite guard across processes, the end-of-training save and the learning-rate rule under several processes."""

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from visioncore.config import (
    ConfigError,
    add_config_args,
    config_from_args,
    in_range,
    one_of,
    positive,
    positive_fields,
)
from visioncore.console import run_command
from visioncore.devices import add_device_args, resolve_device, resolve_dtype
from visioncore.files import atomic_path, atomic_write_json, atomic_write_text
from visioncore.safe_pickle import NUMPY_GLOBALS, UnsafePickleError, restricted_load
from visioncore.training import (
    CheckpointManager,
    NonFiniteLossError,
    check_finite,
    make_accelerator,
    run_distributed,
    save_final,
    should_save,
    warmup_cosine_schedule,
)

# ------------------------------------------------------------------------------------------------ atomic files


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "metrics.json"
    atomic_write_json(target, {"auc": torch.tensor(0.5), "n": 3})
    assert json.loads(target.read_text()) == {"auc": 0.5, "n": 3}
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_atomic_path_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a ro")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


# ------------------------------------------------------------------------------------------------ one-line errors


@pytest.mark.parametrize(
    "error, expected",
    [
        (NotADirectoryError(20, "Not a directory", "/x/out"), "error: /x/out: Not a directory\n"),
        (FileExistsError(17, "File exists", "/x/out"), "error: /x/out: File exists\n"),
        (PermissionError(13, "Permission denied", "/x"), "error: /x: Permission denied\n"),
        (
            NonFiniteLossError("non-finite loss at step 3 (loss=nan)\nmore"),
            "error: non-finite loss at step 3 (loss=nan)\n",
        ),
    ],
)
def test_os_errors_and_non_finite_losses_are_one_line(error, expected, capsys):
    def command(args):
        raise error

    assert run_command(command, None) == 2
    assert capsys.readouterr().err == expected


def test_real_os_error_from_writing_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert run_command(lambda a: atomic_write_text(tmp_path / "file" / "metrics.json", "{}"), None) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path / "file") in err and err.count("\n") == 1


# ------------------------------------------------------------------------------------------------ config flags


def test_add_config_args_default_and_repeated_sets():
    from dataclasses import dataclass, field

    @dataclass
    class Train:
        steps: int = 10
        ratio: float = 0.5
        batch: int = 2
        mode: str = "cosine"

        def __post_init__(self):
            positive("train.steps", self.steps)
            positive_fields("train", self, "batch", "ratio")
            in_range("train.ratio", self.ratio, 0.0, 1.0)
            one_of("train.mode", self.mode, ("cosine", "constant"))

    @dataclass
    class Cfg:
        train: Train = field(default_factory=Train)

    parser = argparse.ArgumentParser()
    add_config_args(parser, default=None)
    args = parser.parse_args(["--set", "train.steps=4", "--set", "train.ratio=0.25"])
    assert args.config is None and args.overrides == ["train.steps=4", "train.ratio=0.25"]
    assert config_from_args(Cfg, args, package="visioncore") == Cfg(Train(4, 0.25))
    with pytest.raises(ConfigError, match=r"train.steps must be > 0, got -1"):
        config_from_args(Cfg, parser.parse_args(["--set", "train.steps=-1"]), package="visioncore")
    with pytest.raises(ConfigError, match=r"train.ratio must be in \[0.0, 1.0\], got 1.5"):
        config_from_args(Cfg, parser.parse_args(["--set", "train.ratio=1.5"]), package="visioncore")
    with pytest.raises(ConfigError, match=r"train.batch must be > 0, got 0"):
        config_from_args(Cfg, parser.parse_args(["--set", "train.batch=0"]), package="visioncore")
    with pytest.raises(ConfigError, match=r"train.mode must be one of cosine, constant, got 'step'"):
        config_from_args(Cfg, parser.parse_args(["--set", "train.mode=step"]), package="visioncore")


# ------------------------------------------------------------------------------------------------ devices


def test_device_and_dtype_flags():
    parser = argparse.ArgumentParser()
    add_device_args(parser)
    args = parser.parse_args([])
    assert resolve_device(args.device) == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype(args.dtype) is torch.float32
    args = parser.parse_args(["--device", "cpu", "--dtype", "bf16"])
    assert resolve_device(args.device) == torch.device("cpu") and resolve_dtype(args.dtype) is torch.bfloat16
    with pytest.raises(ValueError, match="--device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


_FAULTS_PER_STEP = """
import json, platform, resource, torch
from visioncore.devices import retain_freed_host_memory
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64), torch.nn.ELU())
x = torch.randn(16384, 64)
def faults():
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        net(x).square().mean().backward()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
faults()
before = faults()
retained = retain_freed_host_memory()
faults()
print(json.dumps({"glibc": platform.libc_ver()[0] == "glibc", "retained": retained, "before": before,
                  "after": faults(), "again": retain_freed_host_memory()}))
"""


def test_retained_host_memory_stops_page_faults_of_cpu_steps():
    """A CPU training step re-faults its activations with glibc's defaults; with freed memory retained it does not."""
    run = subprocess.run([sys.executable, "-c", _FAULTS_PER_STEP], capture_output=True, text=True, check=True)
    result = json.loads(run.stdout)
    if not result["glibc"]:
        assert not result["retained"]
        return
    assert result["retained"] and result["again"]
    assert result["before"] > 1000  # 64 MiB of activations per step, page-faulted anew each time
    assert result["after"] * 10 < result["before"]


def test_make_accelerator_on_cpu_retains_host_memory(tmp_path):
    from visioncore import devices

    make_accelerator(tmp_path, trackers=(), cpu=True)
    assert devices._host_memory_retained == (devices.platform.libc_ver()[0] == "glibc")


# ------------------------------------------------------------------------------------------------ safe pickles


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_load_allows_numpy_and_refuses_code(tmp_path):
    import numpy as np

    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({"a": np.arange(3), "b": [1, "x"]}))
    loaded = restricted_load(good, allowed=NUMPY_GLOBALS)
    assert loaded["a"].tolist() == [0, 1, 2] and loaded["b"] == [1, "x"]
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(UnsafePickleError, match=rf"{evil}: refusing to unpickle posix.system"):
        restricted_load(evil)
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(UnsafePickleError, match="corrupt pickle"):
        restricted_load(corrupt)
    with pytest.raises(FileNotFoundError, match="missing.pkl"):
        restricted_load(tmp_path / "missing.pkl")


# ------------------------------------------------------------------------------------------------ training


def test_check_finite_names_the_loss_and_the_checkpoint():
    check_finite({"rec": torch.tensor(1.0), "gan": 2.0}, 3)
    with pytest.raises(
        NonFiniteLossError, match=r"step 5 \(gan=nan.*last good checkpoint is /ck/step_000004"
    ):
        check_finite(
            {"rec": torch.tensor(1.0), "gan": torch.tensor(float("nan"))}, 5, checkpoint="/ck/step_000004"
        )
    with pytest.raises(NonFiniteLossError, match="no checkpoint was saved"):
        check_finite(torch.tensor([1.0, float("inf")]), 0)


def test_should_save():
    assert [s for s in range(1, 11) if should_save(s, 4, 10)] == [4, 8, 10]
    assert [s for s in range(1, 6) if should_save(s, 0, 5)] == [5]


def _nan_on_rank1_worker(out: str) -> None:
    acc = make_accelerator(out, trackers=())
    model = acc.prepare(torch.nn.Linear(2, 1))
    bad = float("nan") if acc.process_index == 1 else 1.0
    try:
        for step in range(3):
            loss = model(torch.ones(1, 2)).sum() * 0 + (bad if step == 2 else 1.0)
            check_finite(loss, step, accelerator=acc)
            acc.backward(loss)  # an all-reduce: a rank that stopped alone would leave the other waiting here
    except NonFiniteLossError as err:
        (Path(out) / f"rank{acc.process_index}.txt").write_text(str(err))


def test_nan_on_one_rank_stops_every_rank(tmp_path):
    start = time.perf_counter()
    run_distributed(_nan_on_rank1_worker, str(tmp_path), num_processes=2)
    for rank in (0, 1):
        assert "non-finite loss at step 2" in (tmp_path / f"rank{rank}.txt").read_text()
    assert time.perf_counter() - start < 120  # generous: a hang would run into pytest's timeout instead


def _lr_trace(out: str, steps: int = 5) -> list[float]:
    acc = make_accelerator(out, trackers=())
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = warmup_cosine_schedule(opt, warmup_steps=4, total_steps=10)
    model, opt, sched = acc.prepare(model, opt, sched)
    lrs = []
    for _ in range(steps):
        acc.backward(model(torch.ones(1, 2)).sum())
        opt.step()
        sched.step()
        opt.zero_grad()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def _lr_worker(out: str) -> None:
    from accelerate import PartialState

    lrs = _lr_trace(out)
    (Path(out) / f"lr{PartialState().process_index}.json").write_text(json.dumps(lrs))


def test_learning_rate_after_k_steps_is_the_same_under_two_processes(tmp_path):
    single = _lr_trace(str(tmp_path / "single"))
    assert single == pytest.approx([0.25, 0.5, 0.75, 1.0, 0.9330127], rel=1e-6)
    run_distributed(_lr_worker, str(tmp_path), num_processes=2)
    for rank in (0, 1):
        assert json.loads((tmp_path / f"lr{rank}.json").read_text()) == pytest.approx(single)


def test_save_final_writes_config_model_and_final_checkpoint(tmp_path):
    from dataclasses import dataclass

    from visioncore.hub import PretrainedMixin

    class Tiny(torch.nn.Module, PretrainedMixin):
        def __init__(self, width: int = 3):
            super().__init__()
            self.config = {"width": width}
            self.fc = torch.nn.Linear(width, 1)

    @dataclass
    class Cfg:
        steps: int = 2

    acc = make_accelerator(tmp_path, trackers=())
    model = acc.prepare(Tiny())
    ckpt = CheckpointManager(acc, tmp_path)
    save_final(acc, tmp_path, model=model, config=Cfg(), checkpoints=ckpt, step=2)
    assert (tmp_path / "config.yaml").read_text().strip() == "steps: 2"
    assert [p.name for p in ckpt.complete()] == ["step_000002"]
    loaded = Tiny.from_pretrained(tmp_path / "model")
    assert torch.equal(loaded.fc.weight, acc.unwrap_model(model).fc.weight)
    save_final(
        acc, tmp_path, model=model, config=Cfg(), checkpoints=ckpt, step=2
    )  # already there: not saved again
    assert [p.name for p in ckpt.complete()] == ["step_000002"]


# ------------------------------------------------------------------------------------------------ CLI start-up


def test_visioncore_cli_imports_stay_light():
    code = (
        "import sys, visioncore, visioncore.cli, visioncore.console, visioncore.config, visioncore.devices;"
        "heavy = {'diffusers', 'transformers', 'timm', 'sklearn', 'matplotlib', 'av', 'torch'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_startup_time_reports_ratio_per_cli(capsys):
    from visioncore.cli import main

    assert main(["startup-time", "visioncore", "--repeats", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["visioncore"]) == {"help_s", "import_torch_s", "ratio"}
    assert result["visioncore"]["ratio"] == pytest.approx(
        result["visioncore"]["help_s"] / result["visioncore"]["import_torch_s"], rel=0.01, abs=1e-3
    )
    assert main(["startup-time", "no-such-cli-xyz", "--repeats", "1"]) == 2
