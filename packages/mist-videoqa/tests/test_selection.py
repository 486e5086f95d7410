import pytest
import torch
from mist_videoqa.models.selection import cascade_select, gumbel_topk, segment_features


def test_segment_features_is_mean_of_unit_frames_not_renormalised():
    frames = torch.tensor([[[3.0, 0.0], [0.0, 2.0], [1.0, 0.0], [1.0, 0.0]]])  # 4 frames, 2 segments
    seg = segment_features(frames, 2)
    assert torch.allclose(seg, torch.tensor([[[0.5, 0.5], [1.0, 0.0]]]))
    assert seg[0, 0].norm() < 0.99  # the mean of two orthogonal unit vectors is not re-normalised
    with pytest.raises(ValueError):
        segment_features(frames, 3)


def _hand_made():
    # 3 segments x 2 frames, 4 regions per frame, region r of frame t holds the value 10*t + r.
    regions = (10 * torch.arange(6.0)[:, None] + torch.arange(4.0)[None, :]).view(1, 6, 4, 1)
    seg_scores = torch.tensor([[0.1, 2.0, 1.0]])  # best segment 1, then 2
    region_scores = torch.tensor(
        [[[0, 1, 2, 3], [3, 2, 1, 0], [0, 5, 4, 9], [1, 0, 0, 2], [9, 8, 7, 6], [0, 0.5, 1, 0.2]]]
    )
    return seg_scores, region_scores.float(), regions


def test_cascade_select_order_and_exact_hard_values():
    seg_scores, region_scores, regions = _hand_made()
    sel = cascade_select(seg_scores, region_scores, regions, topk=2, topj=2)
    assert sel.segments.tolist() == [[1, 2]]  # descending score, no repeats
    # segment 1 = frames 2, 3; segment 2 = frames 4, 5; in each frame the two best regions, best first
    assert sel.regions.tolist() == [[[3, 1], [3, 0], [0, 1], [2, 1]]]
    expected = torch.tensor([23.0, 21.0, 33.0, 30.0, 40.0, 41.0, 52.0, 51.0]).view(1, 8, 1)
    assert torch.equal(sel.tokens, expected)  # the forward pass is exactly the hard selection


def test_cascade_select_gradients_reach_both_score_tensors():
    seg_scores, region_scores, regions = _hand_made()
    seg_scores.requires_grad_(True)
    region_scores.requires_grad_(True)
    regions = regions.clone().requires_grad_(True)
    sel = cascade_select(seg_scores, region_scores, regions, topk=2, topj=2)
    (sel.tokens * torch.arange(1.0, 9.0).view(1, 8, 1)).sum().backward()
    assert seg_scores.grad.abs().sum() > 0
    assert region_scores.grad.abs().sum() > 0
    assert regions.grad[0, 2, 3, 0] == 1.0 and regions.grad[0, 0].abs().sum() == 0  # unselected: no gradient


def test_cascade_select_rejects_misfit_shapes():
    seg_scores, region_scores, regions = _hand_made()
    with pytest.raises(ValueError):
        cascade_select(seg_scores, region_scores[:, :5], regions, topk=1, topj=1)
    with pytest.raises(ValueError):
        cascade_select(seg_scores, region_scores, regions, topk=4, topj=1)


def test_gumbel_topk_modes():
    torch.manual_seed(0)
    scores = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    hard = gumbel_topk(scores, 2, mode="topk", training=False)
    assert torch.equal(hard, torch.tensor([[[0.0, 1, 0, 0], [0, 0, 0, 1]]]))  # deterministic, no repeats
    st = gumbel_topk(scores, 3, mode="topk", relax="st", training=True)
    assert set(st.unique().tolist()) <= {0.0, 1.0} and torch.allclose(st.sum(-1), torch.ones(1, 3))
    peaked = torch.tensor([[0.0, 9.0, 0.0, 0.0, 0.0]], requires_grad=True)  # one candidate dominates
    for _ in range(20):  # k distinct picks (the dominant one first), never a repeat
        picks = gumbel_topk(peaked, 3, mode="topk", relax="st", training=True)
        assert picks.argmax(-1)[0, 0] == 1 and picks.argmax(-1).unique().numel() == 3
    (picks * torch.arange(5.0)).sum().backward()
    assert peaked.grad.abs().sum() > 0  # straight-through
    soft = gumbel_topk(scores, 2, mode="topk", relax="soft", training=True)
    assert ((soft > 0) & (soft < 1)).all() and torch.allclose(soft.sum(-1), torch.ones(1, 2))
    # official: probabilities fed as logits, so the draws are nearly uniform blends and differ call to call
    a = gumbel_topk(scores, 2, mode="official", training=False)
    b = gumbel_topk(scores, 2, mode="official", training=False)
    assert not torch.equal(a, b)
    probs = scores.softmax(-1)
    many = torch.stack([gumbel_topk(scores, 1, mode="official")[0, 0] for _ in range(2000)]).mean(0)
    # E[softmax(p + g)] is flattened towards uniform compared with p itself
    assert many.max() < probs.max() and many.min() > probs.min()


def test_soft_subset_relaxation_moves_the_second_pick_off_the_best_candidate():
    torch.manual_seed(0)
    confident = torch.tensor([[0.0, 12.0, 9.0, 0.0, 0.0]], requires_grad=True)
    repeat = torch.stack([gumbel_topk(confident, 2, relax="soft") for _ in range(50)])
    subset = torch.stack([gumbel_topk(confident, 2, relax="subset") for _ in range(50)])
    # with replacement the second pick is the best candidate again; without, its mass moves to the runner-up
    assert repeat[:, 0, 1, 1].mean() > 0.8 and subset[:, 0, 1, 1].mean() < 0.6
    assert subset[:, 0, 1, 2].mean() > 0.4 and subset[:, 0, 0, 1].mean() > 0.8
    assert ((subset > 0) & (subset < 1)).all() and torch.allclose(subset.sum(-1), torch.ones(50, 1, 2))
    subset[:, 0, 1, 2].sum().backward()
    assert confident.grad.abs().sum() > 0


def test_gumbel_topk_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        gumbel_topk(torch.zeros(1, 3), 1, mode="greedy")
