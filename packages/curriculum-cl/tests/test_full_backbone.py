import json

import pytest
import torch
from curriculum_cl.config import load
from curriculum_cl.models.learner import Learner
from curriculum_cl.train import train_full

from visioncore.training import run_distributed

pytestmark = pytest.mark.filterwarnings("ignore")

OVERRIDES = [
    "data.classes=0-2",
    "data.max_per_class=16",
    "learner.batch_size=8",
    "learner.passes=2",
    "train.save_every=3",
]


def _weights(folder):
    return {k: v.clone() for k, v in Learner.from_pretrained(folder).state_dict().items()}


def test_resume_is_bit_identical(tmp_path):
    cfg = load("tiny", [*OVERRIDES, "train.algorithm=ewc"])  # EWC: the strategy state must resume too
    full = train_full(cfg, tmp_path / "full").metrics
    assert full["steps"] == 3 * 2 * 2  # 3 experiences x 2 passes x 2 batches
    # killed mid-way through experience 2 (step 7; checkpoints at 3, 4 (experience end), 6), then resumed
    assert train_full(cfg, tmp_path / "cut", stop_after=7).metrics == {"stopped_at": 7}
    resumed = train_full(cfg, tmp_path / "cut", resume=True).metrics
    assert resumed["acc"] == full["acc"]
    a, b = _weights(tmp_path / "full" / "model"), _weights(tmp_path / "cut" / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "full" / "logs" / "train_full" / "metrics.jsonl").is_file()


def _ddp_worker(out):
    from accelerate import PartialState

    cfg = load("tiny", [*OVERRIDES, "train.algorithm=lwf"])
    run = train_full(cfg, out)
    state = PartialState()
    weights = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    torch.save(
        {"world": state.num_processes, "state": weights}, f"{out}/weights_rank{state.process_index}.pt"
    )


def test_two_process_gloo_ranks_end_identical(tmp_path):
    out = str(tmp_path / "ddp")
    run_distributed(_ddp_worker, out, num_processes=2)
    r0 = torch.load(f"{out}/weights_rank0.pt", weights_only=True)
    r1 = torch.load(f"{out}/weights_rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2
    assert all(torch.equal(r0["state"][k], r1["state"][k]) for k in r0["state"])
    single = _weights(tmp_path / "ddp" / "model")
    assert all(torch.equal(single[k], r0["state"][k]) for k in single)
    assert len(json.loads((tmp_path / "ddp" / "metrics.json").read_text())["acc"]) == 3
