"""Evaluation of the three unsupervised tasks (paper Sec. 4) through visioncore.metrics.

Protocols:

- ``official``: the official code's conventions, so numbers compare with the paper. Masks as the loader gives them
  under that protocol (VOC class masks); nothing is ignored, so the VOC 255 border counts as a segment in FG-ARI
  and mBO (FG-ARI keeps every pixel with a label > 0).
- ``clean``: instance masks where the layout has them, 255 pixels ignored (DINOSAUR's protocol).

Predictions are argmax over slots of the upsampled feature->slot transition A_fs, with one fixed slot-noise draw
(``seed``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from torch.utils.data import DataLoader, Dataset, Subset

from cyclic_walks.models import FrozenBackbone
from visioncore.metrics import adjusted_rand_index, mean_best_overlap, miou

NO_IGNORE = -1  # the official protocol ignores no label (the VOC 255 border is a segment)


def ignore_index(protocol: str) -> int:
    return NO_IGNORE if protocol == "official" else 255


def object_discovery_scores(pred: np.ndarray, true: np.ndarray, protocol: str) -> dict[str, list[float]]:
    """Per-image FG-ARI, ARI and mBO for predicted slot ids [B, H, W] against ground truth [B, H, W]."""
    ignore = ignore_index(protocol)
    scores: dict[str, list[float]] = {"fg_ari": [], "ari": [], "mbo": []}
    for p, t in zip(pred, true):
        valid = t != ignore
        if (valid & (t > 0)).any():
            scores["fg_ari"].append(adjusted_rand_index(t, p, foreground_only=True, ignore_index=ignore))
            scores["mbo"].append(mean_best_overlap(t, p, ignore_index=ignore))
        if valid.any():
            scores["ari"].append(adjusted_rand_index(t, p, ignore_index=ignore))
    return scores


def foreground_scores(pred: np.ndarray, true: np.ndarray, num_slots: int) -> dict[str, list[float]]:
    """Per-image IoU and Dice of each one-hot slot mask against the binary foreground, max over slots (official)."""
    out: dict[str, list[float]] = {"iou": [], "dice": []}
    for p, t in zip(pred, true):
        fg = t == 1
        best_iou = best_dice = 0.0
        for k in range(num_slots):
            m = p == k
            inter, total = float((m & fg).sum()), float(m.sum() + fg.sum())
            union = total - inter
            best_iou = max(best_iou, inter / union if union else 0.0)
            best_dice = max(best_dice, 2 * inter / total if total else 0.0)
        out["iou"].append(best_iou)
        out["dice"].append(best_dice)
    return out


def semantic_segmentation_miou(
    slot_features: np.ndarray, slot_maps: np.ndarray, class_masks: np.ndarray, num_classes: int, seed: int = 0
) -> float:
    """Unsupervised semantic segmentation (the official code never released it): k-means over all slot
    representations [M, K, C] into ``num_classes`` clusters, each pixel takes its slot's cluster, clusters are
    Hungarian-matched to classes on the dataset's confusion matrix, then mIoU (255 ignored)."""
    m, k, c = slot_features.shape
    clusters = KMeans(num_classes, n_init=4, random_state=seed).fit_predict(slot_features.reshape(m * k, c))
    pixel_clusters = np.take_along_axis(clusters.reshape(m, 1, k), slot_maps.reshape(m, 1, -1), axis=2)
    pixel_clusters = pixel_clusters.reshape(slot_maps.shape)
    keep = class_masks != 255
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)  # [cluster, class]
    np.add.at(confusion, (pixel_clusters[keep], np.clip(class_masks[keep], 0, num_classes - 1)), 1)
    rows, cols = linear_sum_assignment(-confusion)
    mapping = np.zeros(num_classes, dtype=np.int64)
    mapping[rows] = cols
    return miou(np.clip(class_masks, 0, 255), mapping[pixel_clusters], num_classes, ignore_index=255)


@torch.no_grad()
def iterate_predictions(
    model: torch.nn.Module,
    backbone: FrozenBackbone,
    dataset: Dataset,
    *,
    batch_size: int = 16,
    seed: int = 0,
    max_images: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Iterator[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """Yield (batch, prediction) with one fixed slot-noise draw for the whole pass; the model, the backbone and the
    images are moved to ``device`` and ``dtype`` together (the slot-noise generator lives on ``device``)."""
    if max_images:
        dataset = Subset(dataset, range(min(max_images, len(dataset))))  # type: ignore[arg-type]
    generator = torch.Generator(device=device).manual_seed(seed)
    model.to(device=device, dtype=dtype).eval()
    backbone.to(device=device, dtype=dtype)
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        images = batch["image"].to(device=device, dtype=dtype)
        features, grid = backbone(images)  # the frozen backbone hands back float32 tokens
        yield batch, model.predict(features.to(dtype), grid, tuple(images.shape[-2:]), generator=generator)


def evaluate(
    model: torch.nn.Module,
    backbone: FrozenBackbone,
    dataset: Dataset,
    *,
    task: str = "od",
    protocol: str = "official",
    batch_size: int = 16,
    seed: int = 0,
    num_classes: int = 21,
    max_images: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict[str, float | str]:
    """Mean scores of ``task`` (od, fe, ss) over ``dataset``; the result names the protocol."""
    if task not in ("od", "fe", "ss"):
        raise ValueError(f"unknown eval task {task!r}; expected od, fe or ss")
    scores: dict[str, list[float]] = {}
    features, maps, classes = [], [], []
    for batch, pred in iterate_predictions(
        model,
        backbone,
        dataset,
        batch_size=batch_size,
        seed=seed,
        max_images=max_images,
        device=device,
        dtype=dtype,
    ):
        masks, true = pred["masks"].cpu().numpy(), batch["mask"].numpy()
        if task == "od":
            part = object_discovery_scores(masks, true, protocol)
            if "class_mask" in batch and protocol == "clean":
                part["mbo_c"] = object_discovery_scores(masks, batch["class_mask"].numpy(), protocol)["mbo"]
        elif task == "fe":
            part = foreground_scores(masks, true, model.num_slots)
        else:
            if "class_mask" not in batch:
                raise ValueError("semantic segmentation needs class masks (VOC or COCO)")
            features.append(pred["slot_features"].float().cpu().numpy())
            maps.append(masks.astype(np.int64))
            classes.append(batch["class_mask"].numpy())
            part = {}
        for key, values in part.items():
            scores.setdefault(key, []).extend(values)
    result: dict[str, float | str] = {"task": task, "protocol": protocol}
    if task == "ss":
        result["miou"] = semantic_segmentation_miou(
            np.concatenate(features), np.concatenate(maps), np.concatenate(classes), num_classes, seed
        )
    for key, values in scores.items():
        result[key] = float(np.mean(values)) if values else float("nan")
    result["num_images"] = float(len(dataset) if not max_images else min(max_images, len(dataset)))
    return result
