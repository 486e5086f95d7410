import json
import os
import shutil

import torch
from deepfake_mae.config import get_config
from deepfake_mae.train import pretrain, train_detector
from safetensors.torch import load_file


def _cfg(root, *extra):
    return get_config("tiny", [f"data.root={root}", "pretrain.batch_size=8", "train.batch_size=2", *extra])


def _weights(folder):
    return load_file(folder / "model" / "model.safetensors")


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _resume_from(src, dst, step):
    (dst / "checkpoints").mkdir(parents=True)
    shutil.copytree(src / "checkpoints" / f"step_{step:06d}", dst / "checkpoints" / f"step_{step:06d}")


def test_pretrain_logs_and_resumes_bit_identical(tmp_path, synthetic_root):
    cfg = _cfg(synthetic_root, "pretrain.steps=6", "pretrain.save_every=3", "pretrain.log_every=1")
    pretrain(cfg, tmp_path / "full", show_progress=False)
    rows = [json.loads(x) for x in (tmp_path / "full/logs/pretrain/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "pretrain/loss" in r] == [1, 2, 3, 4, 5, 6]
    # An interrupted run leaves the step-3 checkpoint; resuming from it must give exactly the same weights.
    _resume_from(tmp_path / "full", tmp_path / "resumed", 3)
    pretrain(cfg, tmp_path / "resumed", resume=True, show_progress=False)
    _assert_same(_weights(tmp_path / "full"), _weights(tmp_path / "resumed"))


def test_detector_trains_and_resumes_bit_identical(tmp_path, synthetic_root):
    cfg = _cfg(synthetic_root, "train.steps=4", "train.save_every=2")
    train_detector(cfg, tmp_path / "full", show_progress=False)
    _resume_from(tmp_path / "full", tmp_path / "resumed", 2)
    det = train_detector(cfg, tmp_path / "resumed", resume=True, show_progress=False)
    _assert_same(_weights(tmp_path / "full"), _weights(tmp_path / "resumed"))
    fresh = train_detector(
        cfg, tmp_path / "other", show_progress=False
    )  # same seed from scratch: same result
    _assert_same(det.state_dict(), fresh.state_dict())


def test_frozen_network_2_is_cached_and_untouched(tmp_path, synthetic_root):
    cfg = _cfg(synthetic_root, "train.steps=3", "detector.freeze_net2=true")
    from deepfake_mae.train import build_detector

    from visioncore.training import seed_everything

    seed_everything(cfg.seed)  # the init train_detector starts from
    start = build_detector(cfg, None).mae.state_dict()
    cache = {}
    det = train_detector(cfg, tmp_path / "frozen", show_progress=False, discrepancy_cache=cache)
    assert cache and all(v.shape == (3,) for v in cache.values())
    for k, v in det.mae.state_dict().items():
        assert torch.equal(v, start[k]), k


def _two_process_pretrain(cfg_yaml: str, out: str) -> None:
    from deepfake_mae.config import Config

    from visioncore.config import load_config

    cfg = load_config(Config, cfg_yaml)
    model = pretrain(cfg, out, show_progress=False)
    rank = torch.distributed.get_rank()
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, os.path.join(out, f"rank{rank}.pt"))


def test_two_process_pretraining_keeps_ranks_identical(tmp_path, synthetic_root):
    from visioncore.config import save_config
    from visioncore.training import run_distributed

    cfg = _cfg(synthetic_root, "pretrain.steps=4", "pretrain.save_every=4", "pretrain.log_every=1")
    save_config(cfg, tmp_path / "cfg.yaml")
    # 2 gloo processes (rendezvous through a file store, no network port).
    run_distributed(_two_process_pretrain, str(tmp_path / "cfg.yaml"), str(tmp_path / "run"), num_processes=2)
    r0 = torch.load(tmp_path / "run/rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "run/rank1.pt", weights_only=True)
    _assert_same(r0, r1)
    start = get_config("tiny")  # weights moved away from a fresh init: the ranks trained (together)
    from deepfake_mae.config import mae_kwargs
    from deepfake_mae.models.mae import FacePartMAE

    torch.manual_seed(start.seed)
    assert (tmp_path / "run/checkpoints/step_000004").is_dir()
    fresh = FacePartMAE(**mae_kwargs(start.model)).state_dict()
    assert any(not torch.equal(r0[k], fresh[k]) for k in r0 if "decoder.pred" in k)


def _logged(run, key):
    rows = [json.loads(x) for x in (run / "logs/pretrain/metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in rows if key in r]


def test_learning_rate_after_k_steps_does_not_depend_on_the_process_count(tmp_path, synthetic_root):
    """2 gloo processes and 1 process log the same learning rate after each optimiser step (warm-up 2, cosine)."""
    from visioncore.config import save_config
    from visioncore.training import run_distributed, warmup_cosine_schedule

    cfg = _cfg(synthetic_root, "pretrain.steps=4", "pretrain.save_every=0", "pretrain.log_every=1")
    save_config(cfg, tmp_path / "cfg.yaml")
    run_distributed(_two_process_pretrain, str(tmp_path / "cfg.yaml"), str(tmp_path / "two"), num_processes=2)
    pretrain(cfg, tmp_path / "one", show_progress=False)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.pretrain.lr)
    sched = warmup_cosine_schedule(opt, cfg.pretrain.warmup_steps, cfg.pretrain.steps)
    expected = []
    for _ in range(cfg.pretrain.steps):
        opt.step()
        sched.step()
        expected.append(sched.get_last_lr()[0])
    assert expected[0] == cfg.pretrain.lr / 2  # transformers' warm-up: lr 0 at step 0, step / warmup after
    assert _logged(tmp_path / "one", "pretrain/lr") == _logged(tmp_path / "two", "pretrain/lr") == expected
