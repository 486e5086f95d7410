"""The acceptance experiment (`deepfake-mae repro`): the paper's premise on synthetic faces at CPU scale.

A facial-part MAE pretrained on real faces infers a masked part from the others, so a part that disagrees with the
rest (a part swapped in from another expression) reconstructs badly. Per seed: three MAEs with the same data, steps,
learning rate and test masks (part masking, part masking without the part-only loss, random masking); label-free
scores; controls that must sit at chance; and the dual detector vs its single-network ablations, trained on mouth
swaps and tested on held-out mouth swaps (seen) and eye swaps (unseen; never used for training or tuning).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from deepfake_mae.config import Config
from deepfake_mae.data.dataset import FaceClipDataset
from deepfake_mae.data.layout import REAL, VideoRecord, ffpp_records
from deepfake_mae.data.synthetic import make_synthetic
from deepfake_mae.evaluate import auc_by_set, part_errors, predict_clips, zscore_part_scores
from deepfake_mae.models.masking import box_pixel_mask, patch_membership
from deepfake_mae.train import pretrain, train_detector
from visioncore.metrics import roc_auc

METRIC_KEYS = (
    "auc_null_swap",
    "auc_colour_baseline",
    "auc_mask_count",
    "auc_recon_part_masking",
    "auc_recon_random_masking",
    "auc_recon_part_masking_no_part_loss",
    "auc_dual_seen",
    "auc_dual_unseen",
    "auc_encoder_only_unseen",
    "auc_decoder_only_unseen",
)
PART_SWAPS = ("MouthSwap", "EyeSwap", "NoseSwap")


def _videos(cfg: Config, records: Sequence[VideoRecord]) -> FaceClipDataset:
    """One clip per video (the whole synthetic video), decoded once."""
    t = cfg.repro.num_frames
    return FaceClipDataset(
        records,
        clip_len=t,
        image_size=cfg.model.img_size,
        max_frames=t,
        part_scheme=cfg.masking.part_scheme,
        preload=True,
    )


def _video_arrays(ds: FaceClipDataset) -> tuple[torch.Tensor, torch.Tensor]:
    items = [ds[i] for i in range(len(ds))]
    return torch.stack([it["frames"] for it in items]), torch.stack([it["boxes"] for it in items])


def colour_features(ds: FaceClipDataset) -> np.ndarray:
    """Mean RGB inside each part box, averaged over frames: (videos, 3 parts x 3 channels)."""
    frames, boxes = _video_arrays(ds)
    v, t = frames.shape[:2]
    pix = box_pixel_mask(boxes.flatten(0, 1), frames.shape[-2], frames.shape[-1]).float()  # (VT, P, H, W)
    img = frames.flatten(0, 1).float() / 255.0  # (VT, 3, H, W)
    means = torch.einsum("nphw,nchw->npc", pix, img) / pix.sum((-1, -2)).clamp_min(1)[..., None]
    return means.view(v, t, -1).mean(1).numpy()


def mask_counts(cfg: Config, ds: FaceClipDataset) -> np.ndarray:
    """Masked patches alone: number of part patches (all parts), averaged over frames, per video."""
    _, boxes = _video_arrays(ds)
    grid = cfg.model.img_size // cfg.model.patch_size
    member = patch_membership(boxes, grid, cfg.model.patch_size, cfg.masking.part_margin)
    return member.sum((-1, -2)).float().mean(1).numpy()


def logistic_regression(
    x: np.ndarray, y: np.ndarray, steps: int = 500, l2: float = 1e-3
) -> tuple[np.ndarray, float]:
    """Plain L2-regularised logistic regression by gradient descent on standardised features."""
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        w -= 0.5 * (x.T @ (p - y) / len(y) + l2 * w)
        b -= 0.5 * float((p - y).mean())
    return w, b


def colour_baseline_auc(train: FaceClipDataset, test: FaceClipDataset) -> float:
    xtr, xte = colour_features(train), colour_features(test)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    ytr = np.array([r.label for r in train.records], float)
    w, b = logistic_regression((xtr - mu) / sd, ytr)
    return roc_auc((xte - mu) / sd @ w + b, [r.label for r in test.records])


def _labels(ds: FaceClipDataset, keep: np.ndarray | None = None) -> np.ndarray:
    y = np.array([r.label for r in ds.records])
    return y if keep is None else y[keep]


def _method_mask(ds: FaceClipDataset, methods: Sequence[str]) -> np.ndarray:
    return np.array([r.method in methods for r in ds.records])


def run_seed(cfg: Config, seed: int, out: Path, data: dict[str, FaceClipDataset], log) -> dict[str, float]:
    """All numbers of one seed (three pretrainings, label-free scores, three detectors)."""
    base = copy.deepcopy(cfg)
    base.seed = seed
    # Order: part, random, part without the part-only loss (the comparison that matters most finishes first).
    variants = {"part": base, "random": copy.deepcopy(base), "part_no_part_loss": copy.deepcopy(base)}
    variants["part_no_part_loss"].masking.part_loss_weight = 0.0
    variants["random"].masking.strategy = "random"
    test, val_real, det_train = data["test"], data["val_real"], data["det_train"]
    part_swap = _method_mask(test, (REAL, *PART_SWAPS))
    null_swap = _method_mask(test, (REAL, "NullSwap"))
    res: dict[str, float] = {}
    maes = {}
    for name, vcfg in variants.items():
        t0 = time.time()
        mae = pretrain(vcfg, out / f"mae_{name}", records=data["pretrain_records"], show_progress=False)
        maes[name] = mae
        err_args = dict(
            part_margin=cfg.masking.part_margin,
            mask_ratio=cfg.masking.eval_mask_ratio,
            batch_size=cfg.eval.batch_size,
            mask_seed=cfg.eval.mask_seed,
        )
        ref = part_errors(mae, val_real, **err_args)
        test_err = part_errors(mae, test, **err_args)
        scores = zscore_part_scores(test_err, ref)
        key = {
            "part": "auc_recon_part_masking",
            "random": "auc_recon_random_masking",
            "part_no_part_loss": "auc_recon_part_masking_no_part_loss",
        }[name]
        res[key] = roc_auc(scores[part_swap], _labels(test, part_swap))
        if name == "part":
            res["auc_null_swap"] = roc_auc(scores[null_swap], _labels(test, null_swap))
            # Network 2 (frozen copy of this MAE) reads the same part errors: cache them for the detectors.
            train_err = part_errors(mae, det_train, **err_args)
            cache = {
                (r.key, 0): torch.tensor(e, dtype=torch.float32) for r, e in zip(det_train.records, train_err)
            }
            cache.update(
                {(r.key, 0): torch.tensor(e, dtype=torch.float32) for r, e in zip(test.records, test_err)}
            )
        log(
            f"seed {seed}: pretrained {name} MAE and scored it in {time.time() - t0:.0f}s: {key}={res[key]:.3f}"
        )
    if cfg.repro.label_free_only:
        return res
    for branches, key in (("both", "dual"), ("encoder", "encoder_only"), ("decoder", "decoder_only")):
        t0 = time.time()
        dcfg = copy.deepcopy(base)
        dcfg.detector.branches = branches
        det = train_detector(
            dcfg,
            out / f"detector_{key}",
            pretrained=maes["part"],
            records=det_train.records,
            show_progress=False,
            discrepancy_cache=cache,
        )
        preds = predict_clips(det, test, cfg.eval.batch_size, cfg.eval.mask_seed, discrepancy_cache=cache)
        aucs = auc_by_set(preds, test.records)
        if key == "dual":
            res["auc_dual_seen"] = aucs["MouthSwap"]
        res[f"auc_{key}_unseen"] = aucs["EyeSwap"]
        log(f"seed {seed}: detector {key} in {time.time() - t0:.0f}s: {aucs}")
    return res


def run_repro(
    cfg: Config, out: str | Path, seeds: Sequence[int] | None = None, log=print
) -> dict[str, float]:
    """Generate the data (once), run every seed, write metrics.json (seed means), per_seed.json and print a table."""
    out = Path(out)
    seeds = list(cfg.repro.seeds if seeds is None else seeds)
    root = out / "data"
    t0 = time.time()
    if not (root / "splits" / "test.json").is_file():
        make_synthetic(
            root,
            {"train": cfg.repro.train_pairs, "val": cfg.repro.val_pairs, "test": cfg.repro.test_pairs},
            size=cfg.model.img_size,
            num_frames=cfg.repro.num_frames,
            seed=cfg.repro.data_seed,
        )
    log(f"data ready in {time.time() - t0:.0f}s at {root}")
    test_records = ffpp_records(root, "test", (REAL, *PART_SWAPS, "NullSwap"))
    pretrain_records = ffpp_records(root, "train", (REAL,))
    data = {
        "pretrain_records": pretrain_records,
        "test": _videos(cfg, test_records),
        "val_real": _videos(cfg, ffpp_records(root, "val", (REAL,))),
        "det_train": _videos(cfg, ffpp_records(root, "train", (REAL, "MouthSwap"))),
    }
    test = data["test"]
    part_swap = _method_mask(test, (REAL, *PART_SWAPS))
    part_test = test.subset(np.flatnonzero(part_swap).tolist())
    controls = {
        "auc_colour_baseline": colour_baseline_auc(data["det_train"], part_test),
        "auc_mask_count": roc_auc(mask_counts(cfg, part_test), _labels(part_test)),
    }
    log(f"controls: {controls}")
    per_seed = {}
    for seed in seeds:
        t1 = time.time()
        per_seed[seed] = {**controls, **run_seed(cfg, seed, out / f"seed_{seed}", data, log)}
        log(f"seed {seed} done in {time.time() - t1:.0f}s")
        out.mkdir(parents=True, exist_ok=True)  # partial results survive an interrupted run
        (out / "per_seed.json").write_text(
            json.dumps({"seeds": list(per_seed), "per_seed": per_seed}, indent=2)
        )
    keys = [
        k for k in METRIC_KEYS if all(k in per_seed[s] for s in seeds)
    ]  # label_free_only: no detector keys
    means = {k: float(np.mean([per_seed[s][k] for s in seeds])) for k in keys}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(means, indent=2))
    (out / "per_seed.json").write_text(
        json.dumps({"seeds": seeds, "per_seed": per_seed, "minutes": (time.time() - t0) / 60}, indent=2)
    )
    log(format_table(means, per_seed, seeds))
    return means


EXPECTATIONS = {
    "auc_null_swap": "0.4-0.6",
    "auc_colour_baseline": "0.4-0.6",
    "auc_mask_count": "0.4-0.6",
    "auc_recon_part_masking": ">= 0.75, >= random + 0.05",
    "auc_recon_random_masking": "",
    "auc_recon_part_masking_no_part_loss": "",
    "auc_dual_seen": ">= 0.85",
    "auc_dual_unseen": ">= 0.75, >= encoder-only",
    "auc_encoder_only_unseen": "",
    "auc_decoder_only_unseen": "",
}


def format_table(means: dict[str, float], per_seed: dict, seeds: Sequence[int]) -> str:
    head = f"{'metric':40s} {'mean':>7s} " + " ".join(f"{'s' + str(s):>7s}" for s in seeds) + "  expected"
    rows = [head, "-" * len(head)]
    for k in METRIC_KEYS:
        if k not in means:
            continue
        vals = " ".join(f"{per_seed[s][k]:7.3f}" for s in seeds)
        rows.append(f"{k:40s} {means[k]:7.3f} {vals}  {EXPECTATIONS[k]}")
    return "\n".join(rows)
