import json
import shutil

import torch
from safetensors.torch import load_file
from stprivacy.losses import privacy_loss, reconstruction_loss, sparsity_loss
from stprivacy.train import train

from visioncore.training import run_distributed


def test_sparsity_loss_targets_cumulative_ratios():
    full = [torch.ones(2, 4, 16)] * 3
    assert torch.isclose(sparsity_loss(full, 0.5), torch.tensor(((0.5) ** 2 + 0.75**2 + 0.875**2) / 3))
    exact = [torch.zeros(2, 4, 16) for _ in range(3)]
    for s, d in enumerate(exact):
        d[..., : int(16 * 0.5 ** (s + 1))] = 1
    assert sparsity_loss(exact, 0.5) == 0


def test_privacy_loss_modes():
    labels = torch.tensor([[1, 0, 1, 0, 1]])
    confident = torch.tensor([[9.0, -9.0, 9.0, -9.0, 9.0]])
    chance = torch.zeros(1, 5)
    # neg_bce: lower when the attacker is wrong, bounded below by -clip
    assert privacy_loss(-confident, labels, "neg_bce") < privacy_loss(confident, labels, "neg_bce")
    assert privacy_loss(-confident, labels, "neg_bce", clip=0.7) == -0.7
    # uniform: minimal at probability 0.5
    assert privacy_loss(chance, labels, "uniform") < privacy_loss(confident, labels, "uniform")


def test_reconstruction_loss_counts_kept_tubelets_and_never_moves_keep():
    target = torch.randn(1, 3, 8, 32, 32)
    output = target.clone()
    output[:, :, :2, :8, :8] += 1.0  # tubelet 0 wrong
    keep = torch.ones(1, 64, requires_grad=True)
    assert reconstruction_loss(output, target, keep, (2, 8, 8)) > 0
    dropped = torch.ones(1, 64)
    dropped[0, 0] = 0
    assert reconstruction_loss(output, target, dropped, (2, 8, 8)) == 0
    assert not reconstruction_loss(
        output, target, keep, (2, 8, 8)
    ).requires_grad  # detached: cannot drive keep to 0


def test_phases_write_models_logs_and_freeze_the_anonymizer(trained_run):
    for phase in ("init", "privacy", "adversarial"):
        assert (trained_run / phase / "model" / "model.safetensors").is_file()
        assert (trained_run / phase / "config.yaml").is_file()
    assert (trained_run / "adversarial" / "adversary_1" / "model.safetensors").is_file()
    init = load_file(trained_run / "init" / "model" / "model.safetensors")
    adv = load_file(trained_run / "adversarial" / "model" / "model.safetensors")
    # the adversarial phase moves only the PAB (blocks >= last pruning location 3, recon norm/head)
    for key in init:
        moved = not torch.equal(init[key], adv[key])
        assert (
            moved == key.startswith(("blocks.3.", "blocks.4.", "blocks.5.", "norm_recon", "head_recon"))
            or not moved
        )
        if key.startswith(("predictors.", "patch_embed", "pos_embed", "blocks.0.")):
            assert not moved, key
    assert not torch.equal(init["head_recon.weight"], adv["head_recon.weight"])
    rows = [
        json.loads(line)
        for line in (trained_run / "init" / "logs" / "train" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [2, 4] and all("sparsity" in r for r in rows)


def _resume_matches(run, phase, cfg):
    final = load_file(run / phase / "model" / "model.safetensors")
    shutil.rmtree(run / phase / "checkpoints" / "step_000004")
    shutil.rmtree(run / phase / "model")
    train(cfg, run, phase, resume=True, cpu=True)  # from step 2
    resumed = load_file(run / phase / "model" / "model.safetensors")
    assert final.keys() == resumed.keys()
    for key in final:
        assert torch.equal(final[key], resumed[key]), key


def test_resume_is_bit_exact_for_init_and_adversarial(trained_run, synthetic_root, make_config, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    _resume_matches(run, "init", make_config(synthetic_root))
    _resume_matches(
        run, "adversarial", make_config(synthetic_root)
    )  # crosses a restart of the adversaries at step 2


def _two_process_run(cfg, out):
    train(cfg, out, "all", cpu=True)


def test_all_phases_run_in_two_gloo_processes(synthetic_root, make_config, tmp_path):
    cfg = make_config(
        synthetic_root, init_steps=2, privacy_steps=2, adversarial_steps=2, batch_size=2, log_every=1
    )
    run_distributed(_two_process_run, cfg, tmp_path)
    for phase in ("init", "privacy", "adversarial"):
        assert (tmp_path / phase / "model" / "model.safetensors").is_file()
    rows = (tmp_path / "adversarial" / "logs" / "train" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [1, 2]
