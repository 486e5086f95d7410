"""Evaluation: video-level AUC (clip scores averaged per video; fake = 1), per test set and aggregate, label-free
part-masked reconstruction scores, and robustness under DeeperForensics-style perturbations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from deepfake_mae.data.dataset import FaceClipDataset
from deepfake_mae.data.layout import VideoRecord
from deepfake_mae.models.detector import DeepfakeDetector, part_discrepancies
from deepfake_mae.models.mae import FacePartMAE, normalize_images
from visioncore.metrics import video_level_auc

Perturbation = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class ClipPredictions:
    scores: np.ndarray  # (clips,) fused logits
    videos: np.ndarray  # (clips,) index into the dataset's records
    labels: np.ndarray  # (clips,)
    discrepancy: np.ndarray  # (clips, parts)

    def video_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(video ids, mean clip score, mean discrepancy) per video."""
        ids, inverse = np.unique(self.videos, return_inverse=True)
        counts = np.bincount(inverse)
        score = np.bincount(inverse, weights=self.scores) / counts
        disc = np.stack([np.bincount(inverse, weights=d) for d in self.discrepancy.T], 1) / counts[:, None]
        return ids, score, disc


def _perturbed(frames: torch.Tensor, perturb: Perturbation | None) -> torch.Tensor:
    if perturb is None:
        return frames
    return torch.stack([perturb(clip) for clip in frames])


@torch.no_grad()
def predict_clips(
    model: DeepfakeDetector,
    dataset: FaceClipDataset,
    batch_size: int = 8,
    mask_seed: int = 0,
    perturb: Perturbation | None = None,
    discrepancy_cache: dict[tuple[str, int], torch.Tensor] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> ClipPredictions:
    """Fused logits of every clip (the test masks of network 2 are fixed by `mask_seed`). A frozen network 2's
    discrepancies may come from `discrepancy_cache` {(record key, clip start): (parts,)}. The model and the clips are
    moved to ``device`` and ``dtype`` (default: the model's); the mask generator lives on that device."""
    first = next(model.parameters())
    device = torch.device(device) if device is not None else first.device
    dtype = dtype or first.dtype
    model.to(device=device, dtype=dtype).eval()
    gen = torch.Generator(device=device).manual_seed(mask_seed)
    scores, videos, labels, discs = [], [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        frames = normalize_images(_perturbed(batch["frames"], perturb)).to(device=device, dtype=dtype)
        cached = None
        if discrepancy_cache is not None and perturb is None:
            keys = [
                (dataset.records[v].key, s) for v, s in zip(batch["video"].tolist(), batch["start"].tolist())
            ]
            if all(k in discrepancy_cache for k in keys):
                cached = torch.stack([discrepancy_cache[k] for k in keys]).to(device=device, dtype=dtype)
        out = model(frames, batch["boxes"].to(device), generator=gen, discrepancy=cached)
        scores.append(out["logit"].float().cpu().numpy())
        discs.append(out["discrepancy"].float().cpu().numpy())
        videos.append(batch["video"].numpy())
        labels.append(batch["label"].numpy())
    return ClipPredictions(
        np.concatenate(scores), np.concatenate(videos), np.concatenate(labels), np.concatenate(discs)
    )


def auc_by_set(preds: ClipPredictions, records: Sequence[VideoRecord]) -> dict[str, float]:
    """Video-level AUC of the real videos against each fake method, and `aggregate` (reals vs all fakes)."""
    methods = np.array([str(records[i].method) for i in preds.videos])
    real = preds.labels == 0
    out = {}
    for method in sorted(set(methods[~real])):
        keep = real | (methods == method)
        out[str(method)] = video_level_auc(preds.scores[keep], preds.videos[keep], preds.labels[keep])
    if (~real).any() and real.any():
        out["aggregate"] = video_level_auc(preds.scores, preds.videos, preds.labels)
    return out


@torch.no_grad()
def part_errors(
    mae: FacePartMAE,
    dataset: FaceClipDataset,
    part_margin: float,
    mask_ratio: float = 0.0,
    batch_size: int = 8,
    mask_seed: int = 0,
) -> np.ndarray:
    """Label-free scoring input: (videos, parts) mean over frames of the part-pixel reconstruction error with that part
    masked (normalised-pixel space; network 2's ``part_discrepancies``), topped up to `mask_ratio` with seeded
    patches. Runs on the MAE's device."""
    mae.eval()
    device = next(mae.parameters()).device
    gen = torch.Generator(device=device).manual_seed(mask_seed)
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        time = batch["frames"].shape[1]
        images = normalize_images(batch["frames"].flatten(0, 1)).to(device)
        errs = part_discrepancies(mae, images, batch["boxes"].flatten(0, 1), part_margin, mask_ratio, gen)
        per_clip = errs.view(-1, time, errs.shape[1]).sum(1).float().cpu().numpy()
        for vid, err in zip(batch["video"].tolist(), per_clip):
            sums[vid] = sums.get(vid, 0) + err
            counts[vid] = counts.get(vid, 0) + time
    return np.stack([sums[v] / counts[v] for v in range(len(dataset.records))])


def zscore_part_scores(errors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per video: log part errors z-scored against SEPARATE real videos, averaged over parts (the declared aggregate)."""
    log_ref = np.log(np.maximum(reference, 1e-8))
    mu, sd = log_ref.mean(0), log_ref.std(0) + 1e-6
    return ((np.log(np.maximum(errors, 1e-8)) - mu) / sd).mean(1)


# ----------------------------------------------------------------------------- DeeperForensics-style perturbations


def jpeg(quality: int) -> Perturbation:
    """Compression: per-frame JPEG at `quality`."""

    def apply(clip: torch.Tensor) -> torch.Tensor:
        out = []
        for frame in clip.permute(0, 2, 3, 1).numpy():
            ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
            out.append(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy())
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()

    return apply


def gaussian_blur(sigma: float) -> Perturbation:
    def apply(clip: torch.Tensor) -> torch.Tensor:
        frames = [cv2.GaussianBlur(f, (0, 0), sigma) for f in clip.permute(0, 2, 3, 1).numpy()]
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()

    return apply


def gaussian_noise(std: float, seed: int = 0) -> Perturbation:
    gen = torch.Generator().manual_seed(seed)

    def apply(clip: torch.Tensor) -> torch.Tensor:
        noisy = clip.float() + torch.randn(clip.shape, generator=gen) * std
        return noisy.round().clamp(0, 255).to(torch.uint8)

    return apply


def colour_saturation(factor: float) -> Perturbation:
    """Colour: scale the saturation (DeeperForensics' colour-saturation change)."""

    def apply(clip: torch.Tensor) -> torch.Tensor:
        x = clip.float()
        grey = x.mean(1, keepdim=True)
        return (grey + factor * (x - grey)).round().clamp(0, 255).to(torch.uint8)

    return apply


PERTURBATIONS: dict[str, Callable[[float], Perturbation]] = {
    "jpeg": lambda v: jpeg(int(v)),
    "blur": gaussian_blur,
    "noise": gaussian_noise,
    "saturation": colour_saturation,
}


def parse_perturbation(spec: str) -> Perturbation:
    """`name:value`, e.g. `jpeg:30`, `blur:1.5`, `noise:10`, `saturation:0.5`."""
    name, _, value = spec.partition(":")
    if name not in PERTURBATIONS or not value:
        raise ValueError(f"bad perturbation {spec!r}: use one of {', '.join(PERTURBATIONS)} as name:value")
    try:
        return PERTURBATIONS[name](float(value))
    except ValueError:
        raise ValueError(f"bad perturbation value in {spec!r}") from None
