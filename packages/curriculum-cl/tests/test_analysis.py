import numpy as np
import pytest
from curriculum_cl import analysis


def test_ranking_string_is_position_major_and_bins_follow_the_official_quirk():
    orders = [(0, 1, 2), (1, 0, 2), (2, 1, 0)]
    scores = np.array([1.0, 3.0, 2.0])
    # sorted by score: (1,0,2), (2,1,0), (0,1,2) -> first units "120", second "011", third "202"
    assert analysis.ranking_string(orders, scores) == "120011202"
    # histogram of [1, 3, 2] in 2 bins: [1, 2) holds 1 curriculum, [2, 3] holds 2
    official = analysis.bin_slices(scores, 2, 3, official_bin_order=True)
    assert official == [
        slice(0, 3),
        slice(3, 9),
    ]  # sizes walked from the lowest bin, string from the highest F
    consistent = analysis.bin_slices(scores, 2, 3, official_bin_order=False)
    assert consistent == [slice(6, 9), slice(0, 6)]


def test_binned_hamming_hand_example():
    a, b = "120011202", "102011220"
    sa = [slice(0, 3), slice(3, 9)]
    sb = [slice(0, 6), slice(6, 9)]
    np.testing.assert_allclose(analysis.binned_hamming(a, b, sa), [2, 2])
    # with two binnings: the mean over a's and b's slices
    np.testing.assert_allclose(analysis.binned_hamming(a, b, sa, sb), [(2 + 2) / 2, (2 + 2) / 2])
    assert analysis.hamming("abc", "abd") == 1


def test_hamming_agreement_identical_rankings_agree_best():
    orders = [tuple(p) for p in __import__("itertools").permutations(range(4))]
    rng = np.random.default_rng(0)
    f = rng.random(len(orders))
    views = analysis.hamming_agreement({"a": f, "b": f + 1e-9}, f, orders, n_bins=3, n_random=20)
    assert views["between_raw"] == 0 and views["reference_raw"]["a"] == 0
    assert views["random_raw"]["a"] > 0
    assert views["between"] + views["reference"]["a"] / 2 + views["reference"]["b"] / 2 + (
        views["random"]["a"] + views["random"]["b"]
    ) / 2 == pytest.approx(1.0)


def test_overlap_recall_spearman_anova():
    f = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -1.0, -2.0])
    ref = f.copy()
    assert analysis.recall_at_k(f, ref, [1, 3]) == {1: 1.0, 3: 1.0}
    assert analysis.recall_at_k(f, -ref, [2]) == {2: 0.0}
    hits, chance = analysis.topk_overlap(f, ref, 2, percentile=75)
    assert hits == 2 and chance == pytest.approx(0.5)
    assert analysis.spearman(f, ref) == pytest.approx(1.0)
    # a strong curriculum effect gives a tiny ANOVA p; shuffled labels give uniform p-values
    rng = np.random.default_rng(0)
    cids = np.repeat(np.arange(40), 3)
    effect = rng.normal(size=40)[cids] * 3 + rng.normal(size=120)
    assert analysis.anova_p(effect, cids) < 1e-6
    null = analysis.null_anova_pvalues(effect, cids, 200, seed=1)
    assert analysis.ks_uniform_p(null) > 0.01
    assert 0.3 < null.mean() < 0.7


def test_human_csv(tmp_path):
    path = tmp_path / "humans.csv"
    path.write_text("curriculum_id,phase,accuracy\n4,1,0.9\n4,4,0.6\n4,4,0.8\n15,4,0.5\n")
    assert analysis.load_human_scores(path) == {4: pytest.approx(0.7), 15: 0.5}
    path.write_text("curriculum,phase,accuracy\n4,1,0.9\n")
    with pytest.raises(ValueError, match="curriculum_id"):
        analysis.load_human_scores(path)
