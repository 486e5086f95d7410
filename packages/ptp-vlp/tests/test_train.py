"""The training loop: exact resume (momentum encoders and queues in the checkpoint), 2 processes over gloo,
dataset seeding and prompt truncation counts."""

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from ptp_vlp.config import Config, PTPConfig
from ptp_vlp.data.corpus import CorpusRow, read_corpus
from ptp_vlp.data.datasets import PretrainDataset, Transform
from ptp_vlp.data.synthetic import SyntheticSpec, write_synthetic
from ptp_vlp.tokenizer import load_tokenizer
from ptp_vlp.train import pretrain
from safetensors.torch import load_file

from visioncore.config import load_config
from visioncore.training import run_distributed


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("shapes"), SyntheticSpec(n_train=48, n_test=9, seed=1))


def _cfg(data: Path, *extra: str) -> Config:
    overrides = [
        f"data.corpus={data / 'corpus.tsv'}",
        f"data.image_root={data}",
        f"data.tokenizer={data / 'tokenizer'}",
    ]
    return load_config(Config, "tiny", [*overrides, *extra], package="ptp_vlp")


def test_resume_is_exact(data, tmp_path):
    cfg = _cfg(data)  # 6 steps, checkpoints at 3 and 6
    full = pretrain(cfg, tmp_path / "full", show_progress=False)
    # an interrupted run: only the step-3 checkpoint exists; resuming must give the uninterrupted result bit for bit
    shutil.copytree(tmp_path / "full/checkpoints/step_000003", tmp_path / "cut/checkpoints/step_000003")
    resumed = pretrain(cfg, tmp_path / "cut", resume=True, show_progress=False)
    a = load_file(tmp_path / "full/model/model.safetensors")
    b = load_file(tmp_path / "cut/model/model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed["losses"] == full["losses"]
    assert int(a["queue_ptr"]) == (6 * 4) % 16  # 6 batches of 4 went through the queue of 16
    # the momentum encoder moved away from its initial copy and is not the online encoder
    assert not torch.equal(a["text_proj_m.weight"], a["text_proj.weight"])


def _two_ranks(out: str, data: str) -> None:
    import torch.distributed as dist
    from ptp_vlp.models.blip import BLIPPretrain
    from ptp_vlp.train import blip_config

    cfg = _cfg(Path(data))
    pretrain(
        cfg, Path(out) / "run", show_progress=False
    )  # the loop under DDP; it also sets up the process group
    rank = dist.get_rank()
    torch.manual_seed(0)  # identical models on both ranks
    model = BLIPPretrain(blip_config(cfg, load_tokenizer(Path(data) / "tokenizer")))
    g = torch.Generator().manual_seed(100 + rank)  # different data per rank
    images = torch.randn(4, 3, 48, 48, generator=g)
    ids = torch.randint(5, 30, (4, 12), generator=g)
    ids[:, 0] = model.config.cls_token_id
    model(images, ids, torch.ones_like(ids))
    with torch.no_grad():
        feats = model.image_feat(model.image_embeds(images, momentum=True), momentum=True)
    torch.save(
        {"queue": model.image_queue, "feats": feats, "ptr": model.queue_ptr}, Path(out) / f"rank{rank}.pt"
    )


def test_two_processes_share_one_queue(data, tmp_path):
    run_distributed(_two_ranks, str(tmp_path), str(data), num_processes=2)
    r0, r1 = (torch.load(tmp_path / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    torch.testing.assert_close(r0["queue"], r1["queue"])
    torch.testing.assert_close(r0["queue"][:, :4].T, r0["feats"])  # rank 0's momentum features first
    torch.testing.assert_close(r0["queue"][:, 4:8].T, r1["feats"])  # then rank 1's
    assert int(r0["ptr"]) == int(r1["ptr"]) == 8
    summary = json.loads((tmp_path / "run/train_summary.json").read_text())
    assert summary["processes"] == 2 and len(summary["losses"]["lm"]) == 6
    assert (tmp_path / "run/model/model.safetensors").is_file()


def test_prompt_draws_depend_on_seed_epoch_index(data):
    rows = read_corpus(data / "corpus.tsv")
    tok = load_tokenizer(data / "tokenizer")
    ptp = PTPConfig()
    ds = PretrainDataset(rows, data, tok, image_size=48, seed=0, ptp=ptp)
    with_objects = [i for i, r in enumerate(rows) if len(r.names) > 1][0]
    a, b = ds[(0, with_objects)], ds[(0, with_objects)]
    assert torch.equal(a["ids"], b["ids"]) and torch.equal(a["image"], b["image"])
    texts = {tuple(ds[(e, with_objects)]["ids"].tolist()) for e in range(12)}
    assert len(texts) > 1  # resampled every epoch
    block = ds[(0, with_objects)]["block"]
    assert block in [ds[(0, with_objects)]["block"] for _ in range(2)]
    plain = PretrainDataset(rows, data, tok, image_size=48, seed=0, ptp=None)[(0, with_objects)]
    assert plain["block"] == -1 and int(plain["mask"].sum()) < int(a["mask"].sum())


def test_token_limit_truncation_is_counted(data):
    tok = load_tokenizer(data / "tokenizer")
    row = CorpusRow(
        "images/train/000000.jpg",
        "a red circle and a blue square and a green circle",
        ((0, 0, 4, 4),),
        ("red circle",),
    )
    ds = PretrainDataset([row], data, tok, image_size=48, seed=0, ptp=PTPConfig(), max_tokens=14)
    assert ds[(0, 0)]["truncated"]  # 11 caption words + 7 prompt words + 2 specials > 14 tokens
    ds = PretrainDataset([row], data, tok, image_size=48, seed=0, ptp=PTPConfig(), max_tokens=30)
    assert not ds[(0, 0)]["truncated"]


def test_crop_and_flip_move_boxes():
    from PIL import Image

    image = Image.new("RGB", (100, 50))
    t = Transform(size=20, augment="none")
    _, boxes = t(image, [(0, 0, 10, 10)], random.Random(0))
    assert boxes == [[0.0, 0.0, 2.0, 4.0]]
    flipped = Transform(size=20, augment="blip", min_scale=1.0, flip=True)
    seen = set()
    for seed in range(20):
        _, (box,) = flipped(image, [(0, 0, 10, 10)], random.Random(seed))
        seen.add(box[0] > 10)  # left box lands on the right half after a flip
    assert seen == {True, False}
