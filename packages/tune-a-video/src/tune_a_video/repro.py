"""Acceptance experiments of issues 4 and 12 (CPU scale): inflation exactness, inversion round trip, a tiny
text-to-image model that follows its text, and the one-shot edit with its guidance trade-off and a per-frame baseline.

A tiny text-to-image model is pretrained on coloured shapes (pixel space, or the exact luma/chroma latent of
``latent.py``; cached under ``OUT/pretrained/<key>`` keyed by its configuration), checked from pure noise
(``text_follow_acc``), inflated, one-shot tuned on "a red square moving right" and asked for "a blue square moving
right" from the DDIM inversion of the source (at several guidance scales) and from noise; the same 2-D model edits each
frame on its own as the baseline. Settings are fixed in ``configs/repro.yaml``, identical for every seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput
from torch import nn
from transformers import CLIPTextModel, CLIPTokenizer

from visioncore.config import ConfigError, in_range, load_config, positive, save_config
from visioncore.files import atomic_path, atomic_write_json
from visioncore.synthetic import COLORS
from visioncore.training import seed_everything, warmup_cosine_schedule
from visioncore.viz import plot_curves, save_image_grid, save_video

from .data.synthetic import ShapeImages, source_video
from .latent import LumaChromaAutoencoder
from .losses import diffusion_loss, fixed_pair_loss, sample_timesteps
from .models import InflatedUNet3DConditionModel, freeze_for_tuning
from .pipeline import TuneAVideoPipeline, ddim_from_config
from .tiny_sd import tiny_text_encoder, tiny_unet_2d, write_clip_tokenizer

METRIC_KEYS = (
    "text_follow_acc", "inflation_max_abs_diff", "inversion_recon_mse", "data_variance", "motion_corr_inverted",
    "motion_corr_noise", "displacement_ratio", "edit_color_acc", "color_var_video", "color_var_per_frame_2d",
    "edit_color_acc_2d", "motion_corr_2d", "color_var_2d_edit", "loss_tuned", "loss_frozen", "edit_vs_guidance",
)  # fmt: skip
LATENTS = ("pixel", "luma_chroma")


@dataclass
class ReproConfig:
    size: int = 16
    frames: int = 8
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    pretrain_seed: int = 0
    colors: list[str] = field(default_factory=lambda: ["red", "green", "blue", "yellow"])
    shapes: list[str] = field(default_factory=lambda: ["square", "circle"])
    color_jitter: int = 25
    caption_dropout: float = 0.1
    # "pixel": diffusion on RGB; "luma_chroma": on the exact luma/chroma latent of latent.py (layout-dominant, as SD's)
    latent: str = "pixel"
    luma_scale: float = 4.0
    chroma_scale: float = 1.0
    attention_at_full_resolution: bool = False
    # SD's 32 GroupNorm groups on the tiny UNet's 32 channels are per-channel instance norm; 8 groups are not.
    norm_num_groups: int = 32
    # SD's 77-token context; a short one keeps the few content tokens from being diluted in cross-attention.
    context_tokens: int = 77
    # Pretrain the tiny random text encoder jointly with the UNet (frozen afterwards, as SD's in Tune-A-Video).
    train_text_encoder: bool = False
    text_layers: int = 2
    pretrain_steps: int = 600
    pretrain_batch: int = 16
    pretrain_lr: float = 1e-3
    pretrain_warmup: int = 0
    tune_steps: int = 150
    tune_lr: float = 5e-4
    inversion_steps: int = 25
    sample_steps: int = 25
    guidance_scale: float = 3.0
    guidance_sweep: list[float] = field(default_factory=lambda: [1.0, 3.0, 7.5, 12.5])
    text_follow_samples: int = 4  # per colour/shape prompt and seed
    # DDIM eta of the text-following samples from pure noise (1 = ancestral): deterministic DDIM (0) leaves colour
    # speckle on the background of about a quarter of the tiny model's samples (README). Edits stay at eta 0.
    text_follow_eta: float = 0.0
    source_color: str = "red"
    source_shape: str = "square"
    edit_color: str = "blue"
    edit_shape: str = "square"
    loss_pairs: int = 16
    object_threshold: float = 0.3

    def __post_init__(self) -> None:
        for name in (
            "size", "frames", "norm_num_groups", "context_tokens", "text_layers", "pretrain_steps", "pretrain_batch",
            "pretrain_lr", "tune_lr", "inversion_steps", "sample_steps", "loss_pairs", "text_follow_samples",
            "luma_scale", "chroma_scale",
        ):  # fmt: skip
            positive(name, getattr(self, name))
        for name in ("tune_steps", "guidance_scale", "color_jitter", "pretrain_warmup"):
            positive(name, getattr(self, name), allow_zero=True)
        in_range("caption_dropout", self.caption_dropout, 0.0, 1.0)
        in_range("object_threshold", self.object_threshold, 0.0, 1.0)
        in_range("text_follow_eta", self.text_follow_eta, 0.0, 1.0)
        if not self.seeds:
            raise ConfigError("seeds must name at least one seed")
        if not self.guidance_sweep or min(self.guidance_sweep) < 0:
            raise ConfigError(f"guidance_sweep must list scales >= 0, got {self.guidance_sweep}")
        if self.latent not in LATENTS:
            raise ConfigError(f"latent must be one of {LATENTS}, got {self.latent!r}")
        unknown = sorted(set(self.colors + [self.source_color, self.edit_color]) - set(COLORS))
        if unknown:
            raise ConfigError(f"colors: unknown colour(s) {unknown} (known: {', '.join(sorted(COLORS))})")


# Everything the pretrained 2-D model depends on: the cache key.
PRETRAIN_FIELDS = (
    "size", "pretrain_seed", "colors", "shapes", "color_jitter", "caption_dropout", "latent", "luma_scale",
    "chroma_scale", "attention_at_full_resolution", "norm_num_groups", "context_tokens", "train_text_encoder",
    "text_layers", "pretrain_steps", "pretrain_batch", "pretrain_lr", "pretrain_warmup",
)  # fmt: skip


def pretrain_key(cfg: ReproConfig) -> str:
    blob = json.dumps({k: getattr(cfg, k) for k in PRETRAIN_FIELDS}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def pixel_scheduler() -> DDPMScheduler:
    """DDPM's linear schedule (1e-4 to 0.02) for pixel space; SD's scaled-linear one is tuned for VAE latents."""
    return DDPMScheduler(
        beta_schedule="linear", beta_start=1e-4, beta_end=0.02, num_train_timesteps=1000, clip_sample=False
    )


# ------------------------------------------------------------------------------------------------ measurements
@dataclass
class FrameObjects:
    present: np.ndarray  # (f,) bool
    centroid_x: np.ndarray  # (f,)
    area: np.ndarray  # (f,)
    color: np.ndarray  # (f, 3) mean RGB in [0, 1] of the object's pixels


def find_objects(video: torch.Tensor, threshold: float) -> FrameObjects:
    """Object = pixels brighter than ``threshold`` (any channel) on the black background; video (3, f, h, w) in [0, 1]."""
    v = video.detach().float().cpu().numpy()
    mask = v.max(axis=0) > threshold  # (f, h, w)
    f, _, w = mask.shape
    xs = np.arange(w)[None, None, :] + 0.5
    area = mask.sum(axis=(1, 2)).astype(np.float64)
    present = area > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (mask * xs).sum(axis=(1, 2)) / area
        color = np.stack([(v[c] * mask).sum(axis=(1, 2)) / area for c in range(3)], axis=1)
    return FrameObjects(present, cx, area, color)


def motion_correlation(edit: FrameObjects, source: FrameObjects) -> float:
    """Pearson correlation of centroid-x trajectories; 0 if a frame has no object or the correlation is NaN."""
    if not edit.present.all():
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(edit.centroid_x, source.centroid_x)[0, 1]
    return 0.0 if not np.isfinite(r) else float(r)


def displacement_ratio(edit: FrameObjects, source: FrameObjects) -> float:
    if not (edit.present[0] and edit.present[-1]):
        return 0.0
    return float((edit.centroid_x[-1] - edit.centroid_x[0]) / (source.centroid_x[-1] - source.centroid_x[0]))


def nearest_color(rgb: np.ndarray, names: list[str]) -> str:
    palette = np.array([COLORS[n] for n in names], dtype=np.float64) / 255.0
    return names[int(np.argmin(((palette - rgb[None]) ** 2).sum(axis=1)))]


def edit_color_accuracy(edit: FrameObjects, source: FrameObjects, target: str, names: list[str]) -> float:
    """Share of frames with an object of the target colour whose area is 50-200% of the source object's."""
    hits = []
    for i in range(len(edit.present)):
        ok = bool(edit.present[i]) and nearest_color(edit.color[i], names) == target
        ok = ok and 0.5 <= edit.area[i] / source.area[i] <= 2.0
        hits.append(ok)
    return float(np.mean(hits))


def color_variance(objects: FrameObjects) -> float:
    """Variance across frames of the object's mean colour (mean over RGB); NaN-free (frames with an object only)."""
    colors = objects.color[objects.present]
    return float(colors.var(axis=0).mean()) if len(colors) >= 2 else 0.0


# ------------------------------------------------------------------------------------------------ stages
class PromptBank:
    """The tiny CLIP text encoder's embeddings per caption (cached once the encoder is frozen)."""

    def __init__(self, tokenizer, text_encoder: nn.Module) -> None:
        self.tokenizer, self.text_encoder, self.cache = tokenizer, text_encoder, {}

    def encode(self, captions: list[str]) -> torch.Tensor:
        ids = self.tokenizer(
            captions, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True,
            return_tensors="pt",
        )  # fmt: skip
        return self.text_encoder(ids.input_ids)[0]

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> torch.Tensor:
        missing = [c for c in dict.fromkeys(captions) if c not in self.cache]
        if missing:
            for c, e in zip(missing, self.encode(missing), strict=True):
                self.cache[c] = e
        return torch.stack([self.cache[c] for c in captions])


def make_autoencoder(cfg: ReproConfig) -> LumaChromaAutoencoder | None:
    """None = pixel space; otherwise the exact luma/chroma latent (latent.py)."""
    if cfg.latent == "pixel":
        return None
    return LumaChromaAutoencoder(luma_scale=cfg.luma_scale, chroma_scale=cfg.chroma_scale).eval()


def to_latent(autoencoder: LumaChromaAutoencoder | None, images: torch.Tensor) -> torch.Tensor:
    return images if autoencoder is None else autoencoder.encode(images).latent_dist.mode()


def pretrain_2d(cfg: ReproConfig, folder: Path, scheduler: DDPMScheduler, autoencoder, log) -> dict:
    """Pretrain the tiny text-to-image model as SD was trained (epsilon loss, ``caption_dropout`` of the captions
    replaced by "", so that the empty prompt means unconditional) and write it to ``folder`` in diffusers layout."""
    seed_everything(cfg.pretrain_seed)
    tokenizer = write_clip_tokenizer(folder / "tokenizer", model_max_length=cfg.context_tokens)
    text_encoder = tiny_text_encoder(num_layers=cfg.text_layers).eval().requires_grad_(False)
    unet = tiny_unet_2d(
        3, cfg.size, attention_at_full_resolution=cfg.attention_at_full_resolution,
        norm_num_groups=cfg.norm_num_groups,
    ).train()  # fmt: skip
    prompts = PromptBank(tokenizer, text_encoder)
    params = list(unet.parameters())
    if cfg.train_text_encoder:
        params += list(text_encoder.requires_grad_(True).train().parameters())
    data = ShapeImages(
        cfg.size, cfg.colors, cfg.shapes, jitter=cfg.color_jitter, caption_dropout=cfg.caption_dropout
    )
    rng = np.random.default_rng(cfg.pretrain_seed)
    optimizer = torch.optim.AdamW(params, lr=cfg.pretrain_lr, weight_decay=1e-2)
    schedule = warmup_cosine_schedule(optimizer, cfg.pretrain_warmup, cfg.pretrain_steps)
    start, cpu_start, losses = time.time(), time.process_time(), []
    for step in range(cfg.pretrain_steps):
        images, captions = data.sample(cfg.pretrain_batch, rng)
        latents = to_latent(autoencoder, images)
        noise = torch.randn_like(latents)
        t = sample_timesteps(scheduler, len(latents))
        context = prompts.encode(captions) if cfg.train_text_encoder else prompts(captions)
        prediction = unet(scheduler.add_noise(latents, noise, t), t, context).sample
        loss = torch.nn.functional.mse_loss(prediction, noise)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == cfg.pretrain_steps - 1:
            losses.append(loss.item())
            log(f"pretrain step {step} loss {losses[-1]:.4f} ({time.time() - start:.0f}s)")
    unet.save_pretrained(folder / "unet")
    text_encoder.save_pretrained(folder / "text_encoder")
    fields = {k: getattr(cfg, k) for k in PRETRAIN_FIELDS}
    return {"config": fields, "losses_every_100": losses, "seconds": time.time() - start,
            "cpu_seconds": time.process_time() - cpu_start}  # fmt: skip


def export_pretrained(cfg: ReproConfig, out: Path, log=print) -> Path:
    """``make-tiny-sd --pretrain``: the repro's pretraining written as a complete Stable Diffusion folder (diffusers
    layout: ``unet/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/`` (DDPM's linear schedule), ``vae/`` (the
    luma/chroma latent; none in pixel space) and ``model_index.json``) that ``train --pretrained`` loads."""
    out.mkdir(parents=True, exist_ok=True)
    autoencoder = make_autoencoder(cfg)
    scheduler = pixel_scheduler()
    atomic_write_json(out / "pretrain.json", pretrain_2d(cfg, out, scheduler, autoencoder, log))
    scheduler.save_pretrained(out / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "unet": ["diffusers", "UNet2DConditionModel"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "DDPMScheduler"],
    }  # fmt: skip
    if autoencoder is not None:
        autoencoder.save_pretrained(out / "vae")
        index["vae"] = ["tune_a_video.latent", "LumaChromaAutoencoder"]
    atomic_write_json(out / "model_index.json", index)
    return out


@dataclass
class Pretrained:
    folder: Path
    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModel
    unet_2d: UNet2DConditionModel
    info: dict


def load_or_pretrain(cfg: ReproConfig, out: Path, log) -> Pretrained:
    """The pretrained 2-D model from ``out/pretrained/<key of its config>``, trained and cached there if absent.

    Always read back from disk, so a fresh run and a cached rerun continue from the same weights.
    """
    folder = out / "pretrained" / pretrain_key(cfg)
    if (folder / "pretrain.json").is_file():
        log(f"pretrained 2-D model reused from the cache {folder}")
    else:
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        export_pretrained(cfg, tmp, log)  # a complete SD folder, as ``make-tiny-sd --pretrain`` writes
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)  # a killed run leaves only the .partial folder, never a half-written cache
    return Pretrained(
        folder=folder,
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        text_encoder=CLIPTextModel.from_pretrained(folder / "text_encoder").eval().requires_grad_(False),
        unet_2d=UNet2DConditionModel.from_pretrained(folder / "unet").eval().requires_grad_(False),
        info=json.loads((folder / "pretrain.json").read_text()),
    )


def inflation_diff(folder: Path) -> float:
    """Max |inflated(identical frames) - 2-D(frame)| with the T-Attn output projection's weight and bias zeroed."""
    unet_2d = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()
    unet = InflatedUNet3DConditionModel.from_pretrained_2d(folder).eval()
    for name, module in unet.named_modules():
        if name.endswith("attn_temp"):
            nn.init.zeros_(module.to_out[0].weight)
            nn.init.zeros_(module.to_out[0].bias)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, unet.config.in_channels, 16, 16, generator=generator)
    ctx = torch.randn(2, 77, unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        expected = unet_2d(x, 500, ctx).sample
        out = unet(x[:, :, None].repeat(1, 1, 8, 1, 1), 500, ctx).sample
    return float((out - expected[:, :, None]).abs().max())


class PerFrame2D(nn.Module):
    """The pretrained 2-D UNet applied to every frame on its own (no inflation, no tuning), with the 5-D interface of
    the inflated UNet, so that the per-frame baseline samples and inverts through the very same pipeline code."""

    def __init__(self, unet_2d: UNet2DConditionModel) -> None:
        super().__init__()
        self.unet_2d = unet_2d
        self.config = unet_2d.config

    @property
    def dtype(self) -> torch.dtype:
        return self.unet_2d.dtype

    @property
    def device(self) -> torch.device:
        return self.unet_2d.device

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor):
        b, _, f, h, w = sample.shape
        frames = sample.permute(0, 2, 1, 3, 4).reshape(b * f, -1, h, w)
        out = self.unet_2d(frames, timestep, encoder_hidden_states.repeat_interleave(f, dim=0)).sample
        return UNet2DConditionOutput(sample=out.reshape(b, f, -1, h, w).permute(0, 2, 1, 3, 4))


def reference_areas(cfg: ReproConfig, num_images: int = 512) -> dict[str, float]:
    """Median object area (pixels over ``object_threshold``) of each shape in the pretraining data, for
    ``text_follow_acc``'s 50-200 % area rule. (The area of one object at the image centre, the first reference,
    is 16 px for both shapes at 16x16 where the data's medians are 25 (square) and 18 (circle): it rejected about 2 %
    of the training images themselves; with the data's median the classifier is right on all of them, a test.)"""
    data = ShapeImages(cfg.size, cfg.colors, cfg.shapes, jitter=cfg.color_jitter, caption_dropout=0.0)
    images, captions = data.sample(num_images, np.random.default_rng(0))
    objects = find_objects(images.permute(1, 0, 2, 3) / 2 + 0.5, cfg.object_threshold)
    shapes = np.array([caption.split()[2] for caption in captions])
    return {shape: float(np.median(objects.area[shapes == shape])) for shape in cfg.shapes}


@torch.no_grad()
def text_follow_accuracy(
    pipe_2d: TuneAVideoPipeline, cfg: ReproConfig, seed: int, areas: dict[str, float], eta: float
) -> float:
    """Share of images sampled from pure noise (at the repro's guidance, DDIM with ``eta``) for "a <colour>
    <shape>", every colour and shape, whose object has the prompt's colour (``nearest_color``, as
    ``edit_color_acc``) and 50-200% of the shape's median area in the data, ``areas`` (so a frame-filling field of
    the right colour does not count)."""
    pairs = [(c, s) for c in cfg.colors for s in cfg.shapes for _ in range(cfg.text_follow_samples)]
    videos = pipe_2d(
        [f"a {c} {s}" for c, s in pairs], 1, cfg.size, cfg.size, cfg.sample_steps,
        guidance_scale=cfg.guidance_scale, generator=torch.Generator().manual_seed(seed), eta=eta,
    ).videos  # fmt: skip
    objects = find_objects(videos[:, :, 0].permute(1, 0, 2, 3), cfg.object_threshold)  # images as "frames"
    hits = [
        bool(objects.present[i]) and nearest_color(objects.color[i], cfg.colors) == c
        and 0.5 <= objects.area[i] / areas[s] <= 2.0
        for i, (c, s) in enumerate(pairs)
    ]  # fmt: skip
    return float(np.mean(hits))


def edit_measures(video: torch.Tensor, source: FrameObjects, cfg: ReproConfig) -> dict:
    """The edit's colour accuracy, motion correlation, displacement and colour variance; video (3, f, h, w)."""
    objects = find_objects(video, cfg.object_threshold)
    return {
        "edit_color_acc": edit_color_accuracy(objects, source, cfg.edit_color, cfg.colors),
        "motion_corr": motion_correlation(objects, source),
        "displacement_ratio": displacement_ratio(objects, source),
        "color_var": color_variance(objects),
    }


def tune(unet: InflatedUNet3DConditionModel, cfg: ReproConfig, latents, context, scheduler, seed: int, log):
    """One-shot tuning (paper Sec. 4.2): only attn1.to_q, attn2.to_q and attn_temp learn, on the one video."""
    optimizer = torch.optim.AdamW(
        [p for p in unet.parameters() if p.requires_grad], lr=cfg.tune_lr, weight_decay=1e-2
    )
    unet.train()
    for step in range(cfg.tune_steps):
        noise = torch.randn_like(latents)
        loss = diffusion_loss(unet, scheduler, latents, context, noise, sample_timesteps(scheduler, 1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0:
            log(f"seed {seed} tune step {step} loss {loss.item():.4f}")
    return unet.eval()


def save_videos(out: Path, seed: int, videos: dict[str, torch.Tensor]) -> None:
    """GIFs per video and one PNG strip (source, edit, per-frame 2-D edit; 4x nearest upscaling) for the README."""
    for name, v in videos.items():
        with atomic_path(out / f"seed{seed}_{name}.gif") as tmp:
            save_video(tmp, (v.permute(1, 0, 2, 3) * 255).round().byte(), fps=4)
    rows = [videos[k].permute(1, 0, 2, 3) for k in ("source", "edit_inverted", "edit_2d")]
    tiles = torch.nn.functional.interpolate(torch.cat(rows), scale_factor=4, mode="nearest")
    with atomic_path(out / f"seed{seed}_strip.png") as tmp:
        save_image_grid(tmp, tiles, nrow=rows[0].shape[0])


def run_seed(cfg, seed, pre: Pretrained, autoencoder, video, log, out: Path) -> dict:
    noise_scheduler = pixel_scheduler()
    seed_everything(seed)
    unet = InflatedUNet3DConditionModel.from_pretrained_2d(pre.folder)
    freeze_for_tuning(unet)
    pipe = TuneAVideoPipeline(
        autoencoder, pre.text_encoder, pre.tokenizer, unet, ddim_from_config(dict(noise_scheduler.config))
    )
    pipe_2d = TuneAVideoPipeline(
        autoencoder, pre.text_encoder, pre.tokenizer, PerFrame2D(pre.unet_2d),
        ddim_from_config(dict(noise_scheduler.config)),
    )  # fmt: skip
    for p in (pipe, pipe_2d):
        p.set_progress_bar_config(disable=True)
    source_prompt = f"a {cfg.source_color} {cfg.source_shape} moving right"
    edit_prompt = f"a {cfg.edit_color} {cfg.edit_shape} moving right"
    areas = reference_areas(cfg)
    text_follow = text_follow_accuracy(pipe_2d, cfg, seed, areas, cfg.text_follow_eta)
    text_follow_ddim = text_follow_accuracy(pipe_2d, cfg, seed, areas, 0.0)  # diagnostic: deterministic DDIM
    log(
        f"seed {seed} text_follow_acc {text_follow:.3f} (eta {cfg.text_follow_eta:g}; deterministic DDIM "
        f"{text_follow_ddim:.3f})"
    )

    with torch.no_grad():
        latents = pipe.encode_video(video)
        context = pipe.encode_prompt(source_prompt)
    loss_frozen = fixed_pair_loss(unet, noise_scheduler, latents, context, cfg.loss_pairs, seed=1000 + seed)
    tune(unet, cfg, latents, context, noise_scheduler, seed, log)
    loss_tuned = fixed_pair_loss(unet, noise_scheduler, latents, context, cfg.loss_pairs, seed=1000 + seed)

    inverted = pipe.invert(latents, num_inference_steps=cfg.inversion_steps)
    recon = pipe(
        "", cfg.frames, cfg.size, cfg.size, cfg.inversion_steps, guidance_scale=1.0, latents=inverted
    ).videos
    common = dict(
        video_length=cfg.frames, height=cfg.size, width=cfg.size, num_inference_steps=cfg.sample_steps
    )
    source_video01 = video[0] / 2 + 0.5
    source = find_objects(source_video01, cfg.object_threshold)
    sweep, edits = [], {}
    for g in dict.fromkeys([*cfg.guidance_sweep, cfg.guidance_scale]):
        edits[g] = pipe(edit_prompt, latents=inverted, guidance_scale=g, **common).videos[0]
        m = edit_measures(edits[g], source, cfg)
        if g in cfg.guidance_sweep:
            sweep.append(
                {
                    "guidance": g,
                    "edit_color_acc": m["edit_color_acc"],
                    "motion_corr_inverted": m["motion_corr"],
                }
            )
    edit = edit_measures(edits[cfg.guidance_scale], source, cfg)
    noise_generator = torch.Generator().manual_seed(seed)
    edit_noise = pipe(
        edit_prompt, generator=noise_generator, guidance_scale=cfg.guidance_scale, **common
    ).videos[0]
    # per-frame 2-D baselines: from noise (issue 4) and editing each frame from its own inversion (issue 12)
    noise_2d = pipe_2d(
        edit_prompt, generator=torch.Generator().manual_seed(seed), guidance_scale=cfg.guidance_scale, **common
    ).videos[0]  # fmt: skip
    inverted_2d = pipe_2d.invert(latents, num_inference_steps=cfg.inversion_steps)
    edit_2d = pipe_2d(edit_prompt, latents=inverted_2d, guidance_scale=cfg.guidance_scale, **common).videos[0]
    baseline = edit_measures(edit_2d, source, cfg)

    save_videos(out, seed, {
        "source": source_video01, "recon": recon[0], "edit_inverted": edits[cfg.guidance_scale],
        "edit_noise": edit_noise, "per_frame_2d": noise_2d, "edit_2d": edit_2d,
    })  # fmt: skip
    return {
        "text_follow_acc": text_follow,
        "text_follow_acc_ddim": text_follow_ddim,
        "inversion_recon_mse": float(((recon * 2 - 1) - video).pow(2).mean()),
        "data_variance": float(video.var()),
        "motion_corr_inverted": edit["motion_corr"],
        "motion_corr_noise": motion_correlation(find_objects(edit_noise, cfg.object_threshold), source),
        "displacement_ratio": edit["displacement_ratio"],
        "edit_color_acc": edit["edit_color_acc"],
        "color_var_video": edit["color_var"],
        "color_var_per_frame_2d": color_variance(find_objects(noise_2d, cfg.object_threshold)),
        "edit_color_acc_2d": baseline["edit_color_acc"],
        "motion_corr_2d": baseline["motion_corr"],
        "color_var_2d_edit": baseline["color_var"],
        "loss_tuned": loss_tuned,
        "loss_frozen": loss_frozen,
        "edit_vs_guidance": sweep,
    }


def expectations(m: dict, mins: dict) -> list[tuple[str, bool, str]]:
    """The issue's fixed expectations on the seed means (``mins``: the worst seed, for the table)."""

    def at(k: str, fmt: str = ".3f") -> str:
        return f"{m[k]:{fmt}} (min {mins[k]:{fmt}})"

    return [
        ("text_follow_acc >= 0.9", m["text_follow_acc"] >= 0.9, at("text_follow_acc")),
        ("inflation_max_abs_diff < 1e-5", m["inflation_max_abs_diff"] < 1e-5, f"{m['inflation_max_abs_diff']:.2e}"),
        ("inversion_recon_mse < data_variance / 10", m["inversion_recon_mse"] < m["data_variance"] / 10,
         f"{m['inversion_recon_mse']:.4f} vs {m['data_variance'] / 10:.4f}"),
        ("edit_color_acc >= 0.8", m["edit_color_acc"] >= 0.8, at("edit_color_acc")),
        ("motion_corr_inverted >= 0.7", m["motion_corr_inverted"] >= 0.7, at("motion_corr_inverted")),
        ("motion_corr_inverted >= motion_corr_noise + 0.3", m["motion_corr_inverted"] >= m["motion_corr_noise"] + 0.3,
         f"{m['motion_corr_inverted']:.3f} vs {m['motion_corr_noise']:.3f} + 0.3"),
        ("0.5 <= displacement_ratio <= 1.5", 0.5 <= m["displacement_ratio"] <= 1.5, at("displacement_ratio")),
        ("color_var_video < color_var_per_frame_2d", m["color_var_video"] < m["color_var_per_frame_2d"],
         f"{m['color_var_video']:.4f} vs {m['color_var_per_frame_2d']:.4f}"),
        ("loss_tuned < loss_frozen", m["loss_tuned"] < m["loss_frozen"],
         f"{m['loss_tuned']:.4f} vs {m['loss_frozen']:.4f}"),
    ]  # fmt: skip


def versus_2d(m: dict) -> list[tuple[str, bool, str]]:
    """Tune-A-Video's claim against the per-frame 2-D edit: more temporally consistent at equal edit strength."""
    return [
        ("TAV colour variance < per-frame 2-D edit's", m["color_var_video"] < m["color_var_2d_edit"],
         f"{m['color_var_video']:.4f} vs {m['color_var_2d_edit']:.4f}"),
        ("TAV edit_color_acc >= per-frame 2-D edit's", m["edit_color_acc"] >= m["edit_color_acc_2d"],
         f"{m['edit_color_acc']:.3f} vs {m['edit_color_acc_2d']:.3f}"),
        ("TAV motion_corr >= per-frame 2-D edit's", m["motion_corr_inverted"] >= m["motion_corr_2d"],
         f"{m['motion_corr_inverted']:.3f} vs {m['motion_corr_2d']:.3f}"),
    ]  # fmt: skip


def mean_sweep(per_seed: dict, seeds: list[int]) -> list[dict]:
    sweeps = [per_seed[s]["edit_vs_guidance"] for s in seeds]
    return [
        {"guidance": points[0]["guidance"],
         "edit_color_acc": float(np.mean([p["edit_color_acc"] for p in points])),
         "motion_corr_inverted": float(np.mean([p["motion_corr_inverted"] for p in points]))}
        for points in zip(*sweeps, strict=True)
    ]  # fmt: skip


def run_repro(out: Path, config: str = "repro", overrides: list[str] | None = None) -> dict:
    cfg = load_config(ReproConfig, config, overrides or [], package="tune_a_video")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    start, cpu_start = time.time(), time.process_time()
    log_file = (out / "log.txt").open("w")

    def log(msg: str) -> None:
        line = f"[{time.time() - start:6.0f}s] {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")

    autoencoder = make_autoencoder(cfg)
    pre = load_or_pretrain(cfg, out, log)
    inflation = inflation_diff(pre.folder)
    log(f"inflation_max_abs_diff {inflation:.2e}")

    frames, caption = source_video(cfg.frames, cfg.size, cfg.source_color, cfg.source_shape)
    video = (torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1.0)[None]  # (1, 3, f, h, w)
    per_seed = {}
    for seed in cfg.seeds:
        per_seed[seed] = run_seed(cfg, seed, pre, autoencoder, video, log, out)
        log(
            f"seed {seed}: "
            + ", ".join(f"{k}={v:.4f}" for k, v in per_seed[seed].items() if k != "edit_vs_guidance")
        )
    scalars = [k for k in per_seed[cfg.seeds[0]] if k != "edit_vs_guidance"]
    metrics = {"inflation_max_abs_diff": inflation}
    metrics.update({k: float(np.mean([per_seed[s][k] for s in cfg.seeds])) for k in scalars})
    metrics["edit_vs_guidance"] = mean_sweep(per_seed, cfg.seeds)
    metrics = {k: metrics[k] for k in METRIC_KEYS}
    mins = {k: float(np.min([per_seed[s][k] for s in cfg.seeds])) for k in scalars}
    atomic_write_json(out / "metrics.json", metrics)
    sweep = metrics["edit_vs_guidance"]
    gs = [p["guidance"] for p in sweep]
    with atomic_path(out / "edit_vs_guidance.png") as tmp:
        plot_curves(tmp, {
            "edit_color_acc": (gs, [p["edit_color_acc"] for p in sweep]),
            "motion_corr_inverted": (gs, [p["motion_corr_inverted"] for p in sweep]),
        }, title=f"edit vs guidance (mean of seeds {cfg.seeds})", xlabel="guidance scale")  # fmt: skip
    checks, claims = expectations(metrics, mins), versus_2d(metrics)
    report = {"per_seed": per_seed, "min": mins, "checks": {n: ok for n, ok, _ in checks},
              "versus_2d": {n: ok for n, ok, _ in claims}, "pretrained": str(pre.folder),
              "pretrain": pre.info, "seconds": time.time() - start, "cpu_seconds": time.process_time() - cpu_start,
              "source_caption": caption}  # fmt: skip
    atomic_write_json(out / "report.json", report)
    print(f"\n{'expectation':50s} {'met':5s} measured (mean over seeds {cfg.seeds})")
    for name, ok, text in checks:
        print(f"{name:50s} {'yes' if ok else 'NO':5s} {text}")
    print("\nper-frame 2-D edit baseline (Tune-A-Video's claim: ahead on consistency)")
    for name, ok, text in claims:
        print(f"{name:50s} {'yes' if ok else 'no':5s} {text}")
    print("\nguidance  edit_color_acc  motion_corr_inverted")
    for p in sweep:
        print(f"{p['guidance']:8g}  {p['edit_color_acc']:14.3f}  {p['motion_corr_inverted']:20.3f}")
    print(f"total {time.time() - start:.0f}s wall, {time.process_time() - cpu_start:.0f}s CPU (this process)")
    log_file.close()
    return metrics
