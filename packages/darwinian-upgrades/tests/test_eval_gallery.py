import math

import numpy as np
import pytest
import torch
from darwinian_upgrades.backfill import backfill_order, backfilled_gallery, curve_area, gallery_uncertainty
from darwinian_upgrades.evaluate import (
    map_at_k,
    map_at_k_gt,
    negative_flip_rate,
    revisitop_map,
    tar_at_far,
    template_features,
    tpir_at_fpir,
)
from darwinian_upgrades.gallery import GalleryStore, model_tag
from darwinian_upgrades.models import ForwardAdapter


def test_map_at_k_hand_made():
    # query 0: gallery ranked 2,0,1,3 with relevant {0, 3}: hits at ranks 2 and 4 -> (1/2 + 2/4) / 2 = 0.5
    # query 1: relevant {1}, ranked first -> 1; query 2: no ground truth -> 0
    sim = np.array([[0.5, 0.1, 0.9, 0.0], [0.0, 1.0, 0.2, 0.1], [0.3, 0.2, 0.1, 0.0]])
    assert map_at_k_gt(sim, [[0, 3], [1], []], k=100) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    # k = 2: query 0 has one hit at rank 2 -> (1/2) / min(2, 2) = 0.25
    assert map_at_k_gt(sim, [[0, 3], [1], []], k=2) == pytest.approx((0.25 + 1.0) / 3)
    assert map_at_k(sim[:2], [7, 8], [7, 8, 9, 7]) == pytest.approx(0.75)


def test_negative_flip_rate_counts_right_to_wrong_only():
    before = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    after = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    # labels: query 0 right->wrong (flip), query 1 wrong->right, query 2 right->right
    assert negative_flip_rate(before, after, [0, 0, 0], [0, 1]) == pytest.approx(1 / 3)


def test_revisitop_easy_medium_hard_hand_made():
    # ranking 0..4; easy {0}, hard {2}, junk {1}
    sim = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    gnd = [{"easy": [0], "hard": [2], "junk": [1]}]
    out = revisitop_map(sim, gnd)
    assert out["easy"] == pytest.approx(1.0)  # junk 1 and hard 2 removed; easy at rank 0
    assert out["medium"] == pytest.approx(1.0)  # junk removed -> positives at ranks 0, 1
    # hard: junk {1, 0} removed -> ranking 2,3,4; hard at rank 0 -> 1.0
    assert out["hard"] == pytest.approx(1.0)
    gnd2 = [{"easy": [4], "hard": [], "junk": []}]
    # one positive at rank 4: trapezoid (4/4? no: p0 = 0/4, p1 = 1/5) / 2
    assert revisitop_map(sim, gnd2)["easy"] == pytest.approx((0 / 4 + 1 / 5) / 2)
    assert math.isnan(revisitop_map(sim, gnd2)["hard"])


def test_tar_at_far_and_tpir_hand_made():
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.05, 0.0])
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    # FAR 0.2 of 5 impostors: one allowed above -> threshold 0.2 -> genuine above: 0.9, 0.8, 0.3
    assert tar_at_far(scores, labels, [0.2])[0.2] == pytest.approx(1.0)
    assert tar_at_far(scores, labels, [0.0])[0.0] == pytest.approx(2 / 3)  # threshold 0.7
    sim = np.array([[0.9, 0.1], [0.2, 0.6], [0.5, 0.4]])
    out = tpir_at_fpir(sim, [0, 1, 9], [0, 1], fpirs=[0.0, 1.0])
    assert out[0.0] == pytest.approx(1.0)  # threshold 0.5: 0.9 and 0.6 pass


def test_template_features_average_media_then_sum():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    ids, out = template_features(feats, [5, 5, 5], [0, 0, 1])
    expected = np.array([1.5, 0.5]) / np.linalg.norm([1.5, 0.5])
    assert ids.tolist() == [5] and np.allclose(out[0], expected)


def test_uncertainty_order_and_backfill():
    logits = torch.tensor([[10.0, 0.0, 0.0], [0.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    u = gallery_uncertainty(logits)
    assert u[1] == pytest.approx(1.0) and u[0] < u[2] < u[1]
    order = backfill_order(u)
    assert order.tolist() == [1, 2, 0]
    base, new = torch.zeros(3, 2), torch.ones(3, 2)
    half = backfilled_gallery(base, new, order, 0.5)  # floor(1.5) = 1 item: index 1
    assert half.sum(1).tolist() == [0.0, 2.0, 0.0]
    assert torch.equal(backfilled_gallery(base, new, order, 1.0), new)
    g = torch.Generator().manual_seed(0)
    assert sorted(backfill_order(u, strategy="random", generator=g).tolist()) == [0, 1, 2]
    assert curve_area([0, 0.5, 1], [0, 1, 1]) == pytest.approx(0.75)


def test_gallery_store_tags_adapter_and_chunked_search(tmp_path):
    torch.manual_seed(0)
    psi = ForwardAdapter(4, 4)
    feats = torch.randn(10, 4)
    store = GalleryStore(feats, [f"g{i}" for i in range(10)], "oldtag")
    store.save(tmp_path / "g")
    with pytest.raises(ValueError, match="oldtag.*newtag"):
        GalleryStore.load(tmp_path / "g", expect_tag="newtag")
    adapted = GalleryStore.load(tmp_path / "g", expect_tag="oldtag", adapter=psi)
    psi.eval()
    assert torch.allclose(adapted.features, psi(feats), atol=1e-6)
    assert adapted.adapter_tag == model_tag(psi)
    q = torch.randn(3, 4)
    s_full, i_full = store.search(q, k=4, chunk=100)
    s_chunk, i_chunk = store.search(q, k=4, chunk=3)
    assert torch.equal(i_full, i_chunk) and torch.allclose(s_full, s_chunk)
    expected = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(feats, dim=1).t()
    assert torch.equal(i_full, expected.argsort(dim=1, descending=True, stable=True)[:, :4])
