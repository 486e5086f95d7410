"""The acceptance experiment (issue 5, ``cyclic-walks repro``): on the same frozen features, do cyclic walks group
objects at least as well as slot attention trained with a feature-reconstruction decoder, at lower cost?

Synthetic shapes in the VOCdevkit layout (written to disk and read back through :class:`VOCSegmentation`, clean
protocol: instance masks, 255 borders ignored), a generic frozen extractor (soft colour histograms of 8x8 patches),
one declared config (:class:`ReproConfig` defaults), the same features, batches, learning rate and seeds for every
model, the final step, one fixed slot-noise draw at evaluation, masks from the feature->slot transition (the decoder
baseline from its alpha masks, DINOSAUR's readout).
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch import nn

from cyclic_walks.data import VOCSegmentation, write_synthetic_voc
from cyclic_walks.evaluate import foreground_scores, object_discovery_scores
from cyclic_walks.losses import cyclic_walk_losses, feature_reconstruction_loss, walk_transitions
from cyclic_walks.models import (
    BackboneConfig,
    CyclicWalks,
    DecoderBaseline,
    build_backbone,
    masks_from_transition,
)
from cyclic_walks.train import lr_factor
from visioncore.config import ConfigError, positive
from visioncore.files import atomic_path, atomic_write_json

METRIC_KEYS = (
    "affinity_gap",
    "fg_ari_kmeans",
    "fg_ari_readout_ceiling",
    "fg_ari_init",
    "fg_ari_dinosaur_init",
    "fg_ari_trained",
    "fg_ari_no_pwp",
    "fg_ari_dinosaur",
    "ari_trained",
    "mbo_trained",
    "fe_iou",
    "step_time_ratio",
)


@dataclass
class ReproConfig:
    """The declared config (fixed before the run; see the README for why these values)."""

    image_size: int = 64
    stride: int = 8  # 8x8 token grid; objects span 2-4 tokens
    histogram_bins: int = 3  # 27-d features (the decoder baseline's MLP is 27 -> 108 -> 108 -> 108 -> 28)
    num_train: int = 800
    num_val: int = 100
    objects: list[int] = field(default_factory=lambda: [2, 4])
    data_seed: int = 1234
    num_slots: int = 5
    alpha: float = 0.1  # the paper's COCO weights (0.1 / 100); alpha = 1 splits backgrounds (issue 5)
    beta: float = 100.0
    steps: int = 1000
    batch_size: int = 16
    lr: float = 4e-4
    warmup_steps: int = 100
    decay_half_life: int = 50000
    fe_slots: int = 2
    decoder_layers: int = 4
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    eval_seed: int = 0
    processes: int = 3  # seeds run in parallel, one single-threaded process each

    def __post_init__(self) -> None:
        for name in ("image_size", "stride", "histogram_bins", "num_train", "num_val", "num_slots", "steps"):
            positive(name, getattr(self, name))
        for name in ("batch_size", "decay_half_life", "fe_slots", "decoder_layers", "processes", "lr"):
            positive(name, getattr(self, name))
        positive("warmup_steps", self.warmup_steps, allow_zero=True)
        positive("alpha", self.alpha, allow_zero=True)
        positive("beta", self.beta, allow_zero=True)
        if self.image_size % self.stride:
            raise ConfigError(f"stride {self.stride} must divide image_size {self.image_size}")
        if len(self.objects) != 2 or not 1 <= self.objects[0] <= self.objects[1]:
            raise ConfigError(f"objects must be [min, max] with 1 <= min <= max, got {self.objects}")
        if not self.seeds:
            raise ConfigError("seeds must name at least one seed")


@dataclass
class Split:
    features: torch.Tensor  # [M, N, D]
    masks: np.ndarray  # [M, H, W] instance ids, 255 border
    images: torch.Tensor  # [M, 3, H, W]


def load_split(root: Path, split: str, cfg: ReproConfig, backbone: nn.Module) -> Split:
    ds = VOCSegmentation(
        root, split, train=False, eval_crop=cfg.image_size, eval_size=cfg.image_size, protocol="clean"
    )
    samples = [ds[i] for i in range(len(ds))]
    images = torch.stack([s["image"] for s in samples])
    feats = torch.cat([backbone(images[i : i + 64])[0] for i in range(0, len(images), 64)])
    return Split(feats, torch.stack([s["mask"] for s in samples]).numpy(), images)


def token_labels(masks: np.ndarray, stride: int) -> np.ndarray:
    """Majority instance label of each stride x stride patch, 255 pixels ignored: [M, h*w]."""
    m, h, w = masks.shape
    patches = masks.reshape(m, h // stride, stride, w // stride, stride).transpose(0, 1, 3, 2, 4)
    patches = patches.reshape(m, -1, stride * stride)
    out = np.zeros(patches.shape[:2], dtype=np.int64)
    for i in range(m):
        for j in range(patches.shape[1]):
            vals = patches[i, j][patches[i, j] != 255]
            out[i, j] = np.bincount(vals).argmax() if vals.size else 255
    return out


def affinity_gap(features: torch.Tensor, labels: np.ndarray) -> float:
    """Mean within-object token cosine minus mean object-background cosine (per image, then averaged)."""
    gaps = []
    f = F.normalize(features, dim=-1)
    for fi, li in zip(f, labels):
        cos = (fi @ fi.T).numpy()
        same = (li[:, None] == li[None]) & (li[:, None] > 0) & (li[:, None] != 255)
        np.fill_diagonal(same, False)
        obj_bg = ((li[:, None] > 0) & (li[:, None] != 255) & (li[None] == 0)) | (
            (li[None] > 0) & (li[None] != 255) & (li[:, None] == 0)
        )
        if same.any() and obj_bg.any():
            gaps.append(cos[same].mean() - cos[obj_bg].mean())
    return float(np.mean(gaps))


def readout_fg_ari(
    features: torch.Tensor, slots: list[torch.Tensor], masks: np.ndarray, grid: tuple[int, int]
) -> float:
    """FG-ARI of masks read out from given per-image slot vectors through A_fs (the models' readout)."""
    preds = []
    for f, s in zip(features, slots):
        a_fs, _ = walk_transitions(f[None], s[None])
        preds.append(masks_from_transition(a_fs, grid, masks.shape[1:])[0].numpy())
    return float(np.mean(object_discovery_scores(np.stack(preds), masks, "clean")["fg_ari"]))


def kmeans_slots(features: torch.Tensor, k: int, seed: int) -> list[torch.Tensor]:
    out = []
    for f in F.normalize(features, dim=-1):
        km = KMeans(k, n_init=4, random_state=seed).fit(f.numpy())
        out.append(torch.from_numpy(km.cluster_centers_).float())
    return out


def segment_mean_slots(features: torch.Tensor, labels: np.ndarray) -> list[torch.Tensor]:
    """Slots set to each true segment's mean (normalised) feature, background included."""
    out = []
    for f, li in zip(F.normalize(features, dim=-1), labels):
        ids = [v for v in np.unique(li) if v != 255]
        out.append(torch.stack([f[torch.from_numpy(li == v)].mean(0) for v in ids]))
    return out


@torch.no_grad()
def predict_masks(model: nn.Module, split: Split, grid: tuple[int, int], seed: int) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)  # one fixed slot-noise draw for the whole set
    model.eval()
    preds = [
        model.predict(split.features[i : i + 50], grid, split.masks.shape[1:], generator=generator)["masks"]
        for i in range(0, len(split.features), 50)
    ]
    model.train()
    return torch.cat(preds).numpy()


class Learner:
    """One model with its own Adam, the official schedule and inf-norm clipping; ``step`` returns seconds."""

    def __init__(self, model: nn.Module, cfg: ReproConfig, loss_fn):
        self.model, self.loss_fn = model, loss_fn
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, cfg.warmup_steps, cfg.decay_half_life)
        )
        self.losses: list[float] = []

    def step(self, batch: torch.Tensor, target: torch.Tensor, grid: tuple[int, int]) -> float:
        start = time.perf_counter()
        loss = self.loss_fn(self.model, batch, target, grid)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0, norm_type=float("inf"))
        self.optimizer.step()
        self.schedule.step()
        self.losses.append(loss.item())
        return time.perf_counter() - start


def walk_loss(alpha: float, beta: float):
    def fn(
        model: CyclicWalks, feats: torch.Tensor, _target: torch.Tensor, grid: tuple[int, int]
    ) -> torch.Tensor:
        parts = cyclic_walk_losses(feats, model(feats), model.tau, model.affinity_threshold)
        return alpha * parts.wpw + beta * parts.pwp

    return fn


def decoder_loss(model: DecoderBaseline, feats: torch.Tensor, target: torch.Tensor, _grid) -> torch.Tensor:
    _, reconstruction, _ = model(feats)
    return feature_reconstruction_loss(reconstruction, target)


def run_seed(
    cfg: ReproConfig, seed: int, train: Split, val: Split, grid: tuple[int, int], log=print
) -> tuple[dict[str, float], dict[str, nn.Module]]:
    dim, n_tokens = train.features.shape[-1], train.features.shape[1]
    mean, std = train.features.mean((0, 1)), train.features.std((0, 1)).clamp_min(1e-6)

    def make_walks(k: int, beta: float) -> CyclicWalks:
        torch.manual_seed(seed)  # every model starts from the same slot-encoder initialisation
        return CyclicWalks(dim, k, mlp_hidden=dim, alpha=cfg.alpha, beta=beta)

    walks, no_pwp, fe = (
        make_walks(cfg.num_slots, cfg.beta),
        make_walks(cfg.num_slots, 0.0),
        make_walks(cfg.fe_slots, cfg.beta),
    )
    torch.manual_seed(seed)
    dinosaur = DecoderBaseline(
        dim,
        cfg.num_slots,
        n_tokens,
        mlp_hidden=dim,
        decoder_layers=cfg.decoder_layers,
        decoder_hidden=4 * dim,
    )
    out = {
        "fg_ari_init": _fg_ari(walks, val, grid, cfg),
        "fg_ari_dinosaur_init": _fg_ari(dinosaur, val, grid, cfg),
    }
    learners = {
        "walks": Learner(walks, cfg, walk_loss(cfg.alpha, cfg.beta)),
        "dinosaur": Learner(dinosaur, cfg, decoder_loss),
        "no_pwp": Learner(no_pwp, cfg, walk_loss(cfg.alpha, 0.0)),
        "fe": Learner(fe, cfg, walk_loss(cfg.alpha, cfg.beta)),
    }
    order = torch.Generator().manual_seed(seed)
    times = {"walks": [], "dinosaur": []}
    perm, cursor = torch.randperm(len(train.features), generator=order), 0
    for step in range(cfg.steps):
        if cursor + cfg.batch_size > len(perm):
            perm, cursor = torch.randperm(len(train.features), generator=order), 0
        idx = perm[cursor : cursor + cfg.batch_size]
        cursor += cfg.batch_size
        feats = train.features[idx]
        target = (feats - mean) / std
        # Alternate the two timed models on the same batch so that machine load hits both alike.
        first, second = ("walks", "dinosaur") if step % 2 == 0 else ("dinosaur", "walks")
        times[first].append(learners[first].step(feats, target, grid))
        times[second].append(learners[second].step(feats, target, grid))
        learners["no_pwp"].step(feats, target, grid)
        learners["fe"].step(feats, target, grid)
        if (step + 1) % 100 == 0:
            log(
                f"  seed {seed} step {step + 1}: "
                + ", ".join(f"{k} {v.losses[-1]:.4f}" for k, v in learners.items())
            )
    scores = object_discovery_scores(predict_masks(walks, val, grid, cfg.eval_seed), val.masks, "clean")
    out.update(
        fg_ari_trained=float(np.mean(scores["fg_ari"])),
        ari_trained=float(np.mean(scores["ari"])),
        mbo_trained=float(np.mean(scores["mbo"])),
        fg_ari_no_pwp=_fg_ari(no_pwp, val, grid, cfg),
        fg_ari_dinosaur=_fg_ari(dinosaur, val, grid, cfg),
    )
    fe_true = np.where(val.masks == 255, 255, (val.masks > 0).astype(np.int64))
    out["fe_iou"] = float(
        np.mean(foreground_scores(predict_masks(fe, val, grid, cfg.eval_seed), fe_true, cfg.fe_slots)["iou"])
    )
    # Median step times (robust to other jobs on the shared machine), after 10 warm-up steps.
    out["step_time_walks"] = float(np.median(times["walks"][10:]))
    out["step_time_dinosaur"] = float(np.median(times["dinosaur"][10:]))
    out["step_time_ratio"] = out["step_time_walks"] / out["step_time_dinosaur"]
    out["pwp_first"], out["pwp_last"] = learners["walks"].losses[0], learners["walks"].losses[-1]
    return out, {"walks": walks, "dinosaur": dinosaur}


def _fg_ari(model: nn.Module, split: Split, grid: tuple[int, int], cfg: ReproConfig) -> float:
    return float(
        np.mean(
            object_discovery_scores(predict_masks(model, split, grid, cfg.eval_seed), split.masks, "clean")[
                "fg_ari"
            ]
        )
    )


def save_visualisation(
    path: Path, models: dict[str, nn.Module], val: Split, grid: tuple[int, int], cfg: ReproConfig
) -> None:
    """Rows: image, ground truth, cyclic-walks masks, decoder-baseline masks (first 8 validation images)."""
    from visioncore.viz import overlay_segmentation, save_image_grid

    n = 8
    sub = Split(val.features[:n], val.masks[:n], val.images[:n])
    rows = [[(img.permute(1, 2, 0).numpy() * 255).astype(np.uint8) for img in sub.images]]
    rows.append([overlay_segmentation(r, m) for r, m in zip(rows[0], sub.masks)])
    for name in ("walks", "dinosaur"):
        pred = predict_masks(models[name], sub, grid, cfg.eval_seed)
        rows.append([overlay_segmentation(r, m) for r, m in zip(rows[0], pred)])
    tiles = np.stack([t for row in rows for t in row]).transpose(0, 3, 1, 2)
    with atomic_path(path) as tmp:
        save_image_grid(tmp, tiles, nrow=n)


def _seed_job(cfg: ReproConfig, seed: int, train: Split, val: Split, grid: tuple[int, int]):
    torch.set_num_threads(1)  # one core per seed process
    return run_seed(cfg, seed, train, val, grid)


def run_repro(out_dir: str | Path, cfg: ReproConfig | None = None, log=print) -> dict[str, float]:
    cfg = cfg or ReproConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    backbone = build_backbone(
        BackboneConfig(
            kind="colour_histogram",
            patch_size=cfg.stride,
            histogram_bins=cfg.histogram_bins,
            input_norm="unit",
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = write_synthetic_voc(
            tmp,
            num_train=cfg.num_train,
            num_val=cfg.num_val,
            size=cfg.image_size,
            objects=tuple(cfg.objects),
            seed=cfg.data_seed,
        )
        train, val = load_split(root, "train", cfg, backbone), load_split(root, "val", cfg, backbone)
    grid = (cfg.image_size // cfg.stride, cfg.image_size // cfg.stride)
    labels = token_labels(val.masks, cfg.stride)
    random_conv = build_backbone(
        BackboneConfig(kind="random_conv", patch_size=cfg.stride, embed_dim=64, input_norm="imagenet")
    )
    references = {
        "affinity_gap": affinity_gap(val.features, labels),
        "affinity_gap_random_conv": affinity_gap(random_conv(val.images)[0], labels),
        "fg_ari_kmeans": readout_fg_ari(
            val.features, kmeans_slots(val.features, cfg.num_slots, cfg.eval_seed), val.masks, grid
        ),
        "fg_ari_readout_ceiling": readout_fg_ari(
            val.features, segment_mean_slots(val.features, labels), val.masks, grid
        ),
    }
    log(
        f"data + references ready in {time.time() - started:.0f}s: "
        + ", ".join(f"{k} {v:.3f}" for k, v in references.items())
    )
    jobs = [(cfg, seed, train, val, grid) for seed in cfg.seeds]
    if cfg.processes > 1:
        with mp.get_context("fork").Pool(min(cfg.processes, len(jobs))) as pool:
            finished = pool.starmap(_seed_job, jobs)
    else:
        finished = [_seed_job(*job) for job in jobs]
    per_seed = [result for result, _ in finished]
    models = finished[0][1]
    for seed, result in zip(cfg.seeds, per_seed):
        log(f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.items()))
    save_visualisation(out_dir / "masks.png", models, val, grid, cfg)
    means = {k: float(np.mean([r[k] for r in per_seed])) for k in per_seed[0]}
    metrics = {k: (references[k] if k in references else means[k]) for k in METRIC_KEYS}
    atomic_write_json(out_dir / "metrics.json", metrics)
    details = {
        "config": asdict(cfg),
        "references": references,
        "per_seed": per_seed,
        "means": means,
        "expectations": expectations(metrics),
        "wall_seconds": time.time() - started,
    }
    atomic_write_json(out_dir / "details.json", details)
    return metrics


def expectations(m: dict[str, float]) -> dict[str, bool]:
    return {
        "fg_ari_trained >= fg_ari_init + 0.1": m["fg_ari_trained"] >= m["fg_ari_init"] + 0.1,
        "fg_ari_dinosaur >= fg_ari_dinosaur_init + 0.1": m["fg_ari_dinosaur"]
        >= m["fg_ari_dinosaur_init"] + 0.1,
        "fg_ari_trained >= fg_ari_dinosaur - 0.05": m["fg_ari_trained"] >= m["fg_ari_dinosaur"] - 0.05,
        "step_time_ratio < 1": m["step_time_ratio"] < 1,
    }
