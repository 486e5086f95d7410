"""``tune-a-video demo``: a SMOKE CHECK of the whole path (tiny random SD, synthetic clip): load, inflate, tune,
invert, sample, save, reload. A random tiny SD cannot edit a video, so the paper's effect is not shown here; the
evidence is ``tune-a-video repro`` (see the README's acceptance table)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from visioncore.files import atomic_write_json

from .config import load_train_config
from .data import load_training_video, make_synthetic
from .losses import fixed_pair_loss
from .models import InflatedUNet3DConditionModel
from .pipeline import TuneAVideoPipeline
from .tiny_sd import make_tiny_sd
from .train import load_components, make_pipeline, train


def run_demo(out: Path) -> dict:
    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    sd = make_tiny_sd(out / "tiny-sd")
    make_synthetic(out / "data", num_frames=8, size=32)
    steps = 12
    cfg = load_train_config(
        "tiny",
        [
            f"pretrained_model_path={sd}", f"output_dir={out / 'tuned'}",
            f"train_data.video_path={out / 'data' / 'red-square.mp4'}", f"max_train_steps={steps}",
            f"validation_steps={steps}", f"checkpointing_steps={steps}", "learning_rate=5e-3", "logging_steps=1",
        ],
    )  # fmt: skip
    parts = load_components(sd)
    td = cfg.train_data
    video = load_training_video(
        td.video_path, td.n_sample_frames, td.width, td.height, 0, td.sample_frame_rate
    )
    frozen_pipe = make_pipeline(parts)
    with torch.no_grad():
        latents = frozen_pipe.encode_video(video.permute(1, 0, 2, 3)[None])
        context = frozen_pipe.encode_prompt(td.prompt)
    loss_frozen = fixed_pair_loss(parts.unet, parts.noise_scheduler, latents, context, num_pairs=8)
    result = train(cfg, show_progress=False)
    tuned = TuneAVideoPipeline.from_pretrained(out / "tuned")
    tuned.set_progress_bar_config(disable=True)
    unet: InflatedUNet3DConditionModel = tuned.unet
    loss_tuned = fixed_pair_loss(unet, parts.noise_scheduler, latents, context, num_pairs=8)
    inverted = torch.load(out / "tuned" / "inv_latents" / f"ddim_latent-{steps}.pt", weights_only=True)
    metrics = {
        "kind": "smoke check (plumbing, not the paper's effect)",
        "first_train_loss": result["losses"][0],
        "last_train_loss": result["losses"][-1],
        "loss_frozen": loss_frozen,
        "loss_tuned": loss_tuned,
        "inverted_latent_std": float(inverted.std()),
        "source_latent_std": float(latents.std()),
        "seconds": time.time() - start,
    }
    atomic_write_json(out / "metrics.json", metrics)
    print(json.dumps(metrics, indent=2))
    print(f"samples: {out / 'tuned' / 'samples'}")
    return metrics
