"""Evaluation: retrieval (TR/IR@1/5/10 after ITM re-ranking), captioning (BLEU-4, CIDEr-D, METEOR with Java),
and grounding probes (block likelihoods from the decoder, position/class retrieval among controlled captions)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ptp_vlp.data.datasets import load_image, to_tensor
from ptp_vlp.prompts import PROMPT_TEMPLATE, pre_caption
from ptp_vlp.tokenizer import tokenize
from visioncore.metrics import recall_at_k

__all__ = [
    "block_probabilities",
    "caption_metrics",
    "evaluate_caption",
    "evaluate_retrieval",
    "grounding_texts",
    "load_images",
    "score_texts",
]


def load_images(paths: Sequence[str | Path], size: int) -> torch.Tensor:
    """``[N, 3, size, size]`` CLIP-normalised images (resized, no crop), as BLIP evaluates."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    return torch.stack(
        [to_tensor(TF.resize(load_image(p), [size, size], InterpolationMode.BICUBIC)) for p in paths]
    )


@torch.no_grad()
def score_texts(
    model: Any, images: torch.Tensor, tok: Any, texts: list[list[str]], max_tokens: int, batch: int = 64
) -> dict[str, torch.Tensor]:
    """Scores ``[N, C]`` of ``C`` candidate texts per image: ``itc`` (cosine of the unimodal features), ``itm``
    (``itm_logit[1] + itc``, BLIP's retrieval score) and ``lm`` (decoder log-likelihood, summed over tokens)."""
    n, c = len(texts), len(texts[0])
    out = {"itc": torch.empty(n, c), "itm": torch.empty(n, c), "lm": torch.empty(n, c)}
    device = next(model.parameters()).device
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        flat = [t for row in texts[start:stop] for t in row]
        ids, mask = (x.to(device) for x in tokenize(tok, flat, max_tokens))
        embeds = model.image_embeds(images[start:stop].to(device))
        rep = embeds.repeat_interleave(c, dim=0)
        itc = (model.image_feat(embeds).repeat_interleave(c, dim=0) * model.text_feat(ids, mask)).sum(-1)
        itm = model.itm_logits(ids, mask, rep)[:, 1] + itc
        lm = -model.lm_loss(ids, mask, rep, reduction="none")
        for name, value in (("itc", itc), ("itm", itm), ("lm", lm)):
            out[name][start:stop] = value.view(stop - start, c).float().cpu()
    return out


def grounding_texts(caption: str, name: str, grid: int = 3) -> list[str]:
    """The ``grid**2`` fill-in-the-blank texts "{caption} the block k has a {name}" (as ``pre_caption`` shapes
    the pretraining prompts)."""
    return [
        pre_caption(f"{caption}. " + PROMPT_TEMPLATE.format(block=k, name=name)) for k in range(grid * grid)
    ]


@torch.no_grad()
def block_probabilities(
    model: Any,
    image: torch.Tensor,
    tok: Any,
    name: str,
    *,
    caption: str = "",
    grid: int = 3,
    max_tokens: int = 30,
) -> torch.Tensor:
    """``[grid**2]`` probability of each block holding ``name``: softmax of the decoder log-likelihoods."""
    scores = score_texts(model, image[None], tok, [grounding_texts(caption, name, grid)], max_tokens)["lm"][0]
    return torch.softmax(scores, dim=0)


@torch.no_grad()
def evaluate_retrieval(
    model: Any,
    tok: Any,
    entries: list[dict],
    image_root: str | Path,
    *,
    image_size: int,
    k_test: int,
    max_tokens: int,
) -> dict[str, float]:
    """TR@K (an image is a hit when any of its captions ranks in the top K) and IR@K, after ITM re-ranking of the
    top ``k_test`` (BLIP's ``evaluation``); fractions, with their mean."""
    texts, img2txt, txt2img = [], [], []
    for i, entry in enumerate(entries):
        captions = entry["caption"] if isinstance(entry["caption"], list) else [entry["caption"]]
        img2txt.append(list(range(len(texts), len(texts) + len(captions))))
        texts += [pre_caption(c, 30) for c in captions]
        txt2img += [i] * len(captions)
    images = load_images([Path(image_root) / e["image"] for e in entries], image_size)
    device = next(model.parameters()).device
    ids, mask = tokenize(tok, texts, max_tokens)
    i2t, t2i = model.rank(images.to(device), ids.to(device), mask.to(device), k_test=k_test)
    tr = recall_at_k(i2t, img2txt)
    ir = recall_at_k(t2i, txt2img)
    metrics = {f"tr{k}": v for k, v in tr.items()} | {f"ir{k}": v for k, v in ir.items()}
    metrics["r_mean"] = sum(metrics.values()) / len(metrics)
    return metrics


def caption_metrics(predictions: dict[int, str], references: dict[int, list[str]]) -> dict[str, float]:
    """BLEU-4 and CIDEr-D (pycocoevalcap, on lower-cased whitespace tokens), METEOR when Java is installed; SPICE is
    not computed (its models download at run time)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    res = {i: [pre_caption(p, 1000)] for i, p in predictions.items()}
    gts = {i: [pre_caption(r, 1000) for r in refs] for i, refs in references.items()}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    out = {"bleu4": float(bleu[3]), "cider": float(cider)}
    if shutil.which("java"):
        from pycocoevalcap.meteor.meteor import Meteor

        out["meteor"] = float(Meteor().compute_score(gts, res)[0])
    return out


@torch.no_grad()
def evaluate_caption(
    model: Any,
    tok: Any,
    entries: list[dict],
    image_root: str | Path,
    *,
    image_size: int,
    prompt: str,
    max_length: int,
    min_length: int,
) -> tuple[dict[str, float], list[dict]]:
    """Caption every image (greedy, after ``prompt``) and score against its reference captions."""
    images = load_images([Path(image_root) / e["image"] for e in entries], image_size)
    prompt_ids = tok(prompt.strip(), add_special_tokens=True)["input_ids"][:-1]  # [CLS] + prompt, no [SEP]
    device = next(model.parameters()).device
    captions = []
    for chunk in images.split(32):
        out = model.generate(
            chunk.to(device), torch.tensor(prompt_ids), max_length=max_length, min_length=min_length
        )
        for row in out[:, len(prompt_ids) :].tolist():
            words = tok.decode(row, skip_special_tokens=True)
            captions.append(words.strip())
    refs = {
        i: e["caption"] if isinstance(e["caption"], list) else [e["caption"]] for i, e in enumerate(entries)
    }
    metrics = caption_metrics(dict(enumerate(captions)), refs)
    return metrics, [{"image": e["image"], "caption": c} for e, c in zip(entries, captions)]
