"""Training loop: all four phases run and change the networks, exact resume, 2-process gloo."""

import pytest
import torch
from pv3d.config import get_config
from pv3d.data.synthetic import make_toy_heads
from safetensors.torch import load_file

from visioncore.training import run_distributed


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    make_toy_heads(root, num_clips=4, num_frames=16, resolution=32, seed=1)
    return root


def _cfg(toy, steps, *extra):
    # r1/density every 2 steps so that 4 steps run every phase twice
    return get_config(
        "tiny",
        [f"data.root={toy}", f"train.steps={steps}", "train.r1_every=2", "train.density_every=2", *extra],
    )


def _weights(folder):
    return load_file(folder / "model.safetensors")


def test_resume_is_bit_exact_and_all_phases_learn(toy, tmp_path):
    from pv3d.train import build_nets, train

    full = tmp_path / "full"
    logs = train(_cfg(toy, 4), full, device=torch.device("cpu"))
    assert {"g_img", "g_vid", "density", "d_img", "d_vid", "r1_img", "r1_vid"} <= set(logs)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    part = tmp_path / "part"
    train(_cfg(toy, 2), part, device=torch.device("cpu"))
    train(_cfg(toy, 4), part, resume=True, device=torch.device("cpu"))
    for name in ("model", "image_d", "video_d"):
        a, b = _weights(full / name), _weights(part / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # the EMA generator and both discriminators moved away from their initialisation
    _, g_ema0, d_img0, d_vid0 = build_nets(_cfg(toy, 4), 0)
    ema = _weights(full / "model")
    assert any(not torch.equal(ema[k], v) for k, v in g_ema0.state_dict().items() if k in ema)
    moved = _weights(full / "video_d")
    assert not torch.equal(moved["b32.fromrgb.weight"], d_vid0.state_dict()["b32.fromrgb.weight"])
    assert (full / "checkpoints").is_dir() and (full / "config.yaml").is_file()


def _distributed_body(toy, out):
    import torch.distributed as dist
    from pv3d.train import train

    train(_cfg(toy, 2, "train.batch_size=4"), out, device=torch.device("cpu"))
    # every rank holds the same discriminator after the gradient all-reduce
    weights = _weights(out / "video_d")
    total = torch.tensor([sum(float(v.double().sum()) for v in weights.values())], dtype=torch.float64)
    gathered = [torch.zeros_like(total) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, total)
    assert dist.get_world_size() == 2 and torch.equal(gathered[0], gathered[1])


def test_two_process_gloo(toy, tmp_path):
    run_distributed(_distributed_body, toy, tmp_path / "ddp", num_processes=2)
    assert (tmp_path / "ddp" / "model" / "model.safetensors").is_file()


def test_eg3d_variant_step_leaves_the_video_discriminator_alone():
    """video_weight 0 and no motion layers (the benchmark's EG3D reference): no video-D loss, video D untouched."""
    from pv3d.bench import _batch, _SingleProcess
    from pv3d.train import _adam, build_nets, training_step

    cfg = get_config("tiny", ["train.video_weight=0", "generator.motion_layers=false"])
    g, _, d_img, d_vid = build_nets(cfg, 0)
    before = {k: v.clone() for k, v in d_vid.state_dict().items()}
    opts = (
        _adam(g.parameters(), 0.002, 4),
        _adam(list(d_img.parameters()) + list(d_vid.parameters()), 0.002, 16),
    )
    acc = _SingleProcess(torch.device("cpu"), None)
    losses = training_step((g, d_img, d_vid), opts, _batch(cfg, torch.device("cpu")), 0, cfg, acc)
    assert set(losses) == {"g_img", "density", "d_img", "r1_img"}
    assert all(torch.equal(before[k], v) for k, v in d_vid.state_dict().items())
    assert not hasattr(g.synthesis.b4, "motion")
