"""``evaluate --protocol gldv2|roxford|rparis|ijbc``: self-, cross- and adapted cross-tests on real layouts.

Queries always use ``--model`` (φ_n); the gallery comes from a stored gallery (``--gallery``, checked against the
declared ``--old-model``), from ``--gallery-model`` (cross-test: φ_o) or from ``--model`` itself (self-test);
``--adapter`` applies ψ to it. Test images are squashed to ``data.image_size`` (upstream) unless
``data.resize=aspect``; ROxford/RParis queries are cropped to their bounding box (the standard protocol; upstream
leaves the crop commented out). Every result names the test, the resize and the crop choice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from darwinian_upgrades.config import Config
from darwinian_upgrades.data.gldv2 import ImageListDataset, read_label_list, read_query_gt
from darwinian_upgrades.evaluate import (
    cosine_similarity,
    map_at_k_gt,
    revisitop_map,
    tar_at_far,
    template_features,
    tpir_at_fpir,
)
from darwinian_upgrades.gallery import GalleryStore, model_tag
from darwinian_upgrades.models import load_adapter as _load_adapter
from darwinian_upgrades.models import load_model as _load_model
from darwinian_upgrades.train import extract


def _features(model, dataset, device, *, flip: bool = False) -> torch.Tensor:
    return extract(model.to(device), dataset, device=device, flip=flip)[0]


def _gallery(
    args: argparse.Namespace, dataset: ImageListDataset, query_model, device, *, flip: bool = False
) -> tuple[torch.Tensor, str]:
    adapter = _load_adapter(args.adapter) if args.adapter else None
    if args.gallery:
        old = _load_model(args.old_model) if args.old_model else None
        store = GalleryStore.load(
            args.gallery, expect_tag=model_tag(old) if old is not None else None, adapter=adapter
        )
        if store.ids != [p for p, _ in dataset.entries]:
            raise ValueError(f"{args.gallery}: stored items differ from the protocol's gallery list")
        feats, test = store.features, "stored gallery"
    else:
        gallery_model = _load_model(args.gallery_model) if args.gallery_model else query_model
        feats = _features(gallery_model, dataset, device, flip=flip)
        test = "cross" if args.gallery_model else "self"
        if adapter is not None:
            with torch.no_grad():
                feats = adapter.eval()(feats)
    if adapter is not None:
        test = f"adapted {test}"
    if feats.shape[1] != query_model.embed_dim:
        raise ValueError(
            f"gallery features have size {feats.shape[1]} but the query model's are {query_model.embed_dim}; "
            "pass --adapter (ψ) to map old features into the new space"
        )
    return feats, test


def _gldv2(args, cfg: Config, device) -> dict:

    root = Path(cfg.data.root)
    queries = read_query_gt(root / cfg.data.query_gt)
    gallery = ImageListDataset(root, read_label_list(root / cfg.data.gallery_list), cfg.data, train=False)
    model = _load_model(args.model)
    q = _features(model, ImageListDataset(root, [(p, 0) for p, _ in queries], cfg.data, train=False), device)
    g, test = _gallery(args, gallery, model, device)
    sim = cosine_similarity(q, g)
    gt = [rows for _, rows in queries]
    top1 = sim.argmax(dim=1).tolist()
    return {
        "test": test,
        "map@100": map_at_k_gt(sim, gt, 100),
        "recall@1": float(np.mean([t in set(r) for t, r in zip(top1, gt)])),
        "queries": len(gt),
    }


def _revisitop(args, cfg: Config, device) -> dict:
    from darwinian_upgrades.data.revisitop import load_gnd

    if not args.gnd or not args.images:
        raise ValueError(f"--protocol {args.protocol} needs --gnd FILE and --images DIR")
    gnd = load_gnd(args.gnd)
    images = Path(args.images)
    model = _load_model(args.model)
    # Standard protocol: queries cropped to their bounding box (upstream leaves this commented out).
    boxes = [g["bbx"] or None for g in gnd.gnd]
    queries = ImageListDataset(
        images, [(f"{n}.jpg", 0) for n in gnd.qimlist], cfg.data, train=False, boxes=boxes
    )
    database = ImageListDataset(images, [(f"{n}.jpg", 0) for n in gnd.imlist], cfg.data, train=False)
    g, test = _gallery(args, database, model, device)
    result = revisitop_map(cosine_similarity(_features(model, queries, device), g), gnd.gnd)
    return {"test": test, "query_bbox_crop": True, **result}


def _ijbc(args, cfg: Config, device) -> dict:
    """1:1 TAR@FAR on template pairs (the second template from the gallery side) and, when the 1:N CSVs are
    there, TPIR@FPIR averaged over galleries G1 and G2. Image features are flip-augmented and weighted by the
    detector score; faces are the loose crops resized (no 5-point alignment)."""
    from darwinian_upgrades.data.ijbc import load_1n_csv, load_meta

    if not args.ijbc_root:
        raise ValueError("--protocol ijbc needs --ijbc-root DIR")
    root = Path(args.ijbc_root)
    meta = load_meta(root)
    images = ImageListDataset(root / "loose_crop", [(n, 0) for n in meta.images], cfg.data, train=False)
    model = _load_model(args.model)
    q_feats = _features(model, images, device, flip=True)
    g_feats, test = _gallery(args, images, model, device, flip=True)
    ids, q_t = template_features(q_feats, meta.templates, meta.media, meta.scores)
    _, g_t = template_features(g_feats, meta.templates, meta.media, meta.scores)
    row = {int(t): i for i, t in enumerate(ids)}
    left = np.array([row[int(t)] for t in meta.pairs[:, 0]])
    right = np.array([row[int(t)] for t in meta.pairs[:, 1]])
    scores = (q_t[left] * g_t[right]).sum(axis=1)
    result: dict = {
        "test": test,
        **{
            f"tar@far={k:g}": v
            for k, v in tar_at_far(scores, meta.pair_labels, (1e-6, 1e-5, 1e-4, 1e-3)).items()
        },
    }
    probe_csv = root / "meta" / "ijbc_1N_probe_mixed.csv"
    if probe_csv.is_file():
        probes = {t: s for t, s, _ in load_1n_csv(probe_csv)}
        per_gallery = []
        for name in ("G1", "G2"):
            gal = {t: s for t, s, _ in load_1n_csv(root / "meta" / f"ijbc_1N_gallery_{name}.csv")}
            sim = q_t[[row[t] for t in probes]] @ g_t[[row[t] for t in gal]].T
            per_gallery.append(tpir_at_fpir(sim, list(probes.values()), list(gal.values()), (0.01, 0.1)))
        for fpir in (0.01, 0.1):
            result[f"tpir@fpir={fpir:g}"] = float(np.mean([p[fpir] for p in per_gallery]))
    return result


def evaluate_protocol(args: argparse.Namespace, cfg: Config, device: torch.device) -> dict:
    """Run the requested protocol; the result names the test (self / cross / adapted) and the resize choice."""
    handler = {"gldv2": _gldv2, "roxford": _revisitop, "rparis": _revisitop, "ijbc": _ijbc}[args.protocol]
    return {"protocol": args.protocol, "resize": cfg.data.resize, **handler(args, cfg, device)}
