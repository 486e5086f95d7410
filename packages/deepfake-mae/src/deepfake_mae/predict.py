"""`deepfake-mae predict`: fake probability and per-part discrepancy per video, and a PNG per video showing, for each
facial part, the input, network 2's reconstruction with that part masked, and the error."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from deepfake_mae.config import Config
from deepfake_mae.data.dataset import FaceClipDataset
from deepfake_mae.data.layout import VideoRecord
from deepfake_mae.data.preprocess import preprocess_video
from deepfake_mae.evaluate import predict_clips
from deepfake_mae.losses import patchify, unpatchify
from deepfake_mae.models.detector import DeepfakeDetector
from deepfake_mae.models.mae import IMAGENET_MEAN, IMAGENET_STD, normalize_images
from deepfake_mae.models.masking import PART_NAMES, patch_membership, single_part_mask
from visioncore.files import atomic_path
from visioncore.viz import save_image_grid


@torch.no_grad()
def part_reconstructions(
    model: DeepfakeDetector, frame: torch.Tensor, boxes: torch.Tensor
) -> list[torch.Tensor]:
    """[input, reconstruction, error] images in [0, 1] for each part of one frame (uint8 (3, H, W), boxes (P, 4)),
    computed on the model's device and dtype, returned as float32 on the CPU."""
    mae = model.mae
    weight = next(mae.parameters())
    x = normalize_images(frame[None]).to(device=weight.device, dtype=weight.dtype)
    boxes = boxes.to(device=weight.device)
    member = patch_membership(boxes[None], mae.grid, mae.patch_size, model.part_margin)
    raw = patchify(x, mae.patch_size)
    mean, std = raw.mean(-1, keepdim=True), (raw.var(-1, keepdim=True) + 1e-6).sqrt()
    mean_rgb = x.new_tensor(IMAGENET_MEAN).view(3, 1, 1)
    std_rgb = x.new_tensor(IMAGENET_STD).view(3, 1, 1)
    to_unit = lambda img: (img * std_rgb + mean_rgb).clamp(0, 1)
    tiles = []
    for part in range(member.shape[1]):
        generator = torch.Generator(device=weight.device).manual_seed(0)
        mask, _ = single_part_mask(member, part, model.mask_ratio, generator)
        pred = mae(x, mask)
        if mae.norm_pix_loss:  # back to pixels with each patch's own statistics
            pred = pred * std + mean
        pred = torch.where(mask[..., None], pred, raw)  # visible patches shown as they are
        rec = unpatchify(pred, mae.patch_size, mae.grid)[0]
        err = (rec - x[0]).pow(2).mean(0, keepdim=True)
        tiles += [to_unit(x[0]), to_unit(rec), (err / err.max().clamp_min(1e-8)).expand(3, -1, -1)]
    return [tile.float().cpu() for tile in tiles]


def predict_videos(
    cfg: Config, model: DeepfakeDetector, videos: list[Path], out: Path, landmarks_dir: Path | None
) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for video in videos:
            if landmarks_dir is None:  # detect, align and crop first
                report = preprocess_video(video, Path(tmp), size=cfg.model.img_size)
                if report.error:
                    raise ValueError(report.error)
                face, landmarks = (
                    Path(tmp) / "cropped_faces" / f"{video.stem}.avi",
                    Path(tmp) / "landmarks" / f"{video.stem}.npy",
                )
            else:
                face, landmarks = video, landmarks_dir / f"{video.stem}.npy"
                if not landmarks.is_file():
                    raise FileNotFoundError(f"{landmarks}: landmarks file not found for video {video.name}")
            record = VideoRecord(video.stem, "predict", 0, face, landmarks)
            ds = FaceClipDataset(
                [record], cfg.data.clip_len, cfg.model.img_size, cfg.data.max_frames, cfg.masking.part_scheme
            )
            preds = predict_clips(model, ds, cfg.eval.batch_size, cfg.eval.mask_seed)
            item = ds[0]
            png = out / f"{video.stem}_parts.png"
            tiles = torch.stack(part_reconstructions(model, item["frames"][0], item["boxes"][0]))
            with atomic_path(png) as tmp_png:
                save_image_grid(tmp_png, tiles, nrow=3)
            rows.append(
                {
                    "video": str(video),
                    "fake_probability": float(torch.sigmoid(torch.tensor(preds.scores.mean()))),
                    "discrepancy": dict(zip(PART_NAMES, np.asarray(preds.discrepancy.mean(0)).tolist())),
                    "png": str(png),
                }
            )
    return rows
