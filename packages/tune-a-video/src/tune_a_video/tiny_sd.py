"""Offline Stable Diffusion stand-ins: a real CLIP BPE tokenizer and a tiny random SD folder in diffusers layout.

``make_tiny_sd(out)`` writes ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/`` and
``model_index.json``, loadable exactly like ``CompVis/stable-diffusion-v1-4`` (every component is the real class,
only much smaller and randomly initialised).
"""

from __future__ import annotations

import gzip
import json
from importlib.resources import files
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

CLIP_VOCAB_SIZE = 49408


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode map."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def write_clip_tokenizer(out: str | Path, model_max_length: int = 77) -> CLIPTokenizer:
    """Write OpenAI CLIP's tokenizer (vocab.json + merges.txt, 49408 tokens) from open-clip-torch's BPE file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bpe_path = files("open_clip") / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.decompress(bpe_path.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]  # the slice CLIP itself uses
    base = list(_bytes_to_unicode().values())
    vocab = base + [v + "</w>" for v in base] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (out / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(
        vocab=str(out / "vocab.json"), merges=str(out / "merges.txt"), model_max_length=model_max_length
    )
    tokenizer.save_pretrained(out)
    return tokenizer


def tiny_unet_2d(
    in_channels: int = 4,
    sample_size: int = 8,
    cross_attention_dim: int = 32,
    attention_at_full_resolution: bool = True,
    norm_num_groups: int = 32,
) -> UNet2DConditionModel:
    """The tiny SD UNet of the spec sheet (about 0.8 M parameters). With ``attention_at_full_resolution=False`` the
    transformers sit at the half-resolution level only (SD's own layout puts none at the lowest level; this is the
    cheaper mirror image, about 2x faster on CPU at 16x16)."""
    down = (
        ("CrossAttnDownBlock2D", "DownBlock2D")
        if attention_at_full_resolution
        else ("DownBlock2D", "CrossAttnDownBlock2D")
    )
    up = (
        ("UpBlock2D", "CrossAttnUpBlock2D")
        if attention_at_full_resolution
        else ("CrossAttnUpBlock2D", "UpBlock2D")
    )
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=in_channels, out_channels=in_channels,
        block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=cross_attention_dim,
        attention_head_dim=4, down_block_types=down, up_block_types=up, norm_num_groups=norm_num_groups,
    )  # fmt: skip


def tiny_text_encoder(hidden_size: int = 32, num_layers: int = 2) -> CLIPTextModel:
    return CLIPTextModel(
        CLIPTextConfig(
            hidden_size=hidden_size, intermediate_size=4 * hidden_size, num_hidden_layers=num_layers,
            num_attention_heads=4,
            vocab_size=CLIP_VOCAB_SIZE, max_position_embeddings=77,
        )
    )  # fmt: skip


def tiny_vae() -> AutoencoderKL:
    """One-level AutoencoderKL: 4 latent channels, downsampling factor 1 is avoided by two levels (factor 2)."""
    return AutoencoderKL(
        block_out_channels=(32, 32), latent_channels=4, layers_per_block=1, norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    )  # fmt: skip


def sd_scheduler() -> PNDMScheduler:
    """SD v1-4's scheduler config: scaled-linear betas 0.00085-0.012, 1000 steps, steps_offset 1."""
    return PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1,
    )  # fmt: skip


def make_tiny_sd(out: str | Path, seed: int = 0) -> Path:
    """Write a tiny random Stable Diffusion folder (diffusers layout) to ``out`` and return it."""
    out = Path(out)
    torch.manual_seed(seed)
    tiny_unet_2d().save_pretrained(out / "unet")
    tiny_vae().save_pretrained(out / "vae")
    tiny_text_encoder().save_pretrained(out / "text_encoder")
    write_clip_tokenizer(out / "tokenizer")
    sd_scheduler().save_pretrained(out / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "PNDMScheduler"],
    }  # fmt: skip
    (out / "model_index.json").write_text(json.dumps(index, indent=2))
    return out
