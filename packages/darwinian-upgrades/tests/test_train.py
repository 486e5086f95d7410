import json

import torch
from darwinian_upgrades.models import EmbeddingModel, ForwardAdapter, UpgradeModel
from darwinian_upgrades.train import adapter_features, compute_losses, train, train_adapter
from safetensors.torch import load_file

from visioncore.training import run_distributed

from .conftest import toy_images


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_step_leaves_old_model_bit_identical(tmp_path, tiny_cfg):
    data = toy_images()
    cfg = tiny_cfg()
    old = train(cfg, "old", tmp_path / "old", data)
    before = _state(old)
    new = train(cfg, "dmu", tmp_path / "dmu", data, old_model=old)
    after = old.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics
    assert all(p.grad is None and not p.requires_grad for p in old.parameters())
    assert not torch.equal(
        new.fc_emb.weight, EmbeddingModel.from_pretrained(tmp_path / "old" / "model").fc_emb.weight
    )
    assert (tmp_path / "dmu" / "model" / "model.safetensors").is_file()


def test_dmu_with_unit_scores_and_identity_psi_equals_bct(tiny_cfg):
    cfg = tiny_cfg()
    images, labels = toy_images()[:16]
    torch.manual_seed(0)
    old = EmbeddingModel(6, backbone="tiny", width=0.5, embed_dim=32)
    grads, terms = {}, {}
    for role, adapter in (("bct", None), ("dmu", ForwardAdapter(32, 32, identity=True))):
        torch.manual_seed(1)
        new = EmbeddingModel(6, backbone="tiny", embed_dim=32)
        pair = UpgradeModel(new, old, adapter).train()
        losses = compute_losses(pair(images, labels), labels, role, cfg, pair, scores=torch.ones(16))
        assert ("fa" in losses) == (role == "dmu")
        sum(losses.values()).backward()
        grads[role] = {n: p.grad.clone() for n, p in new.named_parameters()}
        terms[role] = losses
    assert torch.equal(terms["dmu"]["sbc"], terms["bct"]["bct"])
    assert torch.equal(terms["dmu"]["ce"], terms["bct"]["ce"])
    assert all(torch.equal(grads["bct"][n], grads["dmu"][n]) for n in grads["bct"])


def test_exact_resume_and_adapter_learns(tmp_path, tiny_cfg):
    data = toy_images()
    cfg = tiny_cfg("train.steps=6", "train.save_every=3", "train.keep_last=3")
    old = train(cfg, "old", tmp_path / "old", data)
    full = train(cfg, "dmu", tmp_path / "full", data, old_model=old)
    part = tmp_path / "part" / "checkpoints"
    part.mkdir(parents=True)
    (tmp_path / "full" / "checkpoints" / "step_000003").rename(part / "step_000003")
    resumed = train(cfg, "dmu", tmp_path / "part", data, old_model=old, resume=True)
    a, b = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    cached = adapter_features(old, full, data)
    cfg_psi = tiny_cfg("adapter.steps=60", "adapter.batch_size=24")
    psi = train_adapter(cfg_psi, tmp_path / "psi", cached, full)
    old_f, new_f = cached.tensors[0], cached.tensors[1]
    cos = lambda x: torch.nn.functional.cosine_similarity(x, new_f).mean()
    assert cos(psi(old_f).detach()) > cos(old_f) + 0.1  # ψ moves old features towards the new space


def _distributed_bct(out: str) -> None:
    import torch.distributed as dist
    from darwinian_upgrades import config as config_mod

    cfg = config_mod.load(
        "tiny", ["train.batch_size=8", "train.steps=3", "train.old_steps=2", "train.log_every=1"]
    )
    data = toy_images()
    torch.manual_seed(0)
    old = EmbeddingModel(6, backbone="tiny", width=0.5, embed_dim=32)
    old.seen_classes[:] = True
    before = {k: v.clone() for k, v in old.state_dict().items()}
    new = train(cfg, "bct", out, data, old_model=old, trackers=())
    rank = dist.get_rank()
    same_old = all(torch.equal(before[k], v) for k, v in old.state_dict().items())
    torch.save({"new": new.state_dict(), "old_same": same_old}, f"{out}/rank{rank}.pt")


def test_two_process_gloo_ranks_agree_and_old_stays_frozen(tmp_path):
    run_distributed(_distributed_bct, str(tmp_path))
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["old_same"] and r1["old_same"]
    assert all(torch.equal(r0["new"][k], r1["new"][k]) for k in r0["new"])
    saved = load_file(tmp_path / "model" / "model.safetensors")
    assert torch.equal(saved["fc_emb.weight"], r0["new"]["fc_emb.weight"])


def test_class_growth_gives_unseen_classes_their_mean_old_feature(tmp_path, tiny_cfg):
    from darwinian_upgrades.train import extract, old_classifier_rows
    from torch.utils.data import Subset

    data = toy_images()
    labels = data.tensors[1]
    seen_part = Subset(data, torch.nonzero(labels < 3).squeeze(1).tolist())
    old = train(tiny_cfg(), "old", tmp_path / "old", seen_part, num_classes=6)
    assert old.seen_classes.tolist() == [True, True, True, False, False, False]
    rows = old_classifier_rows(old, data, 6)
    feats, _, y = extract(old, data)
    assert torch.equal(rows[:3], old.fc_classifier.weight[:3])
    assert torch.allclose(rows[4], feats[y == 4].mean(0), atol=1e-5)


def test_joint_adapter_trains_with_the_new_model(tmp_path, tiny_cfg):
    data = toy_images()
    cfg = tiny_cfg("loss.adapter_mode=joint", "train.steps=6")
    old = train(cfg, "old", tmp_path / "old", data)
    train(cfg, "dmu", tmp_path / "dmu", data, old_model=old)
    psi = ForwardAdapter.from_pretrained(tmp_path / "dmu" / "adapter")
    assert psi.old_dim == 32 and psi.new_dim == 32
    rows = [
        json.loads(line)
        for line in (tmp_path / "dmu" / "logs" / "train" / "metrics.jsonl").read_text().splitlines()
    ]
    assert all({"ce", "sbc", "fa"} <= row.keys() for row in rows)
    assert rows[-1]["fa"] < rows[0]["fa"]  # ψ learns while the new model trains
