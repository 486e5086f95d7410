import json

import pytest
import torch
from mist_videoqa.config import load_train_config
from mist_videoqa.data.synthetic import SyntheticSpec, make_synthetic
from mist_videoqa.train import qa_loss, train
from safetensors.torch import load_file

from visioncore.config import ConfigError
from visioncore.training import run_distributed

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    make_synthetic(root, "agqa", SyntheticSpec(n_train=48, n_val=16, n_test=16, dim=32, seed=0))
    return root


def _cfg(root, *extra):
    return load_train_config("tiny", [f"data.root={root}", "train.steps=6", "train.save_every=3", *extra])


def test_qa_loss_ignores_unknown_answers():
    logits = torch.tensor([[2.0, 0.0], [0.0, 5.0]])
    assert torch.allclose(qa_loss(logits, torch.tensor([0, -1])), qa_loss(logits[:1], torch.tensor([0])))
    assert qa_loss(logits, torch.tensor([-1, -1])) == 0


def test_training_learns_on_the_training_set(data_root, tmp_path):
    cfg = load_train_config(
        "tiny", [f"data.root={data_root}", "data.val_split=train", "data.max_items=16", "train.steps=80",
                 "train.batch_size=16", "train.eval_every=80", "train.save_every=80", "train.lr=3e-3",
                 "model.n_ista=1", "model.dropout=0.0"],
    )  # fmt: skip
    summary = train(cfg, tmp_path / "run", device=CPU, log=lambda _: None)
    assert summary["best_val_acc"] >= 0.3  # well above chance (1/8) on its 16 training questions
    metrics = json.loads((tmp_path / "run" / "best" / "val_metrics.json").read_text())
    assert metrics["mode"] == "topk-soft" and "segment_hit_rate" in metrics


def test_resume_is_bit_exact(data_root, tmp_path):
    cfg = _cfg(data_root, "train.eval_every=3")
    train(cfg, tmp_path / "full", device=CPU, log=lambda _: None)
    part = train(cfg, tmp_path / "split", device=CPU, log=lambda _: None, stop_at=3)
    assert part["steps"] == 3 and not (tmp_path / "split" / "model").exists()
    resumed = train(cfg, tmp_path / "split", device=CPU, log=lambda _: None, resume=True)
    assert resumed["start_step"] == 3
    a = load_file(tmp_path / "full" / "model" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    fresh = load_file(tmp_path / "split" / "checkpoints" / "step_000003" / "model.safetensors")
    assert any(not torch.equal(a[k], fresh[k]) for k in a if k in fresh)  # the last 3 steps changed weights


def _two_process_run(root: str, out: str) -> None:
    cfg = _cfg(root, "train.eval_every=6", "train.batch_size=4", "train.min_lr_ratio=1.0")
    train(cfg, out, device=CPU, log=lambda _: None)


def test_two_process_gloo_loop(data_root, tmp_path):
    run_distributed(_two_process_run, str(data_root), str(tmp_path / "ddp"), num_processes=2)
    assert (tmp_path / "ddp" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "ddp" / "checkpoints" / "step_000006").is_dir()
    weights = load_file(tmp_path / "ddp" / "model" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    logged = [json.loads(line) for line in (tmp_path / "ddp" / "logs" / "train" / "metrics.jsonl").open()]
    assert max(r["step"] for r in logged) == 6
    assert [r["lr"] for r in logged if "lr" in r] == [1e-3, 1e-3]  # min_lr_ratio 1: the cosine holds the lr


def test_min_lr_ratio_is_validated():
    with pytest.raises(ConfigError, match="min_lr_ratio"):
        load_train_config("tiny", ["train.min_lr_ratio=1.5"])


def test_selector_lr_ratio_puts_the_selectors_in_a_slower_group():
    from mist_videoqa.models import MIST
    from mist_videoqa.train import _param_groups

    with pytest.raises(ConfigError, match="selector_lr_ratio"):
        load_train_config("tiny", ["train.selector_lr_ratio=0"])
    cfg = load_train_config("tiny", ["train.selector_lr_ratio=0.1"])
    model = MIST(cfg.model)
    rest, slow = _param_groups(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    assert slow["lr"] == pytest.approx(0.1 * cfg.train.lr) and "lr" not in rest
    assert {names[id(p)].split(".")[2] for p in slow["params"]} == {"seg_selector", "reg_selector"}
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in (rest, slow) for p in g["params"]) == total
    assert len(_param_groups(model, load_train_config("tiny"))) == 1  # ratio 1: one group, as before


def test_bert_folder_initialises_both_text_encoders(data_root, tmp_path):
    from mist_videoqa.data.dataset import load_tokenizer
    from mist_videoqa.train import bert_config_fields, build_model
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(vocab_size=192, hidden_size=48, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64), add_pooling_layer=False)  # fmt: skip
    bert.save_pretrained(tmp_path / "bert")
    fields = bert_config_fields(tmp_path / "bert")
    assert fields["bert_hidden"] == 48 and fields["bert_layers"] == 1
    cfg = _cfg(data_root)
    cfg.model = type(cfg.model)(**{**vars(cfg.model), **fields})
    model = build_model(cfg, load_tokenizer(""), bert_dir=str(tmp_path / "bert"))
    for encoder in (model.question_bert, model.answer_bert):
        for key, value in bert.state_dict().items():
            assert torch.equal(encoder.state_dict()[key], value), key
