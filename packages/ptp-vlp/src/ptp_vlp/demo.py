"""``ptp-vlp demo``: a <= 40 s SMOKE CHECK (too short to show the PTP effect; ``repro`` measures it).

Writes a small ShapesGrid set, pretrains the tiny BLIP with PTP prompts for a few dozen steps, and reports the
losses, the fill-in-the-blank block accuracy on held-out images and one ``ground`` query, in ``DIR/metrics.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ptp_vlp.config import Config
from ptp_vlp.data.synthetic import SyntheticSpec, write_synthetic
from visioncore.config import load_config
from visioncore.files import atomic_write_json

__all__ = ["run_demo"]


def run_demo(out: Path, steps: int = 60) -> dict:
    from ptp_vlp.evaluate import block_probabilities, load_images
    from ptp_vlp.models.blip import BLIPPretrain
    from ptp_vlp.repro import probe_metrics
    from ptp_vlp.tokenizer import load_tokenizer
    from ptp_vlp.train import pretrain

    start = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--out {out} is not empty")
    data = write_synthetic(out / "data", SyntheticSpec(n_train=320, n_test=27, seed=0))
    overrides = [
        f"data.corpus={data / 'corpus.tsv'}",
        f"data.image_root={data}",
        f"data.tokenizer={data / 'tokenizer'}",
        f"train.steps={steps}",
        "train.batch_size=16",
        "train.warmup_steps=5",
        "train.save_every=0",
        "train.log_every=20",
        "model.queue_size=32",
    ]
    cfg = load_config(Config, "tiny", overrides, package="ptp_vlp")
    summary = pretrain(cfg, out / "pretrain", show_progress=False)
    model = BLIPPretrain.from_pretrained(out / "pretrain" / "model")
    tok = load_tokenizer(cfg.data.tokenizer)
    probes = probe_metrics(model, tok, data, cfg)
    first = json.loads((data / "probes_test.json").read_text())[0]
    image = load_images([data / first["image"]], cfg.model.image_size)[0]
    name = first["names"][first["probe"]]
    probs = block_probabilities(model, image, tok, name, grid=cfg.ptp.grid)
    losses = summary["losses"]
    metrics = {
        "smoke_check": True,
        "steps": steps,
        **{f"loss_{k}_first": v[0] for k, v in losses.items()},
        **{f"loss_{k}_last": v[-1] for k, v in losses.items()},
        "fill_acc": probes["fill_acc"],
        "cls_r1": probes["cls_r1"],
        "chance": 1 / 9,
        "ground_example": {"name": name, "true_block": first["blocks"][first["probe"]], "p": probs.tolist()},
        "prompt_truncated": summary["prompt_truncated"],
        "seconds_total": time.perf_counter() - start,
    }
    atomic_write_json(out / "metrics.json", metrics)
    return metrics
