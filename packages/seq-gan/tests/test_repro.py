import torch
from seq_gan.config import ReproConfig, load
from seq_gan.repro import GATES, _batches, _shared_hash, gate_results


def test_repro_config_and_batch_order():
    cfg = load(ReproConfig, "repro")
    assert cfg.seeds == [0, 1, 2] and cfg.tokenizer.resolution == cfg.canvas == 16
    assert 2 ** (len(cfg.tokenizer.ch_mult) - 1) == 4  # 4x4 tokens
    # one batch order per seed, shared by every tokenizer of the seed; different across seeds
    a, b = list(_batches(100, 32, 7, seed=0)), list(_batches(100, 32, 7, seed=0))
    assert len(a) == 7 and all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], next(_batches(100, 32, 1, seed=1)))
    assert all(len(set(x.tolist())) == 32 for x in a)
    # the fixed nets are cached under a key of the settings that decide them
    assert _shared_hash(cfg) != _shared_hash(load(ReproConfig, "repro", ["semantic_steps=10"]))
    assert _shared_hash(cfg) == _shared_hash(load(ReproConfig, "repro", ["tokenizer_steps=10"]))


def test_gates_read_the_issue_thresholds():
    m = dict(rec_class_acc_alpha0=0.8, rec_class_acc_alpha1=0.8, probe_acc_alpha0=0.20, probe_acc_alpha1=0.23,
             sample_class_acc_alpha0=0.40, sample_class_acc_alpha1=0.45, gfid_alpha0=2.0, gfid_alpha1=2.0,
             tokens_identical_p2=1.0, l1_alpha1=0.3, l1_alpha1_p2=0.29, plow_alpha1=1.0, plow_alpha1_p2=0.95,
             usage_alpha1=0.8, usage_gamma0=0.7, probe_acc_shuffled=0.2, sample_class_acc_shuffled=0.2,
             eval_net_acc=0.9)  # fmt: skip
    assert all(ok for _, ok in gate_results(m)) and len(GATES) == 13
    worse = m | {"probe_acc_alpha1": 0.229, "plow_alpha1_p2": 0.951, "tokens_identical_p2": 0.999}
    missed = {name for name, ok in gate_results(worse) if not ok}
    assert missed == {"probe_acc_alpha1 >= probe_acc_alpha0 + 0.03", "plow_alpha1_p2 <= 0.95 * plow_alpha1",
                      "tokens_identical_p2 == 1"}  # fmt: skip
