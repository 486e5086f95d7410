import dataclasses
import json
from pathlib import Path

import pytest
import torch
from diffusers.optimization import get_scheduler
from tune_a_video.data import load_training_video
from tune_a_video.losses import fixed_pair_loss
from tune_a_video.models import InflatedUNet3DConditionModel
from tune_a_video.train import load_components, make_pipeline, train

from visioncore.training import run_distributed


def _source_latents(cfg):
    parts = load_components(cfg.pretrained_model_path)
    td = cfg.train_data
    video = load_training_video(
        td.video_path, td.n_sample_frames, td.width, td.height, 0, td.sample_frame_rate
    )
    pipe = make_pipeline(parts)
    with torch.no_grad():
        latents = pipe.encode_video(video.permute(1, 0, 2, 3)[None])
        context = pipe.encode_prompt(td.prompt)
    return parts, latents, context


def test_short_tuning_lowers_fixed_pair_loss(tiny_train_config):
    cfg = dataclasses.replace(
        tiny_train_config, max_train_steps=20, learning_rate=5e-3, checkpointing_steps=100
    )
    parts, latents, context = _source_latents(cfg)
    frozen = fixed_pair_loss(parts.unet, parts.noise_scheduler, latents, context, num_pairs=8)
    train(cfg, show_progress=False)
    tuned_unet = InflatedUNet3DConditionModel.from_pretrained(Path(cfg.output_dir) / "unet")
    tuned = fixed_pair_loss(tuned_unet, parts.noise_scheduler, latents, context, num_pairs=8)
    assert tuned < frozen * 0.95
    # only the tuned parameters changed
    for (name, a), (_, b) in zip(
        parts.unet.state_dict().items(), tuned_unet.state_dict().items(), strict=True
    ):
        changed = not torch.equal(a, b)
        assert changed == any(s in name for s in (".attn1.to_q.", ".attn2.to_q.", ".attn_temp.")), name


def test_resume_is_bit_identical(tiny_train_config, tmp_path):
    full = dataclasses.replace(
        tiny_train_config, max_train_steps=4, checkpointing_steps=2, output_dir=str(tmp_path / "a")
    )
    train(full, show_progress=False)
    half = dataclasses.replace(full, max_train_steps=2, output_dir=str(tmp_path / "b"))
    train(half, show_progress=False)
    resumed = dataclasses.replace(half, max_train_steps=4)
    result = train(resumed, resume=True, show_progress=False)
    assert result["start"] == 2
    a = InflatedUNet3DConditionModel.from_pretrained(tmp_path / "a" / "unet").state_dict()
    b = InflatedUNet3DConditionModel.from_pretrained(tmp_path / "b" / "unet").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_validation_writes_inverted_latents(tiny_train_config):
    cfg = dataclasses.replace(
        tiny_train_config, max_train_steps=2, validation_steps=2, checkpointing_steps=100
    )
    train(cfg, show_progress=False)
    out = Path(cfg.output_dir)
    latents = torch.load(out / "inv_latents" / "ddim_latent-2.pt", weights_only=True)
    assert latents.shape == (1, 4, cfg.train_data.n_sample_frames, 16, 16)
    assert list((out / "samples" / "sample-2").glob("*.gif"))


def _single_process_lrs(cfg) -> list[float]:
    """The schedule as one process sees it: one scheduler step per optimizer step."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.learning_rate)
    schedule = get_scheduler(
        cfg.lr_scheduler,
        optimizer,
        num_warmup_steps=cfg.lr_warmup_steps,
        num_training_steps=cfg.max_train_steps,
    )
    lrs = []
    for _ in range(cfg.max_train_steps):
        optimizer.step()
        schedule.step()
        lrs.append(schedule.get_last_lr()[0])
    return lrs


def test_two_process_training_keeps_ranks_identical_and_the_lr_schedule(tiny_train_config, tmp_path):
    cfg = dataclasses.replace(
        tiny_train_config, max_train_steps=3, checkpointing_steps=100, output_dir=str(tmp_path / "ddp"),
        lr_scheduler="linear", lr_warmup_steps=2, logging_steps=1,
    )  # fmt: skip
    run_distributed(_rank_weights, cfg, num_processes=2)
    log = Path(cfg.output_dir) / "logs" / "tune-a-video" / "metrics.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    # after k optimizer steps under 2 processes, the learning rate of a single process (not k * 2 scheduler steps)
    assert [r["lr"] for r in rows] == pytest.approx(_single_process_lrs(cfg))
    assert rows[0]["lr"] == pytest.approx(cfg.learning_rate / 2)
    w0 = torch.load(tmp_path / "ddp" / "weights-0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "ddp" / "weights-1.pt", weights_only=True)
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)
    frozen = load_components(cfg.pretrained_model_path).unet.state_dict()
    assert any(not torch.equal(w0[k], frozen[k]) for k in w0)  # they trained


def _rank_weights(cfg):
    """Train under DDP, then each rank dumps the weights it ends with."""
    from accelerate import PartialState

    unet = train(cfg, show_progress=False)["unet"]
    rank = PartialState().process_index
    torch.save(
        {k: v.detach().clone() for k, v in unet.state_dict().items()},
        Path(cfg.output_dir) / f"weights-{rank}.pt",
    )
