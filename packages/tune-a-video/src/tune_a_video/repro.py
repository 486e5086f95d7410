"""Acceptance experiment of issue 4 (CPU scale): inflation exactness, inversion round trip and the one-shot effect.

Pixel space (no VAE) at 16x16 with the spec's tiny UNet: pretrain a text-to-image model on coloured shapes, inflate
it, one-shot tune on "a red square moving right" and sample the edit ("a blue square moving right") from the DDIM
inversion of the source and from noise. Settings are fixed in ``configs/repro.yaml``, identical for every seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler
from torch import nn

from visioncore.config import ConfigError, in_range, load_config, positive, save_config
from visioncore.files import atomic_path, atomic_write_json
from visioncore.synthetic import COLORS
from visioncore.training import seed_everything
from visioncore.viz import save_video

from .data.synthetic import ShapeImages, source_video
from .losses import diffusion_loss, fixed_pair_loss, sample_timesteps
from .models import InflatedUNet3DConditionModel, freeze_for_tuning
from .pipeline import TuneAVideoPipeline, ddim_from_config
from .tiny_sd import tiny_text_encoder, tiny_unet_2d, write_clip_tokenizer

METRIC_KEYS = (
    "inflation_max_abs_diff", "inversion_recon_mse", "data_variance", "motion_corr_inverted", "motion_corr_noise",
    "displacement_ratio", "edit_color_acc", "color_var_video", "color_var_per_frame_2d", "loss_tuned", "loss_frozen",
)  # fmt: skip


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
    attention_at_full_resolution: bool = False
    # SD's 32 GroupNorm groups on the tiny UNet's 32 channels are per-channel instance norm; 8 groups are not.
    norm_num_groups: int = 32
    # SD's 77-token context; a short one keeps the few content tokens from being diluted in cross-attention.
    context_tokens: int = 77
    # Pretrain the tiny random text encoder jointly with the UNet (frozen afterwards, as SD's in Tune-A-Video).
    train_text_encoder: bool = False
    pretrain_steps: int = 600
    pretrain_batch: int = 16
    pretrain_lr: float = 1e-3
    tune_steps: int = 150
    tune_lr: float = 5e-4
    inversion_steps: int = 25
    sample_steps: int = 25
    guidance_scale: float = 3.0
    source_color: str = "red"
    source_shape: str = "square"
    edit_color: str = "blue"
    edit_shape: str = "square"
    loss_pairs: int = 16
    object_threshold: float = 0.3

    def __post_init__(self) -> None:
        for name in (
            "size", "frames", "norm_num_groups", "context_tokens", "pretrain_steps", "pretrain_batch",
            "pretrain_lr", "tune_lr", "inversion_steps", "sample_steps", "loss_pairs",
        ):  # fmt: skip
            positive(name, getattr(self, name))
        positive("tune_steps", self.tune_steps, allow_zero=True)
        positive("guidance_scale", self.guidance_scale, allow_zero=True)
        positive("color_jitter", self.color_jitter, allow_zero=True)
        in_range("caption_dropout", self.caption_dropout, 0.0, 1.0)
        in_range("object_threshold", self.object_threshold, 0.0, 1.0)
        if not self.seeds:
            raise ConfigError("seeds must name at least one seed")
        unknown = sorted(set(self.colors + [self.source_color, self.edit_color]) - set(COLORS))
        if unknown:
            raise ConfigError(f"colors: unknown colour(s) {unknown} (known: {', '.join(sorted(COLORS))})")


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


def pretrain_2d(cfg: ReproConfig, prompts: PromptBank, scheduler: DDPMScheduler, log) -> nn.Module:
    seed_everything(cfg.pretrain_seed)
    unet = tiny_unet_2d(
        3, cfg.size, attention_at_full_resolution=cfg.attention_at_full_resolution,
        norm_num_groups=cfg.norm_num_groups,
    ).train()  # fmt: skip
    text_encoder = prompts.text_encoder
    params = list(unet.parameters())
    if cfg.train_text_encoder:
        params += list(text_encoder.requires_grad_(True).train().parameters())
    data = ShapeImages(
        cfg.size, cfg.colors, cfg.shapes, jitter=cfg.color_jitter, caption_dropout=cfg.caption_dropout
    )
    rng = np.random.default_rng(cfg.pretrain_seed)
    optimizer = torch.optim.AdamW(params, lr=cfg.pretrain_lr, weight_decay=1e-2)
    start = time.time()
    for step in range(cfg.pretrain_steps):
        images, captions = data.sample(cfg.pretrain_batch, rng)
        noise = torch.randn_like(images)
        t = sample_timesteps(scheduler, len(images))
        context = prompts.encode(captions) if cfg.train_text_encoder else prompts(captions)
        prediction = unet(scheduler.add_noise(images, noise, t), t, context).sample
        loss = torch.nn.functional.mse_loss(prediction, noise)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step % 100 == 0 or step == cfg.pretrain_steps - 1:
            log(f"pretrain step {step} loss {loss.item():.4f} ({time.time() - start:.0f}s)")
    text_encoder.eval().requires_grad_(False)  # frozen from here on, as SD's text encoder in Tune-A-Video
    return unet.eval()


def inflation_diff(folder: Path) -> float:
    """Max |inflated(identical frames) - 2-D(frame)| with the T-Attn output projection's weight and bias zeroed."""
    from diffusers import UNet2DConditionModel

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


@torch.no_grad()
def sample_2d_per_frame(unet_2d: nn.Module, cfg: ReproConfig, prompts: PromptBank, scheduler, seed: int):
    """Per-frame 2-D sampling from noise: f independent images of the edit prompt (the no-temporal-model baseline)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(cfg.frames, 3, cfg.size, cfg.size, generator=generator)
    edit_prompt = f"a {cfg.edit_color} {cfg.edit_shape} moving right"
    cond, uncond = prompts([edit_prompt] * cfg.frames), prompts([""] * cfg.frames)
    scheduler.set_timesteps(cfg.sample_steps)
    for t in scheduler.timesteps:
        out_u, out_c = unet_2d(torch.cat([x, x]), t, torch.cat([uncond, cond])).sample.chunk(2)
        x = scheduler.step(out_u + cfg.guidance_scale * (out_c - out_u), t, x).prev_sample
    return (x.permute(1, 0, 2, 3) / 2 + 0.5).clamp(0, 1)  # (3, f, h, w)


def run_seed(cfg, seed, folder, prompts, tokenizer, text_encoder, unet_2d, video, log, out: Path) -> dict:
    noise_scheduler = pixel_scheduler()
    seed_everything(seed)
    unet = InflatedUNet3DConditionModel.from_pretrained_2d(folder)
    freeze_for_tuning(unet)
    source_prompt = f"a {cfg.source_color} {cfg.source_shape} moving right"
    edit_prompt = f"a {cfg.edit_color} {cfg.edit_shape} moving right"
    context = prompts([source_prompt])
    loss_frozen = fixed_pair_loss(unet, noise_scheduler, video, context, cfg.loss_pairs, seed=1000 + seed)
    optimizer = torch.optim.AdamW(
        [p for p in unet.parameters() if p.requires_grad], lr=cfg.tune_lr, weight_decay=1e-2
    )
    unet.train()
    for step in range(cfg.tune_steps):
        noise = torch.randn_like(video)
        loss = diffusion_loss(
            unet, noise_scheduler, video, context, noise, sample_timesteps(noise_scheduler, 1)
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0:
            log(f"seed {seed} tune step {step} loss {loss.item():.4f}")
    unet.eval()
    loss_tuned = fixed_pair_loss(unet, noise_scheduler, video, context, cfg.loss_pairs, seed=1000 + seed)

    pipe = TuneAVideoPipeline(
        None, text_encoder, tokenizer, unet, ddim_from_config(dict(noise_scheduler.config))
    )
    pipe.set_progress_bar_config(disable=True)
    inverted = pipe.invert(video, num_inference_steps=cfg.inversion_steps)
    recon = pipe(
        "", cfg.frames, cfg.size, cfg.size, cfg.inversion_steps, guidance_scale=1.0, latents=inverted
    ).videos
    inversion_mse = float(((recon * 2 - 1) - video).pow(2).mean())
    common = dict(video_length=cfg.frames, height=cfg.size, width=cfg.size, num_inference_steps=cfg.sample_steps,
                  guidance_scale=cfg.guidance_scale)  # fmt: skip
    edit_inv = pipe(edit_prompt, latents=inverted, **common).videos[0]
    edit_noise = pipe(edit_prompt, generator=torch.Generator().manual_seed(seed), **common).videos[0]
    per_frame = sample_2d_per_frame(
        unet_2d, cfg, prompts, ddim_from_config(dict(noise_scheduler.config)), seed
    )

    source = find_objects(video[0] / 2 + 0.5, cfg.object_threshold)
    o_inv = find_objects(edit_inv, cfg.object_threshold)
    o_noise = find_objects(edit_noise, cfg.object_threshold)
    o_2d = find_objects(per_frame, cfg.object_threshold)
    for name, v in [("source", video[0] / 2 + 0.5), ("recon", recon[0]), ("edit_inverted", edit_inv),
                    ("edit_noise", edit_noise), ("per_frame_2d", per_frame)]:  # fmt: skip
        with atomic_path(out / f"seed{seed}_{name}.gif") as tmp:
            save_video(tmp, (v.permute(1, 0, 2, 3) * 255).round().byte(), fps=4)
    return {
        "inversion_recon_mse": inversion_mse,
        "data_variance": float(video.var()),
        "motion_corr_inverted": motion_correlation(o_inv, source),
        "motion_corr_noise": motion_correlation(o_noise, source),
        "displacement_ratio": displacement_ratio(o_inv, source),
        "edit_color_acc": edit_color_accuracy(o_inv, source, cfg.edit_color, cfg.colors),
        "color_var_video": color_variance(o_inv),
        "color_var_per_frame_2d": color_variance(o_2d),
        "loss_tuned": loss_tuned,
        "loss_frozen": loss_frozen,
    }


def expectations(m: dict, mins: dict) -> list[tuple[str, bool, str]]:
    return [
        ("inflation_max_abs_diff < 1e-5", m["inflation_max_abs_diff"] < 1e-5, f"{m['inflation_max_abs_diff']:.2e}"),
        ("inversion_recon_mse < data_variance / 10", m["inversion_recon_mse"] < m["data_variance"] / 10,
         f"{m['inversion_recon_mse']:.4f} vs {m['data_variance'] / 10:.4f}"),
        ("motion_corr_inverted >= 0.7", m["motion_corr_inverted"] >= 0.7,
         f"{m['motion_corr_inverted']:.3f} (min {mins['motion_corr_inverted']:.3f})"),
        ("motion_corr_noise <= inverted - 0.3", m["motion_corr_noise"] <= m["motion_corr_inverted"] - 0.3,
         f"{m['motion_corr_noise']:.3f} (min {mins['motion_corr_noise']:.3f})"),
        ("0.5 <= displacement_ratio <= 1.5", 0.5 <= m["displacement_ratio"] <= 1.5,
         f"{m['displacement_ratio']:.3f} (min {mins['displacement_ratio']:.3f})"),
        ("edit_color_acc >= 0.8", m["edit_color_acc"] >= 0.8,
         f"{m['edit_color_acc']:.3f} (min {mins['edit_color_acc']:.3f})"),
        ("color_var_video < color_var_per_frame_2d", m["color_var_video"] < m["color_var_per_frame_2d"],
         f"{m['color_var_video']:.4f} vs {m['color_var_per_frame_2d']:.4f}"),
        ("loss_tuned < loss_frozen", m["loss_tuned"] < m["loss_frozen"],
         f"{m['loss_tuned']:.4f} vs {m['loss_frozen']:.4f}"),
    ]  # fmt: skip


def run_repro(out: Path, config: str = "repro", overrides: list[str] | None = None) -> dict:
    cfg = load_config(ReproConfig, config, overrides or [], package="tune_a_video")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    start = time.time()
    log_file = (out / "log.txt").open("w")

    def log(msg: str) -> None:
        line = f"[{time.time() - start:6.0f}s] {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")

    torch.manual_seed(cfg.pretrain_seed)
    tokenizer = write_clip_tokenizer(out / "model" / "tokenizer", model_max_length=cfg.context_tokens)
    text_encoder = tiny_text_encoder().eval().requires_grad_(False)
    prompts = PromptBank(tokenizer, text_encoder)
    unet_2d = pretrain_2d(cfg, prompts, pixel_scheduler(), log)
    folder = out / "model"
    unet_2d.save_pretrained(folder / "unet")
    text_encoder.save_pretrained(folder / "text_encoder")
    inflation = inflation_diff(folder)
    log(f"inflation_max_abs_diff {inflation:.2e}")

    frames, caption = source_video(cfg.frames, cfg.size, cfg.source_color, cfg.source_shape)
    video = (torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1.0)[None]  # (1, 3, f, h, w)
    per_seed = {}
    for seed in cfg.seeds:
        per_seed[seed] = run_seed(
            cfg, seed, folder, prompts, tokenizer, text_encoder, unet_2d, video, log, out
        )
        log(f"seed {seed}: " + ", ".join(f"{k}={v:.4f}" for k, v in per_seed[seed].items()))
    keys = list(per_seed[cfg.seeds[0]])
    metrics = {"inflation_max_abs_diff": inflation}
    metrics.update({k: float(np.mean([per_seed[s][k] for s in cfg.seeds])) for k in keys})
    metrics = {k: metrics[k] for k in METRIC_KEYS}
    mins = {k: float(np.min([per_seed[s][k] for s in cfg.seeds])) for k in keys}
    atomic_write_json(out / "metrics.json", metrics)
    checks = expectations(metrics, mins)
    report = {"per_seed": per_seed, "min": mins, "checks": {n: ok for n, ok, _ in checks},
              "seconds": time.time() - start, "source_caption": caption}  # fmt: skip
    atomic_write_json(out / "report.json", report)
    print(f"\n{'expectation':45s} {'met':5s} measured (mean over seeds {cfg.seeds})")
    for name, ok, text in checks:
        print(f"{name:45s} {'yes' if ok else 'NO':5s} {text}")
    print(f"total {time.time() - start:.0f}s")
    log_file.close()
    return metrics
