import json
import shutil

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from cyclic_walks.cli import main
from cyclic_walks.config import get_config
from cyclic_walks.data import write_synthetic_voc
from cyclic_walks.train import lr_factor, train
from safetensors.torch import load_file

from visioncore.training import run_distributed


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_synthetic_voc(tmp_path_factory.mktemp("syn"), num_train=24, num_val=8, size=32, seed=0)


def tiny(root, *extra):
    return get_config(
        "tiny",
        [
            f"data.root={root}",
            "data.image_size=32",
            "data.eval_crop=32",
            "data.eval_size=32",
            "train.batch_size=4",
            "train.max_steps=6",
            "train.save_every=3",
            "train.log_every=3",
            *extra,
        ],
    )


def reset_accelerate():
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def weights(run):
    return load_file(str(run / "model" / "model.safetensors"))


def test_lr_schedule_matches_official():
    # the official scheduler: min(1, step / warmup) * 0.5^(step / half_life), learning rate 0 at step 0
    assert lr_factor(0, 5000, 50000) == 0.0
    assert lr_factor(1, 5000, 50000) == pytest.approx(1 / 5000 * 0.5 ** (1 / 50000))
    assert lr_factor(2, 5000, 50000) == pytest.approx(2 / 5000 * 0.5 ** (2 / 50000))
    assert lr_factor(5000, 5000, 50000) == pytest.approx(0.5 ** (5000 / 50000))
    assert lr_factor(50000, 5000, 50000) == pytest.approx(0.5)
    assert lr_factor(0, 0, 50000) == 1.0


def test_resume_is_bit_identical(root, tmp_path, capsys):
    cfg = tiny(root)
    reset_accelerate()
    train(cfg, tmp_path / "full")
    reset_accelerate()
    train(cfg, tmp_path / "part", stop_after=3)  # interrupted after the step-3 checkpoint
    assert (tmp_path / "part" / "checkpoints" / "step_000003").is_dir()
    reset_accelerate()
    train(cfg, tmp_path / "part", resume=True)
    full, resumed = weights(tmp_path / "full"), weights(tmp_path / "part")
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    log = (tmp_path / "full" / "logs" / "train" / "metrics.jsonl").read_text().strip().splitlines()
    assert len(log) >= 2 and "loss_pwp" in json.loads(log[-1])
    # the README's command: evaluate a training checkpoint folder directly; same scores as the saved model
    common = ["evaluate", "--config", "tiny", "--set", f"data.root={root}", "--set", "data.eval_crop=32"]
    common += ["--set", "data.eval_size=32", "--protocol", "clean"]
    step_dir = tmp_path / "full" / "checkpoints" / "step_000006"
    assert main([*common, "--model", str(step_dir), "--out", str(tmp_path / "from_step")]) == 0
    assert (
        main([*common, "--model", str(tmp_path / "full" / "model"), "--out", str(tmp_path / "from_model")])
        == 0
    )
    from_step = json.loads((tmp_path / "from_step" / "metrics.json").read_text())
    assert from_step == json.loads((tmp_path / "from_model" / "metrics.json").read_text())
    # a step folder whose run config no longer fits its weights: one line naming the folder
    edited = tmp_path / "edited"
    shutil.copytree(tmp_path / "full", edited)
    text = (edited / "config.yaml").read_text()
    assert "mlp_hidden: 0" in text
    (edited / "config.yaml").write_text(text.replace("mlp_hidden: 0", "mlp_hidden: 5"))
    capsys.readouterr()
    assert main([*common, "--model", str(edited / "checkpoints" / "step_000006")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "step_000006" in err[0] and "config.yaml" in err[0]


def _two_process_run(root, out):
    cfg = tiny(root, "train.max_steps=3", "train.batch_size=2")
    result = train(cfg, out)
    model = result.model  # this rank's own in-memory weights
    import torch.distributed as dist

    (out / f"lr_rank{dist.get_rank()}").write_text(repr(result.losses["lr"]))
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    assert dist.get_world_size() == 2
    assert torch.equal(gathered[0], gathered[1])
    (out / f"ok_rank{dist.get_rank()}").write_text("1")


def test_two_processes_end_with_identical_weights(root, tmp_path):
    reset_accelerate()
    run_distributed(_two_process_run, root, tmp_path / "ddp", num_processes=2)
    assert (tmp_path / "ddp" / "ok_rank0").exists() and (tmp_path / "ddp" / "ok_rank1").exists()
    # the learning rate after k optimiser steps does not depend on the number of processes
    reset_accelerate()
    single = train(tiny(root, "train.max_steps=3", "train.batch_size=2"), tmp_path / "single").losses["lr"]
    assert single == pytest.approx(1e-3 * lr_factor(3, 20, 50000))
    for rank in (0, 1):
        assert float((tmp_path / "ddp" / f"lr_rank{rank}").read_text()) == single


def test_cli_errors_are_one_line(root, tmp_path, capsys):
    assert main(["train", "--config", "tiny", "--set", "model.bogus=1", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "bogus" in err[0]
    assert (
        main(
            [
                "train",
                "--config",
                "tiny",
                "--set",
                f"data.root={tmp_path / 'nope'}",
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert "nope" in capsys.readouterr().err
    assert main(["evaluate", "--config", "tiny", "--model", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["train", "--config", "no-such-config", "--out", str(tmp_path / "z")]) == 2
    assert "no-such-config" in capsys.readouterr().err
    # --out naming an existing file: one line naming it, nothing written
    existing = tmp_path / "a_file"
    existing.write_text("keep")
    assert main(["train", "--config", "tiny", "--set", f"data.root={root}", "--out", str(existing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "a_file" in err[0]
    assert existing.read_text() == "keep"
    # values that make no sense are refused by the schema
    for bad, key in (("model.num_slots=0", "num_slots"), ("model.affinity_threshold=2", "affinity_threshold"),
                     ("train.batch_size=-1", "batch_size"), ("eval.task=xx", "eval.task")):  # fmt: skip
        assert main(["train", "--config", "tiny", "--set", bad, "--out", str(tmp_path / "w")]) == 2
        assert key in capsys.readouterr().err


def test_shipped_configs_carry_the_paper_settings():
    expected = {  # slots, alpha, beta (spec sheet table)
        "voc": (4, 1.0, 100.0),
        "coco": (7, 0.1, 100.0),
        "movi-c": (10, 0.0, 100.0),
        "movi-e": (11, 0.0, 100.0),
        "birds": (2, 1.0, 10.0),
        "dogs": (2, 1.0, 10.0),
        "cars": (2, 1.0, 10.0),
        "flowers": (2, 1.0, 10.0),
    }
    for name, (slots, alpha, beta) in expected.items():
        cfg = get_config(name)
        assert (cfg.model.num_slots, cfg.model.alpha, cfg.model.beta) == (slots, alpha, beta), name
        assert cfg.train.lr == 4e-4 and cfg.train.batch_size == 128 and cfg.train.max_steps == 250000
        assert cfg.model.position_prior == name.startswith("movi")
        assert cfg.backbone.input_norm == ("signed" if cfg.eval.task == "fe" else "imagenet")
