"""`deepfake-mae demo`: the whole pipeline in miniature on synthetic faces (tiny config, within 40 s).

A smoke check: pretraining (the loss falls), the dual detector, the label-free scores and the part figure all run, but
80 pretraining steps of a 2-block MAE are far too few for the paper's effect (part-swap AUCs near chance); the effect
is measured by ``deepfake-mae repro`` (see the README's acceptance table).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from deepfake_mae.config import get_config
from deepfake_mae.data.dataset import FaceClipDataset
from deepfake_mae.data.layout import REAL, ffpp_records
from deepfake_mae.data.synthetic import make_synthetic
from deepfake_mae.evaluate import auc_by_set, part_errors, predict_clips, zscore_part_scores
from deepfake_mae.predict import part_reconstructions
from deepfake_mae.train import pretrain, train_detector
from visioncore.files import atomic_path, atomic_write_json
from visioncore.metrics import roc_auc
from visioncore.viz import save_image_grid

KIND = "smoke check (pipeline runs, pretraining loss falls; AUCs at chance at this size: see repro)"


def _losses(jsonl: Path, key: str) -> list[float]:
    return [row[key] for row in map(json.loads, jsonl.read_text().splitlines()) if key in row]


def run_demo(out: Path, device: torch.device | None = None) -> dict[str, float | str]:
    """Synthetic data -> Stage A -> Stage B -> evaluation on ``device`` (default CPU); writes metrics.json."""
    start = time.time()
    root = make_synthetic(
        out / "data",
        {"train": 6, "val": 1, "test": 3},
        size=32,
        num_frames=8,
        methods=("MouthSwap", "EyeSwap"),
        seed=0,
    )
    cfg = get_config("tiny", [f"data.root={root}", "pretrain.steps=80", "train.steps=30"])
    mae = pretrain(cfg, out / "pretrain", show_progress=False)
    det = train_detector(cfg, out / "train", pretrained=mae, show_progress=False)
    test = ffpp_records(root, "test", (REAL, "MouthSwap", "EyeSwap"))
    ds = FaceClipDataset(test, cfg.data.clip_len, cfg.model.img_size, cfg.data.max_frames, preload=True)
    aucs = auc_by_set(predict_clips(det, ds, cfg.eval.batch_size, device=device), test)
    videos = FaceClipDataset(test, 8, cfg.model.img_size, 8, preload=True)
    val = FaceClipDataset(ffpp_records(root, "val", (REAL,)), 8, cfg.model.img_size, 8, preload=True)
    scores = zscore_part_scores(
        part_errors(mae, videos, cfg.masking.part_margin), part_errors(mae, val, cfg.masking.part_margin)
    )
    item = ds[len(ds) - 1]
    tiles = np.stack([t.numpy() for t in part_reconstructions(det, item["frames"][0], item["boxes"][0])])
    with atomic_path(out / "parts.png") as tmp:
        save_image_grid(tmp, tiles, nrow=3)
    losses = _losses(out / "pretrain" / "logs" / "pretrain" / "metrics.jsonl", "pretrain/loss")
    metrics: dict[str, float | str] = {
        "kind": KIND,
        "pretrain_loss_first": losses[0],
        "pretrain_loss_last": losses[-1],
        "detector_auc_mouth_swap_seen": aucs["MouthSwap"],
        "detector_auc_eye_swap_unseen": aucs["EyeSwap"],
        "label_free_auc_part_swaps": roc_auc(scores, [r.label for r in test]),
        "seconds": time.time() - start,
    }
    atomic_write_json(out / "metrics.json", metrics)
    return metrics
