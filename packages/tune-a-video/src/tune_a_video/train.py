"""One-shot tuning loop (paper Sec. 4.2), on accelerate via visioncore.training.

Loads a Stable Diffusion folder (diffusers layout), inflates its UNet, freezes everything but ``attn1.to_q``,
``attn2.to_q`` and ``attn_temp``, and minimises the denoising loss on the single video. Every
``validation_steps`` it DDIM-inverts the source video with the tuned UNet (``inv_latents/ddim_latent-{step}.pt``) and
samples the validation prompts from it; at the end the whole pipeline is saved with ``save_pretrained``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler
from diffusers.optimization import get_scheduler
from torch.utils.data import DataLoader
from transformers import CLIPTextModel, CLIPTokenizer

from visioncore.config import save_config, to_dict
from visioncore.files import atomic_path, atomic_write_json
from visioncore.training import (
    CheckpointManager,
    check_finite,
    iterate_steps,
    make_accelerator,
    progress,
    seed_everything,
    should_save,
)
from visioncore.viz import save_video

from .config import TrainConfig
from .data import TuneAVideoDataset, load_training_video
from .losses import diffusion_loss, sample_timesteps
from .models import InflatedUNet3DConditionModel, freeze_for_tuning
from .models.unet import check_unimplemented_keys
from .pipeline import TuneAVideoPipeline, ddim_from_config


@dataclass
class Components:
    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModel
    vae: AutoencoderKL | None
    unet: InflatedUNet3DConditionModel
    noise_scheduler: DDPMScheduler
    scheduler_config: dict


def load_vae(folder: Path):
    """``AutoencoderKL``, or the exact luma/chroma latent of ``make-tiny-sd --pretrain`` (named in its config)."""
    config = folder / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("_class_name") == "LumaChromaAutoencoder":
        from .latent import LumaChromaAutoencoder

        return LumaChromaAutoencoder.from_pretrained(folder)
    return AutoencoderKL.from_pretrained(folder)


def load_components(path: str | Path) -> Components:
    """Everything from a Stable Diffusion folder; a folder without ``vae/`` means pixel space."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"pretrained model folder not found: {path}")
    for sub in ("unet", "text_encoder", "tokenizer", "scheduler"):
        if not (path / sub).is_dir():
            raise FileNotFoundError(
                f"{path}: no {sub}/ folder (expected a Stable Diffusion folder in diffusers layout)"
            )
    unet_config = path / "unet" / "config.json"
    if unet_config.is_file():  # refuse what the UNet would not compute before loading anything
        check_unimplemented_keys(json.loads(unet_config.read_text()), unet_config)
    scheduler_config = dict(DDPMScheduler.load_config(path, subfolder="scheduler"))
    ddim_from_config(scheduler_config, source=str(path / "scheduler"))  # rejects unknown scheduler classes
    return Components(
        tokenizer=CLIPTokenizer.from_pretrained(path, subfolder="tokenizer"),
        text_encoder=CLIPTextModel.from_pretrained(path, subfolder="text_encoder"),
        vae=load_vae(path / "vae") if (path / "vae").is_dir() else None,
        unet=InflatedUNet3DConditionModel.from_pretrained_2d(path, subfolder="unet"),
        noise_scheduler=DDPMScheduler.from_config(
            {k: v for k, v in scheduler_config.items() if not k.startswith("_")}
        ),
        scheduler_config=scheduler_config,
    )


def make_pipeline(parts: Components, unet: InflatedUNet3DConditionModel | None = None) -> TuneAVideoPipeline:
    pipe = TuneAVideoPipeline(
        vae=parts.vae, text_encoder=parts.text_encoder, tokenizer=parts.tokenizer, unet=unet or parts.unet,
        scheduler=ddim_from_config(parts.scheduler_config),
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _check_xformers(enabled: bool) -> None:
    if enabled:
        try:
            import xformers  # noqa: F401
        except ImportError:
            raise ValueError(
                "enable_xformers_memory_efficient_attention: xformers is not installed (PyTorch SDPA is used "
                "anyway; set it to false)"
            ) from None


def _optimizer(cfg: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    kwargs = dict(
        lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.adam_weight_decay,
        eps=cfg.adam_epsilon,
    )  # fmt: skip
    if cfg.use_8bit_adam:
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise ValueError("use_8bit_adam: bitsandbytes is not installed") from None
        return bnb.optim.AdamW8bit(params, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


@torch.no_grad()
def validate(pipe: TuneAVideoPipeline, cfg: TrainConfig, source_latents: torch.Tensor, step: int, out: Path):
    """Invert the source with the tuned UNet (empty prompt, no guidance), save it, sample the edited prompts."""
    v = cfg.validation_data
    generator = torch.Generator(device=source_latents.device).manual_seed(cfg.seed)
    latents = None
    if v.use_inv_latent:
        latents = pipe.invert(source_latents, num_inference_steps=v.num_inv_steps)
        with atomic_path(out / "inv_latents" / f"ddim_latent-{step}.pt") as tmp:
            torch.save(latents.cpu(), tmp)
    sample_dir = out / "samples" / f"sample-{step}"
    for prompt in v.prompts:
        video = pipe(
            prompt, video_length=v.video_length, height=v.height, width=v.width,
            num_inference_steps=v.num_inference_steps, guidance_scale=v.guidance_scale, latents=latents,
            generator=generator,
        ).videos  # fmt: skip
        with atomic_path(sample_dir / f"{prompt[:80].replace('/', '_')}.gif") as tmp:
            save_video(tmp, (video[0].permute(1, 0, 2, 3) * 255).byte(), 8)


def train(cfg: TrainConfig, resume: bool = False, show_progress: bool = True) -> dict:
    """Run the tuning loop; returns the losses at the log steps, the step it started from and the tuned UNet.

    The learning-rate schedule counts optimizer steps: ``lr_scheduler.step()`` runs once per optimizer step (when
    ``accelerator.sync_gradients``), whatever the number of processes.
    """
    _check_xformers(cfg.enable_xformers_memory_efficient_attention)
    v = cfg.validation_data
    if v.height % 8 or v.width % 8:
        raise ValueError(f"validation_data.height/width must be divisible by 8, got {v.height}x{v.width}")
    out = Path(cfg.output_dir)
    td = cfg.train_data
    video = load_training_video(
        td.video_path, td.n_sample_frames, td.width, td.height, td.sample_start_idx, td.sample_frame_rate
    )
    seed_everything(cfg.seed)  # before building the UNet: the fresh temporal layers draw their init from it
    parts = load_components(cfg.pretrained_model_path)
    accelerator = make_accelerator(
        out, mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        trackers=tuple(cfg.trackers), project_name="tune-a-video", config=to_dict(cfg),
    )  # fmt: skip
    seed_everything(cfg.seed)

    unet = parts.unet
    trainable = freeze_for_tuning(unet, tuple(cfg.trainable_modules))
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = _optimizer(cfg, params)
    lr_scheduler = get_scheduler(
        cfg.lr_scheduler,
        optimizer,
        num_warmup_steps=cfg.lr_warmup_steps,
        num_training_steps=cfg.max_train_steps,
    )
    prompt_ids = make_pipeline(parts).tokenize([td.prompt])[0]
    loader = DataLoader(TuneAVideoDataset(video, prompt_ids), batch_size=cfg.train_batch_size, shuffle=True)
    unet, optimizer, loader, lr_scheduler = accelerator.prepare(unet, optimizer, loader, lr_scheduler)

    # Frozen parts run in the mixed-precision dtype (upstream casts VAE and text encoder to fp16).
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
        accelerator.mixed_precision, torch.float32
    )
    parts.text_encoder.requires_grad_(False).to(accelerator.device, weight_dtype)
    if parts.vae is not None:
        parts.vae.requires_grad_(False).to(accelerator.device, weight_dtype)

    ckpt = CheckpointManager(accelerator, out, keep_last=cfg.checkpoints_total_limit)
    start = ckpt.resume() if resume else 0
    accumulation = cfg.gradient_accumulation_steps
    total_steps = cfg.max_train_steps * accumulation
    losses: list[float] = []
    pipe = make_pipeline(parts, accelerator.unwrap_model(unet))
    # visioncore.progress drops `disable` on non-main ranks (short-circuit), so pass it only without an accelerator.
    steps = range(start, total_steps)
    bar = (
        progress(steps, accelerator, desc="tuning") if show_progress else progress(steps, None, disable=True)
    )
    for step, batch in iterate_steps(accelerator, loader, start_step=start, max_steps=total_steps):
        unet.train()
        with accelerator.accumulate(unet):
            pixels = batch["pixel_values"].permute(0, 2, 1, 3, 4)  # (b, f, c, h, w) -> (b, c, f, h, w)
            with torch.no_grad():
                latents = pipe.encode_video(pixels.to(weight_dtype), sample=True).float()
                context = parts.text_encoder(batch["prompt_ids"].to(accelerator.device))[0].float()
            noise = torch.randn_like(latents)
            timesteps = sample_timesteps(parts.noise_scheduler, latents.shape[0]).to(latents.device)
            loss = diffusion_loss(unet, parts.noise_scheduler, latents, context, noise, timesteps)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            if accelerator.sync_gradients:  # one scheduler step per optimizer step
                lr_scheduler.step()
            optimizer.zero_grad()
        bar.update(1)
        done = step + 1
        if accelerator.sync_gradients and (
            (done // accumulation) % cfg.logging_steps == 0 or done == total_steps
        ):  # the only host syncs of the loop
            check_finite(loss, done, accelerator=accelerator, checkpoint=ckpt.latest())
            loss_value = accelerator.gather(loss.detach()).mean().item()
            losses.append(loss_value)
            accelerator.log(
                {"loss": loss_value, "lr": lr_scheduler.get_last_lr()[0]}, step=done // accumulation
            )
            bar.set_postfix(loss=f"{loss_value:.4f}")
        if accelerator.sync_gradients and done % (cfg.validation_steps * accumulation) == 0:
            if accelerator.is_main_process:
                with torch.random.fork_rng(devices=[]):  # validation must not shift the training RNG stream
                    source = pipe.encode_video(
                        video.permute(1, 0, 2, 3)[None].to(accelerator.device, weight_dtype)
                    )
                    validate(pipe, cfg, source.float(), done // accumulation, out)
            accelerator.wait_for_everyone()
        if should_save(done, cfg.checkpointing_steps * accumulation, total_steps):
            ckpt.save(done)
    bar.close()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        make_pipeline(parts, accelerator.unwrap_model(unet)).save_pretrained(out)
        save_config(cfg, out / "config.yaml")
        summary = {
            "steps": cfg.max_train_steps, "resumed_from": start, "trainable_tensors": len(trainable),
            "first_loss": losses[0] if losses else math.nan, "last_loss": losses[-1] if losses else math.nan,
            "output_dir": str(out),
        }  # fmt: skip
        atomic_write_json(out / "train_summary.json", summary)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return {"losses": losses, "start": start, "unet": accelerator.unwrap_model(unet)}
