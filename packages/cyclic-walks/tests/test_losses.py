import math

import torch
import torch.nn.functional as F
from cyclic_walks.losses import (
    cyclic_walk_losses,
    feature_affinity_target,
    positional_prior,
    walk_transitions,
)


def clustered(k: int = 3, per_cluster: int = 8, dim: int = 16, noise: float = 0.01, seed: int = 0):
    """Features in k tight clusters around orthogonal centres; slots at the centres."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(dim)[:k]
    labels = torch.arange(k).repeat_interleave(per_cluster)
    features = centres[labels] + noise * torch.randn(len(labels), dim, generator=g)
    return features[None], centres[None].clone(), labels


def test_transitions_are_row_stochastic():
    g = torch.Generator().manual_seed(0)
    f, s = torch.randn(2, 10, 8, generator=g), torch.randn(2, 4, 8, generator=g)
    a_fs, a_sf = walk_transitions(f, s, 0.1)
    assert a_fs.shape == (2, 10, 4) and a_sf.shape == (2, 4, 10)
    torch.testing.assert_close(a_fs.sum(-1), torch.ones(2, 10))
    torch.testing.assert_close(a_sf.sum(-1), torch.ones(2, 4))
    assert (a_fs >= 0).all() and (a_sf >= 0).all()


def test_losses_near_minimum_when_slots_sit_at_cluster_centres():
    features, slots, labels = clustered()
    losses = cyclic_walk_losses(features, slots)
    k, n = slots.shape[1], features.shape[1]
    assert losses.wpw.item() < 1e-3  # T1 ~ identity
    # The P-W-P cross-entropy is bounded below by the entropy of its target: log(cluster size) per row, / N.
    target = feature_affinity_target(features)
    entropy = -(target * torch.log(target + 1e-12)).sum() / (n * n)
    assert abs(losses.pwp.item() - entropy.item()) < 1e-3
    torch.testing.assert_close(entropy, torch.tensor(math.log(8) / n), atol=1e-4, rtol=0)
    # Random slots are clearly worse on both terms.
    random_slots = torch.randn(1, k, features.shape[-1], generator=torch.Generator().manual_seed(1))
    worse = cyclic_walk_losses(features, random_slots)
    assert worse.wpw > losses.wpw + 0.05 and worse.pwp > losses.pwp + 1e-3


def test_losses_invariant_to_slot_permutation():
    g = torch.Generator().manual_seed(3)
    f, s = torch.randn(2, 12, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    perm = torch.tensor([3, 0, 4, 1, 2])
    a, b = cyclic_walk_losses(f, s), cyclic_walk_losses(f, s[:, perm])
    torch.testing.assert_close(a.wpw, b.wpw)
    torch.testing.assert_close(a.pwp, b.pwp)


def test_normalisation_matches_direct_formula():
    g = torch.Generator().manual_seed(4)
    B, N, K, C, tau, thr = 2, 6, 3, 5, 0.1, 0.7
    f, s = torch.randn(B, N, C, generator=g), torch.randn(B, K, C, generator=g)
    wpw, pwp = 0.0, 0.0
    for b in range(B):
        fn, sn = F.normalize(f[b], dim=-1), F.normalize(s[b], dim=-1)
        sim = fn @ sn.T
        a_fs = torch.softmax(sim / tau, dim=1)
        a_sf = torch.softmax(sim.T / tau, dim=1)
        t1, t2 = a_sf @ a_fs, a_fs @ a_sf
        for k in range(K):
            wpw += -math.log(t1[k, k].item() + 1e-4)
        cos = fn @ fn.T
        for i in range(N):
            logits = [(cos[i, j].item() if cos[i, j] >= thr else -1e4) / tau for j in range(N)]
            m = torch.softmax(torch.tensor(logits), dim=0)
            for j in range(N):
                pwp += -m[j].item() * math.log(t2[i, j].item() + 1e-4)
    losses = cyclic_walk_losses(f, s, tau, thr)
    assert math.isclose(losses.wpw.item(), wpw / (B * K * K), rel_tol=1e-4)
    assert math.isclose(losses.pwp.item(), pwp / (B * N * N), rel_tol=1e-4)


def test_affinity_target_thresholds_and_position_prior():
    f = torch.tensor([[[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]])
    m = feature_affinity_target(f, 0.1, 0.7)
    assert m[0, 0, 2] < 1e-6 and m[0, 2, 2] > 0.999  # below-threshold pairs get no mass
    torch.testing.assert_close(m.sum(-1), torch.ones(1, 3))
    pe = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    prior = positional_prior(pe)
    mixed = feature_affinity_target(f, 0.1, 0.7, prior)
    torch.testing.assert_close(mixed, 0.5 * (m + prior[None]))


def test_gradient_reaches_slots_only():
    g = torch.Generator().manual_seed(5)
    f = torch.randn(1, 6, 4, generator=g, requires_grad=True)
    s = torch.randn(1, 2, 4, generator=g, requires_grad=True)
    loss = sum(cyclic_walk_losses(f, s))
    loss.backward()
    assert f.grad is None and s.grad is not None and s.grad.abs().sum() > 0
