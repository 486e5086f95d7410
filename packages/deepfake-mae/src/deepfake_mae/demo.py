"""`deepfake-mae demo`: the whole pipeline in miniature on synthetic faces (tiny config, well under 40 s)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from deepfake_mae.config import get_config
from deepfake_mae.data.dataset import FaceClipDataset
from deepfake_mae.data.layout import REAL, ffpp_records
from deepfake_mae.data.synthetic import make_synthetic
from deepfake_mae.evaluate import auc_by_set, part_errors, predict_clips, zscore_part_scores
from deepfake_mae.predict import part_reconstructions
from deepfake_mae.train import pretrain, train_detector
from visioncore.metrics import roc_auc
from visioncore.viz import save_image_grid


def _losses(jsonl: Path, key: str) -> list[float]:
    return [row[key] for row in map(json.loads, jsonl.read_text().splitlines()) if key in row]


def run_demo(out: Path) -> dict[str, float]:
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
    aucs = auc_by_set(predict_clips(det, ds, cfg.eval.batch_size), test)
    videos = FaceClipDataset(test, 8, cfg.model.img_size, 8, preload=True)
    val = FaceClipDataset(ffpp_records(root, "val", (REAL,)), 8, cfg.model.img_size, 8, preload=True)
    scores = zscore_part_scores(
        part_errors(mae, videos, cfg.masking.part_margin), part_errors(mae, val, cfg.masking.part_margin)
    )
    item = ds[len(ds) - 1]
    save_image_grid(
        out / "parts.png",
        np.stack([t.numpy() for t in part_reconstructions(det, item["frames"][0], item["boxes"][0])]),
        nrow=3,
    )
    losses = _losses(out / "pretrain" / "logs" / "pretrain" / "metrics.jsonl", "pretrain/loss")
    metrics = {
        "pretrain_loss_first": losses[0],
        "pretrain_loss_last": losses[-1],
        "detector_auc_mouth_swap_seen": aucs["MouthSwap"],
        "detector_auc_eye_swap_unseen": aucs["EyeSwap"],
        "label_free_auc_part_swaps": roc_auc(scores, [r.label for r in test]),
        "seconds": time.time() - start,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
