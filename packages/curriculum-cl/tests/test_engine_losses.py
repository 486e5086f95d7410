import numpy as np
import pytest
import torch
from curriculum_cl.engine import (
    FeatureSet,
    LearnerSettings,
    RunSpec,
    fisher_diagonal,
    fisher_per_sample,
    init_heads,
    run_heads,
)
from curriculum_cl.losses import ewc_penalty, lwf_distillation, masked_cross_entropy


def _blobs(n_per_class=24, classes=(0, 1, 2), dim=6, seed=0):
    """Non-negative class blobs, like post-ReLU CNN features."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand(10, dim, generator=gen) * 2
    xs, ys = [], []
    for c in classes:
        xs.append(torch.relu(centres[c] + 0.5 * torch.randn(n_per_class, dim, generator=gen)))
        ys.append(torch.full((n_per_class,), c))
    x, y = torch.cat(xs), torch.cat(ys)
    return FeatureSet(train=x, train_labels=y, test=x + 0.1, test_labels=y)


def test_ewc_fisher_and_penalty_hand_checkable():
    # one sample x = 1 of class 0, zero head with 2 outputs: p = (1/2, 1/2), dL/dW = dL/db = (p - onehot) x
    feats = FeatureSet(
        train=torch.ones(1, 1),
        train_labels=torch.tensor([0]),
        test=torch.ones(1, 1),
        test_labels=torch.tensor([0]),
    )
    W = torch.zeros(1, 2, 1, requires_grad=True)
    b = torch.zeros(1, 2, requires_grad=True)
    imp = fisher_diagonal(feats, [W, b], [np.array([0])], batch_size=4)
    np.testing.assert_allclose(imp[0].flatten().numpy(), [0.25, 0.25])
    np.testing.assert_allclose(imp[1].flatten().numpy(), [0.25, 0.25])
    # penalty = sum_k sum F (theta - anchor)^2, summed over separate experiences
    params = [torch.tensor([[1.0, 2.0]])]
    anchors = [[torch.tensor([[0.0, 0.0]])], [torch.tensor([[1.0, 1.0]])]]
    imps = [[torch.tensor([[0.5, 1.0]])], [torch.tensor([[2.0, 2.0]])]]
    assert ewc_penalty(params, anchors, imps).item() == pytest.approx(0.5 * 1 + 1.0 * 4 + 0 + 2.0 * 1)


def test_per_sample_fisher_is_the_mean_of_per_sample_squared_gradients():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 4, generator=gen), torch.tensor([0, 2, 1])
    feats = FeatureSet(train=x, train_labels=y, test=x, test_labels=y)
    W = torch.randn(1, 3, 4, generator=gen, requires_grad=True)
    b = torch.randn(1, 3, generator=gen, requires_grad=True)
    per_sample = fisher_per_sample(
        feats, [W, b], [np.arange(3)], batch_size=2
    )  # 2 minibatches: 2 + 1 samples
    one_by_one = [torch.zeros_like(W), torch.zeros_like(b)]
    for n in range(3):
        log_likelihood = torch.log_softmax(x[n] @ W[0].T + b[0], -1)[y[n]]
        for acc, g in zip(one_by_one, torch.autograd.grad(log_likelihood, [W, b])):
            acc += g.pow(2) / 3
    for got, want in zip(per_sample, one_by_one):
        torch.testing.assert_close(got, want)
    batch = fisher_diagonal(feats, [W, b], [np.arange(3)], batch_size=3)  # one minibatch of the 3 samples
    assert not torch.allclose(batch[0], per_sample[0])  # (mean gradient)^2 != mean of squared gradients
    assert (per_sample[0] >= batch[0] - 1e-7).all()  # Jensen: the per-sample Fisher dominates


def test_centred_drift_is_blind_to_a_common_logit_shift():
    from curriculum_cl.engine import RunResults

    feats = _blobs(n_per_class=16, classes=(0, 1), dim=4)
    runs = [RunSpec(0, 0, [[0], [1]])]
    result: RunResults = run_heads(
        feats, runs, "naive", LearnerSettings(batch_size=8, passes=2), record_drift=True
    )
    assert result.drift_centered[0, 1] < result.drift[0, 1]  # part of the naive drift is a common shift
    with pytest.raises(ValueError, match="ewc_fisher"):
        LearnerSettings(ewc_fisher="exact")


def test_lwf_distillation_matches_avalanche_kl_on_active_units():
    logits = torch.tensor([[[1.0, 2.0, 5.0], [0.0, 1.0, -3.0]]])
    prev = torch.tensor([[[2.0, 0.0, 9.0], [1.0, 1.0, 9.0]]])
    units = torch.tensor([[True, True, False]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    got = lwf_distillation(logits, prev, units, mask, T=2.0)
    # Avalanche 0.1: softmax over all units, then the previously active units are kept
    log_p = torch.log_softmax(logits[0] / 2, -1)[:, :2]
    q = torch.softmax(prev[0] / 2, -1)[:, :2]
    expected = torch.nn.functional.kl_div(log_p, q, reduction="batchmean")
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert lwf_distillation(prev, prev, units, mask, 1.0).item() == pytest.approx(0.0, abs=1e-7)


def test_masked_cross_entropy_ignores_padding():
    logits = torch.randn(2, 3, 4)
    y = torch.tensor([[0, 1, 2], [3, 3, 0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    got = masked_cross_entropy(logits, y, mask)
    ref0 = torch.nn.functional.cross_entropy(logits[0, :2], y[0, :2])
    assert got[0].item() == pytest.approx(ref0.item(), rel=1e-6)


def test_batched_naive_head_matches_plain_torch_loop():
    feats = _blobs()
    settings = LearnerSettings(num_outputs=10, batch_size=8, passes=2)
    run = RunSpec(curriculum_id=3, seed=1, experiences=[[2], [0], [1]])
    res = run_heads(feats, [run], "naive", settings, base_seed=0)
    # reference: nn.Linear + torch.optim.Adam re-created per experience, same batches
    W, b = init_heads([0 * 100_003 + 1], 10, feats.train.shape[-1])
    head = torch.nn.Linear(6, 10)
    head.weight.data.copy_(W[0])
    head.bias.data.copy_(b[0])
    rng = np.random.default_rng([0, 1, 3])
    labels = feats.train_labels.numpy()
    for exp in run.experiences:
        opt = torch.optim.Adam(head.parameters(), lr=1e-3)
        pool = np.concatenate([np.flatnonzero(labels == c) for c in exp])
        for _ in range(2):
            order = rng.permutation(pool)
            for i in range(0, len(order), 8):
                idx = torch.from_numpy(order[i : i + 8])
                loss = torch.nn.functional.cross_entropy(head(feats.train[0][idx]), feats.train_labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    with torch.no_grad():
        pred = head(feats.test).argmax(-1)
    final = [(pred[feats.test_labels == c] == c).float().mean().item() for c in (2, 0, 1)]
    np.testing.assert_allclose(res.acc[0, -1], final, atol=1e-6)


def test_batched_runs_equal_individual_runs():
    feats = _blobs(n_per_class=12, classes=(0, 1, 2))
    settings = LearnerSettings(
        batch_size=8, passes=1, lr=0.02, ewc_lambda=50.0, lwf_alpha=[0.0, 1.0, 2.0], si_lambda=5.0
    )
    # runs of unequal length: class 1 has fewer samples, so runs sit out some steps of the batch
    feats.train, feats.train_labels = feats.train[:, :30], feats.train_labels[:30]
    runs = [RunSpec(0, 0, [[0], [1], [2]]), RunSpec(5, 1, [[2], [1], [0]])]
    for algorithm in ("naive", "ewc", "lwf", "si"):
        together = run_heads(feats, runs, algorithm, settings).acc
        alone = np.concatenate([run_heads(feats, [r], algorithm, settings).acc for r in runs])
        np.testing.assert_allclose(together, alone, atol=1e-5, err_msg=algorithm)


def test_strategies_reduce_forgetting_in_the_right_direction():
    feats = _blobs(n_per_class=40, classes=(0, 1, 2, 3, 4), dim=8)
    exps = [[0], [1], [2], [3], [4]]
    runs = [RunSpec(0, s, exps) for s in range(3)]
    kw = dict(batch_size=8, passes=5, lr=0.01)
    naive = run_heads(feats, runs, "naive", LearnerSettings(**kw), record_drift=True)
    ewc = run_heads(feats, runs, "ewc", LearnerSettings(**kw, ewc_lambda=1000.0))
    lwf = run_heads(feats, runs, "lwf", LearnerSettings(**kw, lwf_alpha=[10.0]), record_drift=True)
    replay = run_heads(feats, runs, "replay", LearnerSettings(**kw, replay_fraction=0.2))
    forgetting = lambda acc: (acc[:, 0, 0] - acc[:, -1, 0]).mean()
    assert forgetting(naive.acc) > 0.9  # the catastrophic-forgetting regime
    assert forgetting(ewc.acc) < forgetting(naive.acc) - 0.3
    assert np.nanmean(lwf.drift) < np.nanmean(naive.drift)
    assert replay.acc[:, -1].mean() > naive.acc[:, -1].mean()
