"""``extract-features``: CLIP frame and crop features (and question text features) from local videos or PNG frames.

Per video: 32 frames sampled at the centres of 32 equal intervals; each frame is resized to 896x896 and cut into a
4x4 grid of 224x224 crops, and the frame (resized to 224x224) and its 16 crops are encoded independently by the CLIP
image tower (``image_embeds``): features [32, 17, D], slot 0 the frame. Questions get the CLIP text tower's EOT
embedding. Weights come only from a local transformers CLIP folder (``--clip DIR``).

Each finished video is written to ``<h5>.parts/<key>.npy`` (atomically), so an interrupted run resumes where it
stopped; the h5 file itself is written atomically once every video is done.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mist_videoqa.data.features import write_features
from visioncore.files import atomic_path

__all__ = [
    "ClipEncoder",
    "envqa_frame_sources",
    "extract_text_features",
    "extract_video_features",
    "frame_and_crops",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def frame_and_crops(frames: torch.Tensor, grid: int = 4, crop: int = 224) -> torch.Tensor:
    """uint8 [T, 3, H, W] -> normalised CLIP inputs [T, 1 + grid*grid, 3, crop, crop] (the frame, then crops row-major)."""
    x = frames.float() / 255.0
    whole = F.interpolate(x, size=(crop, crop), mode="bicubic", align_corners=False)
    big = F.interpolate(x, size=(grid * crop, grid * crop), mode="bicubic", align_corners=False)
    t = x.shape[0]
    crops = (
        big.view(t, 3, grid, crop, grid, crop)
        .permute(0, 2, 4, 1, 3, 5)
        .reshape(t, grid * grid, 3, crop, crop)
    )
    out = torch.cat([whole.unsqueeze(1), crops], dim=1).clamp(0, 1)
    mean = torch.tensor(CLIP_MEAN).view(1, 1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 1, 3, 1, 1)
    return (out - mean) / std


class ClipEncoder:
    """The image and text towers of a local transformers CLIP folder."""

    def __init__(self, clip_dir: str | os.PathLike, device: torch.device, dtype: torch.dtype = torch.float32):
        from transformers import CLIPModel, CLIPTokenizer

        folder = Path(clip_dir)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: not a transformers CLIP folder (config.json missing)")
        self.device, self.dtype = device, dtype
        # the whole CLIPModel: its towers' own configs may lack the joint projection size
        self.model = CLIPModel.from_pretrained(folder, local_files_only=True).to(device, dtype).eval()
        self._folder, self._tokenizer_cls, self._tokenizer = folder, CLIPTokenizer, None
        self.size = int(self.model.config.vision_config.image_size)

    @torch.no_grad()
    def images(self, frames: torch.Tensor, batch: int = 64) -> np.ndarray:
        """uint8 frames [T, 3, H, W] -> [T, 17, D] float32 image embeddings (projected pooled output)."""
        inputs = frame_and_crops(frames, crop=self.size)
        t, n = inputs.shape[:2]
        flat = inputs.flatten(0, 1)
        embeds = []
        for i in range(0, len(flat), batch):
            pooled = self.model.vision_model(
                pixel_values=flat[i : i + batch].to(self.device, self.dtype)
            ).pooler_output
            embeds.append(self.model.visual_projection(pooled).float().cpu())
        return torch.cat(embeds).view(t, n, -1).numpy()

    @torch.no_grad()
    def texts(self, questions: Sequence[str], batch: int = 256) -> np.ndarray:
        """Questions -> CLIP text EOT embeddings [N, D] (77 tokens, truncated)."""
        if self._tokenizer is None:
            self._tokenizer = self._tokenizer_cls.from_pretrained(self._folder, local_files_only=True)
        out = []
        for i in range(0, len(questions), batch):
            tokens = self._tokenizer(
                list(questions[i : i + batch]),
                padding=True,
                truncation=True,
                max_length=77,
                return_tensors="pt",
            ).to(self.device)
            pooled = self.model.text_model(**tokens).pooler_output  # the EOT token's state
            out.append(self.model.text_projection(pooled).float().cpu())
        return torch.cat(out).numpy()


def envqa_frame_sources(meta_path: str | os.PathLike, frames_dir: str | os.PathLike) -> dict[str, list[Path]]:
    """Env-QA: ``meta.json`` ``{video: {frame_ids: [...]}}`` -> the PNG frames ``*_physics_<video>_img<id>*.png``."""
    meta_path, frames_dir = Path(meta_path), Path(frames_dir)
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: Env-QA meta JSON not found")
    meta = json.loads(meta_path.read_text())
    sources = {}
    for video, info in meta.items():
        paths = []
        for frame_id in info["frame_ids"]:
            found = sorted(frames_dir.glob(f"*_physics_{video}_img{frame_id}*.png"))
            if not found:
                raise FileNotFoundError(f"{frames_dir}: no PNG frame {frame_id} of Env-QA video {video}")
            paths.append(found[0])
        sources[str(video)] = paths
    return sources


def _read_frames(source: Path | list[Path], num_frames: int) -> torch.Tensor:
    from visioncore.video import read_video, sample_indices, video_info

    if isinstance(source, list):  # PNG frames (Env-QA)
        from PIL import Image

        picks = sample_indices(len(source), num_frames)
        arrays = [np.asarray(Image.open(source[i]).convert("RGB")) for i in picks]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    total = video_info(source).frames
    return read_video(source, indices=sample_indices(max(total, 1), num_frames))


def extract_video_features(
    encoder: ClipEncoder,
    sources: dict[str, Path | list[Path]],
    out_h5: str | os.PathLike,
    *,
    num_frames: int = 32,
    log: Callable[[str], None] = print,
) -> Path:
    """Encode every source (a video file or a list of frames) and write the h5 of features keyed by the dict keys."""
    out_h5 = Path(out_h5)
    parts = out_h5.with_name(out_h5.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    keys = sorted(sources)
    for n, key in enumerate(keys):
        target = parts / f"{key}.npy"
        if target.is_file():  # done by an interrupted earlier run
            continue
        feats = encoder.images(_read_frames(sources[key], num_frames))
        with atomic_path(target) as tmp, tmp.open("wb") as fh:
            np.save(fh, feats.astype(np.float16))
        log(f"[{n + 1}/{len(keys)}] {key}")
    stacked = np.stack([np.load(parts / f"{key}.npy") for key in keys])
    return write_features(out_h5, keys, stacked)


def extract_text_features(encoder: ClipEncoder, questions: dict[str, str], out_h5: str | os.PathLike) -> Path:
    """CLIP text EOT embeddings of ``{qid: question}``, written to ``out_h5`` (atomically)."""
    qids = sorted(questions)
    return write_features(out_h5, qids, encoder.texts([questions[q] for q in qids]), dtype="float32")
