"""The acceptance experiment of issue 19 (``darwinian-upgrades repro --out DIR``).

Per seed: synthetic landmarks written in the GLDv2 layout and read back by the GLDv2 loader; an old model on 30% of
each training landmark's images; independent, BCT and DMU new models from one initialisation on the same batches;
ψ post hoc for DMU (and for BCT, "ψ alone"); self, cross and adapted cross-tests (mAP@100, R@1), negative flips,
backfilling curves in uncertainty and random order; the same on novel landmarks (``open_``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from darwinian_upgrades.backfill import backfill_order, backfilled_gallery, curve_area, gallery_uncertainty
from darwinian_upgrades.config import Config
from darwinian_upgrades.data.gldv2 import ImageListDataset, read_label_list, read_query_gt, split_file_name
from darwinian_upgrades.data.synthetic import make_synthetic, read_quality
from darwinian_upgrades.evaluate import cosine_similarity, map_at_k_gt
from darwinian_upgrades.train import adapter_features, extract, train, train_adapter
from visioncore.files import atomic_path, atomic_write_json

METHODS = ("indep", "bct", "dmu")
ROLE = {"indep": "independent", "bct": "bct", "dmu": "dmu"}


def _r1(sim: torch.Tensor, gt: list[list[int]]) -> float:
    top = sim.argmax(dim=1).tolist()  # first maximum: the lower gallery index among ties
    return float(np.mean([t in set(g) for t, g in zip(top, gt)]))


def _nfr(before: torch.Tensor, after: torch.Tensor, gt: list[list[int]]) -> float:
    b, a = before.argmax(dim=1).tolist(), after.argmax(dim=1).tolist()
    return float(np.mean([(x in set(g)) and (y not in set(g)) for x, y, g in zip(b, a, gt)]))


def _dip(curve: list[float], fractions: list[float]) -> float:
    """Largest shortfall of a backfilling curve below the chord from its start to its end (0 if none)."""
    chord = np.interp(fractions, [fractions[0], fractions[-1]], [curve[0], curve[-1]])
    return float(max(0.0, np.max(chord - np.asarray(curve))))


class _TestSet:
    def __init__(self, root: Path, folder: str, cfg: Config):
        ann = root / "annotation" / folder
        queries = read_query_gt(ann / "gldv2_private_query_gt.txt")
        gallery = read_label_list(ann / "gldv2_gallery_list.txt")
        self.gt = [rows for _, rows in queries]
        self.query = ImageListDataset(root, [(p, 0) for p, _ in queries], cfg.data, train=False)
        self.gallery = ImageListDataset(root, gallery, cfg.data, train=False)
        self.query_paths = [p for p, _ in queries]
        self.gallery_paths = [p for p, _ in gallery]


def _evaluate(
    prefix: str, test: _TestSet, models: dict, adapters: dict, quality: dict, cfg: Config, seed: int
):
    rc = cfg.repro
    q = {name: extract(m, test.query)[0] for name, m in models.items()}
    g_old, g_old_logits, _ = extract(models["old"], test.gallery)
    g = {name: extract(m, test.gallery)[0] for name, m in models.items() if name != "old"}
    with torch.no_grad():
        g_adapt = {name: a(g_old) for name, a in adapters.items()}
    sims = {"old_old": cosine_similarity(q["old"], g_old)}
    for m in METHODS:
        sims[f"{m}_new_new"] = cosine_similarity(q[m], g[m])
        sims[f"{m}_new_old"] = cosine_similarity(q[m], g_old)
    for m in ("dmu", "bct"):
        sims[f"{m}_new_adapted"] = cosine_similarity(q[m], g_adapt[m])
    out: dict[str, float] = {}
    rng = np.random.default_rng(seed)
    out["map_chance"] = float(
        np.mean([map_at_k_gt(rng.random(sims["old_old"].shape), test.gt, rc.k) for _ in range(10)])
    )
    for name, sim in sims.items():
        out[f"map_{name}"] = map_at_k_gt(sim, test.gt, rc.k)
        out[f"r1_{name}"] = _r1(sim, test.gt)
    base = out["map_old_old"]
    for name in sims:
        if name != "old_old":
            out[f"gain_{name}"] = (out[f"map_{name}"] - base) / base
    out["nfr_indep_cross"] = _nfr(sims["old_old"], sims["indep_new_old"], test.gt)
    out["nfr_bct_cross"] = _nfr(sims["old_old"], sims["bct_new_old"], test.gt)
    out["nfr_dmu_adapted"] = _nfr(sims["old_old"], sims["dmu_new_adapted"], test.gt)
    uncertainty = gallery_uncertainty(g_old_logits)
    curves: dict[str, list[float]] = {}
    bases = {"dmu": g_adapt["dmu"], "bct": g_old}
    for m in ("dmu", "bct"):

        def curve(order: torch.Tensor, m: str = m) -> list[float]:
            return [
                map_at_k_gt(
                    cosine_similarity(q[m], backfilled_gallery(bases[m], g[m], order, f)), test.gt, rc.k
                )
                for f in rc.fractions
            ]

        curves[f"{m}_uncertainty"] = curve(backfill_order(uncertainty))
        draws = []
        for d in range(rc.random_draws):
            gen = torch.Generator().manual_seed(1000 * seed + d)
            draws.append(curve(backfill_order(uncertainty, strategy="random", generator=gen)))
        curves[f"{m}_random"] = np.mean(draws, axis=0).tolist()
        for order in ("uncertainty", "random"):
            out[f"backfill_auc_{m}_{order}"] = curve_area(rc.fractions, curves[f"{m}_{order}"])
    out["backfill_dip_bct_random"] = _dip(curves["bct_random"], rc.fractions)
    out["backfill_end_gap"] = max(
        abs(curves[f"{m}_{o}"][-1] - out[f"map_{m}_new_new"])
        for m in ("dmu", "bct")
        for o in ("uncertainty", "random")
    )
    gallery_q = [quality[p] for p in test.gallery_paths]
    out["spearman_uncertainty_quality"] = float(spearmanr(uncertainty.numpy(), gallery_q)[0])
    return {f"{prefix}{k}": v for k, v in out.items()}, curves


def run_seed(out: Path, cfg: Config, seed: int) -> tuple[dict[str, float], dict]:
    root = out / "data" / f"seed{seed}"
    make_synthetic(root, cfg.repro, seed=seed)
    ann = root / "annotation" / "gldv2"
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))
    train_set = ImageListDataset(root, read_label_list(ann / "label_81313.txt"), cfg.data, train=True)
    old_set = ImageListDataset(
        root, read_label_list(ann / split_file_name(cfg.repro.old_fraction, "data")), cfg.data, train=True
    )
    runs = out / "runs" / f"seed{seed}"
    num_classes = cfg.repro.train_landmarks
    models = {"old": train(cfg, "old", runs / "old", old_set, num_classes=num_classes)}
    for m in METHODS:
        models[m] = train(cfg, ROLE[m], runs / m, train_set, old_model=models["old"], num_classes=num_classes)
    adapters = {}
    cached = {}
    for m in ("dmu", "bct"):
        cached[m] = adapter_features(
            models["old"], models[m], train_set, tau=cfg.loss.tau, num_classes=num_classes
        )
        adapters[m] = train_adapter(cfg, runs / f"psi_{m}", cached[m], models[m])
    quality = read_quality(root / "annotation" / "quality.csv")
    scores = cached["dmu"].tensors[2].numpy()
    metrics = {
        "spearman_score_quality": float(spearmanr(scores, [quality[p] for p, _ in train_set.entries])[0])
    }
    curves = {}
    for prefix, folder in (("", "gldv2"), ("open_", "gldv2_open")):
        values, curves[prefix or "seen"] = _evaluate(
            prefix, _TestSet(root, folder, cfg), models, adapters, quality, cfg, seed
        )
        metrics.update(values)
    return metrics, curves


GATES = [  # (name, left key, comparison, right key or None, offset)
    ("indep cross at chance", "map_indep_new_old", "<=", "map_chance", 0.05),
    ("open: indep cross at chance", "open_map_indep_new_old", "<=", "open_map_chance", 0.05),
    ("indep self beats old", "map_indep_new_new", ">=", "map_old_old", 0.1),
    ("BCT compatible", "map_bct_new_old", ">=", "map_old_old", -0.02),
    ("DMU adapted beats old", "map_dmu_new_adapted", ">=", "map_old_old", 0.03),
    ("DMU adapted beats BCT cross", "map_dmu_new_adapted", ">=", "map_bct_new_old", 0.02),
    ("open: DMU adapted >= BCT cross", "open_map_dmu_new_adapted", ">=", "open_map_bct_new_old", 0.0),
    ("DMU self >= BCT self", "map_dmu_new_new", ">=", "map_bct_new_new", -0.01),
    ("DMU flips fewer", "nfr_dmu_adapted", "<=", "nfr_bct_cross", -0.02),
    (
        "uncertainty order beats random (DMU)",
        "backfill_auc_dmu_uncertainty",
        ">=",
        "backfill_auc_dmu_random",
        0.005,
    ),
    ("DMU backfill beats BCT random", "backfill_auc_dmu_uncertainty", ">=", "backfill_auc_bct_random", 0.03),
    ("score falls with noise", "spearman_score_quality", "<=", None, -0.3),
    ("uncertainty rises with noise", "spearman_uncertainty_quality", ">=", None, 0.3),
    ("backfill ends at new/new", "backfill_end_gap", "<=", None, 1e-6),
]


def check_gates(metrics: dict[str, float]) -> list[dict]:
    rows = []
    for name, left, op, right, offset in GATES:
        bound = (metrics[right] if right else 0.0) + offset
        value = metrics[left]
        ok = value <= bound if op == "<=" else value >= bound
        rows.append({"gate": name, "key": left, "value": value, "op": op, "bound": bound, "pass": bool(ok)})
    return rows


def repro(cfg: Config, out: str | Path) -> dict[str, float]:
    """Run every seed, write ``metrics.json`` (seed means), ``details.json`` (per seed, gates, curves) and
    ``backfill.png``; returns the seed means."""
    out = Path(out)
    start = time.time()
    per_seed, curves = {}, {}
    for seed in cfg.repro.seeds:
        per_seed[seed], curves[seed] = run_seed(out, cfg, seed)
    keys = list(per_seed[cfg.repro.seeds[0]])
    means = {k: float(np.mean([per_seed[s][k] for s in per_seed])) for k in keys}
    means["seconds_total"] = time.time() - start
    gates = check_gates(means)
    atomic_write_json(
        out / "details.json",
        {
            "per_seed": per_seed,
            "gates": gates,
            "curves": curves,
            "fractions": cfg.repro.fractions,
            "seeds": cfg.repro.seeds,
        },
    )
    atomic_write_json(out / "metrics.json", means)
    _plot(out / "backfill.png", curves, cfg.repro.fractions)
    return means


def _plot(path: Path, curves: dict, fractions: list[float]) -> None:
    from visioncore.viz import plot_curves

    mean = {
        name: np.mean([c["seen"][name] for c in curves.values()], axis=0)
        for name in next(iter(curves.values()))["seen"]
    }
    with atomic_path(path) as tmp:
        plot_curves(
            tmp,
            {k: (np.asarray(fractions), v) for k, v in mean.items()},
            title="backfilling (mAP@100, seen landmarks)",
            xlabel="fraction backfilled",
        )


def table(means: dict[str, float], per_seed: dict | None = None) -> str:
    """Seed means (and per-seed values) of the retrieval keys, then every gate on the means."""
    seeds = list(per_seed or {})
    lines = [f"{'metric':<34}{'mean':>9}" + "".join(f"{'seed ' + str(s):>9}" for s in seeds)]
    prefixes = (
        "map_",
        "nfr_",
        "backfill_",
        "spearman_",
        "open_map_",
        "open_nfr_",
        "open_backfill_",
        "open_spearman_",
    )
    for key in sorted(k for k in means if k.startswith(prefixes)):
        row = f"{key:<34}{means[key]:>9.4f}" + "".join(f"{per_seed[s][key]:>9.4f}" for s in seeds)
        lines.append(row)
    for gate in check_gates(means):
        mark = "PASS" if gate["pass"] else "FAIL"
        lines.append(f"[{mark}] {gate['gate']}: {gate['value']:.4f} {gate['op']} {gate['bound']:.4f}")
    lines.append(f"seconds_total {means['seconds_total']:.1f}")
    return "\n".join(lines)
