"""Evaluation of the paper (Sec. 5.1): CLIP frame consistency and CLIP textual alignment, with a local CLIP folder."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import CLIPModel, CLIPTokenizer

from visioncore.metrics import clip_frame_consistency, clip_text_alignment
from visioncore.video import read_video

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@torch.no_grad()
def clip_scores(
    frames: torch.Tensor, prompt: str, model: CLIPModel, tokenizer: CLIPTokenizer
) -> dict[str, float]:
    """frames (f, 3, h, w) in [0, 1]. Frame consistency = mean cosine of consecutive frames' image embeddings;
    text alignment = mean cosine of each frame with the prompt (raw cosines; the paper reports x100)."""
    size = model.config.vision_config.image_size
    pixels = F.interpolate(frames.float(), size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    pixels = ((pixels - mean) / std).to(
        model.device, model.dtype
    )  # preprocessed in fp32, run in the model's dtype
    image_embeds = model.get_image_features(pixel_values=pixels)
    ids = tokenizer(
        [prompt], padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    ).input_ids
    text_embeds = model.get_text_features(input_ids=ids.to(model.device))
    image_embeds = getattr(image_embeds, "pooler_output", image_embeds).float().cpu()
    text_embeds = getattr(text_embeds, "pooler_output", text_embeds).float().cpu()
    return {
        "frame_consistency": clip_frame_consistency(image_embeds.numpy()),
        "text_alignment": clip_text_alignment(image_embeds.numpy(), text_embeds[0].numpy()),
    }


def load_clip(folder: str | Path) -> tuple[CLIPModel, CLIPTokenizer]:
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"--clip {folder}: no config.json (expected a saved transformers CLIPModel folder)"
        )
    return CLIPModel.from_pretrained(folder).eval(), CLIPTokenizer.from_pretrained(folder)


def evaluate_video_file(
    video: str | Path,
    prompt: str,
    clip_folder: str | Path,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict[str, float]:
    """CLIP metrics of a generated GIF/MP4 against its prompt, the CLIP model on ``device`` in ``dtype``."""
    frames = read_video(video).float() / 255.0
    model, tokenizer = load_clip(clip_folder)
    return clip_scores(frames, prompt, model.to(device, dtype), tokenizer)
