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
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np
import torch

from deepfake_mae.config import Config
from deepfake_mae.data.dataset import FaceClipDataset
from deepfake_mae.data.layout import REAL, VideoRecord, ffpp_records
from deepfake_mae.data.synthetic import make_synthetic
from deepfake_mae.evaluate import auc_by_set, part_errors, predict_clips, zscore_part_scores
from deepfake_mae.models.mae import FacePartMAE
from deepfake_mae.models.masking import box_pixel_mask, patch_membership
from deepfake_mae.train import pretrain, train_detector
from visioncore.config import to_dict
from visioncore.files import atomic_write_json
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
    *(
        f"auc_{branch}_{test}_{net2}"
        for net2 in ("frozen", "finetuned")
        for branch in ("dual", "decoder_only")
        for test in ("seen", "unseen")
    ),
)
# Network 2 finetuned with the margin loss on the part AVERAGE (the option), reported per seed beside the default.
MEAN_MARGIN_KEYS = tuple(
    f"auc_{branch}_{test}_finetuned_mean_margin"
    for branch in ("dual", "decoder_only")
    for test in ("seen", "unseen")
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


VARIANT_KEYS = {
    "part": "auc_recon_part_masking",
    "random": "auc_recon_random_masking",
    "part_no_part_loss": "auc_recon_part_masking_no_part_loss",
}
DETECTOR_KEYS = {"both": "dual", "encoder": "encoder_only", "decoder": "decoder_only"}


def load_data(cfg: Config, root: Path) -> dict:
    """The repro's datasets, decoded once: MAE pretraining reals, test videos, separate val reals, detector train."""
    return {
        "pretrain_records": ffpp_records(root, "train", (REAL,)),
        "test": _videos(cfg, ffpp_records(root, "test", (REAL, *PART_SWAPS, "NullSwap"))),
        "val_real": _videos(cfg, ffpp_records(root, "val", (REAL,))),
        "det_train": _videos(cfg, ffpp_records(root, "train", (REAL, "MouthSwap"))),
    }


def variant_config(cfg: Config, seed: int, variant: str) -> Config:
    """Part masking, part masking without the part-only loss, or random masking: all else equal."""
    vcfg = copy.deepcopy(cfg)
    vcfg.seed = seed
    if variant == "random":
        vcfg.masking.strategy = "random"
    elif variant == "part_no_part_loss":
        vcfg.masking.part_loss_weight = 0.0
    elif variant != "part":
        raise ValueError(f"unknown MAE variant {variant!r}")
    return vcfg


def _err_args(cfg: Config) -> dict:
    return dict(
        part_margin=cfg.masking.part_margin,
        mask_ratio=cfg.masking.eval_mask_ratio,
        batch_size=cfg.eval.batch_size,
        mask_seed=cfg.eval.mask_seed,
    )


def _fingerprint(cfg: Config) -> dict:
    """The settings a task's result depends on (not how many workers or which other seeds ran beside it)."""
    settings = to_dict(cfg)
    for key in ("seeds", "workers", "label_free_only"):
        settings["repro"].pop(key)
    return settings


def _cached(out: Path, cfg: Config, fn) -> dict[str, float]:
    """Results of one finished task are kept in `out/result.json` with the config that produced them, so rerunning
    the same command resumes an interrupted repro task by task; results of another config are never reused."""
    path = out / "result.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("config") != _fingerprint(cfg):
            raise ValueError(f"{path} holds the result of another config: use a new --out directory")
        return saved["result"]
    res = fn()
    atomic_write_json(
        path, {"result": res, "config": _fingerprint(cfg)}
    )  # a killed run leaves no torn result
    return res


def pretrain_variant(cfg: Config, seed: int, variant: str, out: Path, data: dict) -> dict[str, float]:
    """Pretrain one MAE variant and score it label-free on the test videos (z-scored against the val reals)."""

    def run() -> dict[str, float]:
        mae = pretrain(
            variant_config(cfg, seed, variant),
            out / f"mae_{variant}",
            records=data["pretrain_records"],
            show_progress=False,
        )
        test = data["test"]
        scores = zscore_part_scores(
            part_errors(mae, test, **_err_args(cfg)), part_errors(mae, data["val_real"], **_err_args(cfg))
        )
        part_swap = _method_mask(test, (REAL, *PART_SWAPS))
        res = {VARIANT_KEYS[variant]: roc_auc(scores[part_swap], _labels(test, part_swap))}
        if variant == "part":
            null_swap = _method_mask(test, (REAL, "NullSwap"))
            res["auc_null_swap"] = roc_auc(scores[null_swap], _labels(test, null_swap))
        return res

    return _cached(out / f"mae_{variant}", cfg, run)


# (name, network 2 frozen?, margin-loss form) of the detector runs per seed; "finetuned" is the paper's Stage B.
NET2_VARIANTS = (
    ("frozen", True, "part"),
    ("finetuned", False, "part"),
    ("finetuned_mean_margin", False, "mean"),
)


def _train_and_test(
    cfg: Config, seed: int, out: Path, data: dict, mae: FacePartMAE, cache: dict, overrides: dict
) -> dict[str, float]:
    """Train one detector (the repro config with ``overrides`` on its detector section) on mouth swaps; AUC per
    test set. A frozen network 2 reads its discrepancies from ``cache``."""
    dcfg = copy.deepcopy(cfg)
    dcfg.seed = seed
    for key, value in overrides.items():
        setattr(dcfg.detector, key, value)
    frozen = dcfg.detector.freeze_net2 or dcfg.detector.branches == "encoder"
    det = train_detector(
        dcfg,
        out,
        pretrained=mae,
        records=data["det_train"].records,
        show_progress=False,
        discrepancy_cache=cache if frozen else None,
    )
    test = data["test"]
    preds = predict_clips(
        det, test, cfg.eval.batch_size, cfg.eval.mask_seed, discrepancy_cache=cache if frozen else None
    )
    return auc_by_set(preds, test.records)


def detectors(cfg: Config, seed: int, out: Path, data: dict) -> dict[str, float]:
    """The dual detector and its single-network ablations on the seed's part-masking MAE, trained on mouth swaps,
    tested on held-out mouth swaps (seen) and eye swaps (unseen). Network 2 runs frozen (its discrepancies, the part
    errors, computed once) and finetuned with the margin loss (per part, and on the part average)."""

    def run() -> dict[str, float]:
        mae = FacePartMAE.from_pretrained(out / "mae_part" / "model")
        cache = {}
        for ds in (data["det_train"], data["test"]):
            errs = part_errors(mae, ds, **_err_args(cfg))
            cache.update({(r.key, 0): torch.tensor(e, dtype=torch.float32) for r, e in zip(ds.records, errs)})
        aucs = _train_and_test(
            cfg, seed, out / "detector_encoder_only", data, mae, cache, {"branches": "encoder"}
        )
        res = {"auc_encoder_only_unseen": aucs["EyeSwap"]}
        for name, frozen, form in NET2_VARIANTS:
            for branches, key in (("both", "dual"), ("decoder", "decoder_only")):
                settings = {"branches": branches, "freeze_net2": frozen, "margin_loss": form}
                aucs = _train_and_test(cfg, seed, out / f"detector_{key}_{name}", data, mae, cache, settings)
                res[f"auc_{key}_seen_{name}"] = aucs["MouthSwap"]
                res[f"auc_{key}_unseen_{name}"] = aucs["EyeSwap"]
        # the unsuffixed keys of the first acceptance experiment now mean network 2 finetuned (per-part margin)
        res["auc_dual_seen"] = res["auc_dual_seen_finetuned"]
        res["auc_dual_unseen"] = res["auc_dual_unseen_finetuned"]
        res["auc_decoder_only_unseen"] = res["auc_decoder_only_unseen_finetuned"]
        return res

    return _cached(out / "detectors", cfg, run)


# ----------------------------------------------------------------------------- task scheduling

_WORKER_DATA: dict = {}


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_task(
    cfg: Config, root: Path, out: Path, seed: int, task: str
) -> tuple[int, str, dict[str, float], float]:
    """One task (an MAE variant, or the seed's detectors) in a worker process; the data is decoded once per worker."""
    t0 = time.time()
    if str(root) not in _WORKER_DATA:
        _WORKER_DATA.clear()
        _WORKER_DATA[str(root)] = load_data(cfg, root)
    data = _WORKER_DATA[str(root)]
    seed_out = out / f"seed_{seed}"
    if task == "detectors":
        res = detectors(cfg, seed, seed_out, data)
    else:
        res = pretrain_variant(cfg, seed, task, seed_out, data)
    return seed, task, res, time.time() - t0


def _schedule(cfg: Config, root: Path, out: Path, seeds: Sequence[int], log) -> dict[int, dict[str, float]]:
    """Run every (seed, task) on `repro.workers` processes (1: in this process). Part-masking MAEs go first so each
    seed's detectors can start as soon as its part MAE exists."""
    variants = ["part", "random", "part_no_part_loss"]
    results: dict[int, dict[str, float]] = {s: {} for s in seeds}

    def record(seed: int, task: str, res: dict[str, float], secs: float) -> None:
        results[seed].update(res)
        log(f"seed {seed}: {task} done in {secs:.0f}s: " + ", ".join(f"{k}={v:.3f}" for k, v in res.items()))

    tasks = [(s, v) for v in variants for s in seeds]
    if not cfg.repro.label_free_only:
        tasks += [(s, "detectors") for s in seeds]
    if cfg.repro.workers <= 1:
        for seed, task in tasks:
            record(*_run_task(cfg, root, out, seed, task))
        return results
    threads = max(1, torch.get_num_threads() // cfg.repro.workers)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        cfg.repro.workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        # Detectors need their seed's part MAE: submit them once it is done (they then queue behind the MAEs).
        pending = {pool.submit(_run_task, cfg, root, out, s, v) for s, v in tasks if v != "detectors"}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                seed, task, res, secs = fut.result()
                record(seed, task, res, secs)
                if task == "part" and not cfg.repro.label_free_only:
                    pending.add(pool.submit(_run_task, cfg, root, out, seed, "detectors"))
    return results


def run_repro(
    cfg: Config, out: str | Path, seeds: Sequence[int] | None = None, log=print
) -> dict[str, float]:
    """Generate the data (once), run every seed, write metrics.json (seed means), per_seed.json and print a table.

    Finished tasks are kept under `out/seed_*/`: rerunning the same command resumes an interrupted repro."""
    out = Path(out)
    seeds = list(cfg.repro.seeds if seeds is None else seeds)
    root = out / "data"
    t0 = time.time()
    spec = {
        "num_pairs": {
            "train": cfg.repro.train_pairs,
            "val": cfg.repro.val_pairs,
            "test": cfg.repro.test_pairs,
        },
        "size": cfg.model.img_size,
        "num_frames": cfg.repro.num_frames,
        "seed": cfg.repro.data_seed,
    }
    spec_file = root / "synthetic.json"
    if spec_file.is_file():
        if json.loads(spec_file.read_text()) != spec:
            raise ValueError(
                f"{spec_file}: the data were made with other repro settings: use a new --out directory"
            )
    else:
        make_synthetic(root, **spec, raw_videos=False)  # the experiment reads the crops only
        atomic_write_json(spec_file, spec)  # written last: its presence means the data are complete
    log(f"data ready in {time.time() - t0:.0f}s at {root}")
    data = load_data(cfg, root)
    _WORKER_DATA.clear()
    _WORKER_DATA[str(root)] = data  # reused by in-process tasks (workers <= 1)
    test = data["test"]
    part_test = test.subset(np.flatnonzero(_method_mask(test, (REAL, *PART_SWAPS))).tolist())
    controls = {
        "auc_colour_baseline": colour_baseline_auc(data["det_train"], part_test),
        "auc_mask_count": roc_auc(mask_counts(cfg, part_test), _labels(part_test)),
    }
    log(f"controls: {controls}")
    per_seed = {s: {**controls, **res} for s, res in _schedule(cfg, root, out, seeds, log).items()}
    # With label_free_only there are no detector keys.
    keys = [k for k in METRIC_KEYS if all(k in per_seed[s] for s in seeds)]
    means = {k: float(np.mean([per_seed[s][k] for s in seeds])) for k in keys}
    atomic_write_json(out / "metrics.json", means)
    minutes = (time.time() - t0) / 60
    atomic_write_json(out / "per_seed.json", {"seeds": seeds, "per_seed": per_seed, "minutes": minutes})
    print(format_table(means, per_seed, seeds), flush=True)
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
    "auc_decoder_only_seen_finetuned": ">= decoder-only seen frozen + 0.03",
    "auc_dual_unseen_finetuned": ">= encoder-only unseen",
}


def format_table(means: dict[str, float], per_seed: dict, seeds: Sequence[int]) -> str:
    head = f"{'metric':46s} {'mean':>7s} " + " ".join(f"{'s' + str(s):>7s}" for s in seeds) + "  expected"
    rows = [head, "-" * len(head)]
    for k in (*METRIC_KEYS, *MEAN_MARGIN_KEYS):
        if not all(k in per_seed[s] for s in seeds):
            continue
        vals = " ".join(f"{per_seed[s][k]:7.3f}" for s in seeds)
        mean = float(np.mean([per_seed[s][k] for s in seeds]))
        rows.append(f"{k:46s} {mean:7.3f} {vals}  {EXPECTATIONS.get(k, '')}")
    return "\n".join(rows)
