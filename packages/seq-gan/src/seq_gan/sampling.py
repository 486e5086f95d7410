"""Inference verbs: sample (MaskGIT / AR + decode), reconstruct, visualize (Sec. 3.2), evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from seq_gan.data.folders import ImageFolderDataset, load_image
from seq_gan.evaluate import code_usage
from seq_gan.train import META_FILE, load_tokenizer
from visioncore.files import atomic_path, atomic_write_json
from visioncore.hub import CheckpointError


def load_transformer(model_dir: str | Path):  # noqa: ANN201
    """A trained MaskGIT / AR model and its metadata (kind, tokenizer hash, sampler settings)."""
    from seq_gan.ar import ARTransformer
    from seq_gan.maskgit import MaskGIT

    folder = Path(model_dir)
    if (folder / "model").is_dir():
        folder = folder / "model"
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"{folder}: not a seq-gan transformer folder ({META_FILE} missing)")
    meta = json.loads(meta_path.read_text())
    cls = MaskGIT if meta["kind"] == "maskgit" else ARTransformer
    return cls.from_pretrained(folder), meta


def _save_png(path: Path, images: torch.Tensor, nrow: int = 8) -> None:
    from visioncore.viz import save_image_grid

    with atomic_path(path) as tmp:
        save_image_grid(tmp, ((images.float().cpu() + 1) / 2).clamp(0, 1), nrow=nrow)


def _check_pair(meta: dict, tokenizer, model_dir) -> None:  # noqa: ANN001
    if meta["tokenizer_hash"] != tokenizer.token_space_hash():
        raise ValueError(
            f"{model_dir}: transformer trained on tokens of another tokenizer (hash {meta['tokenizer_hash']}, "
            f"given tokenizer {tokenizer.token_space_hash()})"
        )


@torch.no_grad()
def sample_images(model_dir, tokenizer_dir, out: Path, *, labels=None, num=8, seed=0, steps=None, temperature=None,
                  device=None, dtype=torch.float32) -> dict:  # noqa: ANN001  # fmt: skip
    device = device or torch.device("cpu")
    model, meta = load_transformer(model_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    _check_pair(meta, tokenizer, model_dir)
    model, tokenizer = model.to(device).eval(), tokenizer.to(device=device, dtype=dtype).eval()
    sampler = meta["sampler"]
    y = torch.tensor(labels, device=device) if labels else None
    if y is not None and (int(y.max()) >= model.num_classes or int(y.min()) < 0):
        raise ValueError(f"--labels: class ids must lie in [0, {model.num_classes})")
    g = torch.Generator(device=device).manual_seed(seed)
    temp = temperature if temperature is not None else sampler["temperature"]
    if meta["kind"] == "maskgit":
        grids = model.sample(y, num=num, steps=steps or sampler["steps"], temperature=temp,
                             confidence_noise=sampler["confidence_noise"], generator=g)  # fmt: skip
    else:
        grids = model.sample(y, num=num, temperature=temp, top_k=sampler["top_k"], generator=g)
    images = tokenizer.decode_indices(grids).clamp(-1, 1)
    out.mkdir(parents=True, exist_ok=True)
    _save_png(out / "samples.png", images)
    with atomic_path(out / "tokens.npy") as tmp, tmp.open("wb") as f:
        np.save(f, grids.cpu().numpy().astype(np.int16))
    return {"samples": str(out / "samples.png"), "count": len(grids), "kind": meta["kind"]}


@torch.no_grad()
def reconstruct_images(model_dir, images: list[Path], out: Path, *, device=None,
                       dtype=torch.float32) -> dict:  # noqa: ANN001  # fmt: skip
    device = device or torch.device("cpu")
    tokenizer = load_tokenizer(model_dir).to(device=device, dtype=dtype).eval()
    x = torch.stack([load_image(p, tokenizer.resolution) for p in images]).to(device=device, dtype=dtype)
    rec, q = tokenizer(x)
    out.mkdir(parents=True, exist_ok=True)
    _save_png(out / "reconstructions.png", torch.cat([x, rec.clamp(-1, 1)]), nrow=len(images))
    l1 = float((rec.float() - x.float()).abs().mean())
    summary = {"images": [str(p) for p in images], "l1": l1, "codes_used": int(q.indices.unique().numel())}
    atomic_write_json(out / "reconstruct.json", summary)
    return summary


@torch.no_grad()
def visualize_teacher_forced(model_dir, tokenizer_dir, images: list[Path], out: Path, *, label=None,
                             device=None, dtype=torch.float32) -> dict:  # noqa: ANN001  # fmt: skip
    """Sec. 3.2: encode (s), one teacher-forced AR pass, top-1 per position (s'), decode both side by side."""
    device = device or torch.device("cpu")
    model, meta = load_transformer(model_dir)
    if meta["kind"] != "ar":
        raise ValueError(f"{model_dir}: visualize needs an AR transformer, got {meta['kind']}")
    tokenizer = load_tokenizer(tokenizer_dir)
    _check_pair(meta, tokenizer, model_dir)
    model, tokenizer = model.to(device).eval(), tokenizer.to(device=device, dtype=dtype).eval()
    x = torch.stack([load_image(p, tokenizer.resolution) for p in images]).to(device=device, dtype=dtype)
    s = tokenizer.encode(x).indices
    y = torch.full((len(x),), label, device=device) if label is not None else None
    s_prime = model.teacher_forced_top1(s, y)
    rows = torch.cat(
        [x, tokenizer.decode_indices(s).clamp(-1, 1), tokenizer.decode_indices(s_prime).clamp(-1, 1)]
    )
    out.mkdir(parents=True, exist_ok=True)
    _save_png(out / "teacher_forced.png", rows, nrow=len(images))
    summary = {
        "top1_token_agreement": float((s == s_prime).float().mean()),
        "figure": str(out / "teacher_forced.png"),
    }
    atomic_write_json(out / "visualize.json", summary)
    return summary


@torch.no_grad()
def evaluate_tokenizer(model_dir, root, split, out: Path, *, labels="auto", inception=None, ref_stats=None,
                       samples=None, limit=None, device=None, dtype=torch.float32,
                       batch_size: int = 32) -> dict:  # noqa: ANN001  # fmt: skip
    """Usage, perplexity and L1 on a split; rFID (reconstructions vs originals) and gFID / IS of a sample folder
    with a local Inception file, both through the same resize path. Writes the split's Inception statistics to
    ``out/ref_stats.npz`` (``mu``, ``sigma``) for later ``--ref-stats``."""
    device = device or torch.device("cpu")
    from seq_gan.evaluate import InceptionFeatures, fid_from_stats, inception_stats
    from visioncore.metrics import frechet_distance, inception_score

    if ref_stats is not None and not Path(ref_stats).is_file():
        raise FileNotFoundError(f"{ref_stats}: reference statistics not found")
    if (samples is not None or ref_stats is not None) and inception is None:
        raise ValueError("--samples / --ref-stats need --inception (a local torchvision inception_v3 file)")
    tokenizer = load_tokenizer(model_dir).to(device=device, dtype=dtype).eval()
    dataset = ImageFolderDataset(root, split, tokenizer.resolution, labels)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    extractor = InceptionFeatures(inception).to(device) if inception else None
    tokens, l1, real_f, rec_f = [], 0.0, [], []
    for i in range(0, n, batch_size):
        x = torch.stack([dataset[j][0] for j in range(i, min(n, i + batch_size))]).to(
            device=device, dtype=dtype
        )
        rec, q = tokenizer(x)
        tokens.append(q.indices.cpu())
        l1 += float((rec.float() - x.float()).abs().sum()) / x[0].numel()
        if extractor is not None:
            real_f.append(inception_stats(extractor, x)[0])
            rec_f.append(inception_stats(extractor, rec.clamp(-1, 1))[0])
    usage, perplexity = code_usage(torch.cat(tokens), tokenizer.num_codes)
    metrics = {"images": n, "usage": usage, "perplexity": perplexity, "l1": l1 / n}
    if extractor is not None:
        real = np.concatenate(real_f)
        metrics["rfid"] = frechet_distance(real, np.concatenate(rec_f))
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "ref_stats.npz") as tmp, tmp.open("wb") as f:  # reusable as --ref-stats
            np.savez(f, mu=real.mean(0), sigma=np.cov(real, rowvar=False))
    if samples is not None:
        files = sorted(p for p in Path(samples).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise ValueError(f"{samples}: no sample images")
        s = torch.stack([load_image(p, tokenizer.resolution) for p in files])
        feats, logits = inception_stats(extractor, s)
        metrics["is"], metrics["is_std"] = inception_score(logits, splits=min(10, len(files)))
        if ref_stats is not None:
            with np.load(ref_stats) as ref:
                metrics["gfid"] = fid_from_stats(feats, ref["mu"], ref["sigma"])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", metrics)
    return metrics
