"""visioncore.metrics against hand-worked examples and independently computed references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu
from sklearn.metrics import adjusted_rand_score, average_precision_score, jaccard_score

from visioncore import metrics as M

RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------------------------- classification
def test_roc_auc_ties_get_half_credit_by_hand():
    # positives {0.4, 0.8} vs negatives {0.1, 0.4}: 1 + 0.5 (tie) + 1 + 1 over 4 pairs
    assert M.roc_auc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1]) == pytest.approx(3.5 / 4)
    assert M.roc_auc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    assert M.roc_auc([0.9, 0.1], [0, 1]) == pytest.approx(0.0)


def test_roc_auc_matches_mann_whitney_with_ties():
    scores = RNG.integers(0, 5, size=200).astype(float)  # many ties
    labels = RNG.integers(0, 2, size=200)
    u = mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    expected = u / ((labels == 1).sum() * (labels == 0).sum())
    assert M.roc_auc(torch.tensor(scores), torch.tensor(labels)) == pytest.approx(expected)
    assert isinstance(M.roc_auc(scores, labels.astype(bool)), float)


def test_average_precision_by_hand():
    # precision at the two positives: 1/1 and 2/3
    assert M.average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    # tied scores are one threshold: (R=1/2, P=1/2) then (R=1, P=2/3)
    assert M.average_precision([0.5, 0.5, 0.2], [1, 0, 1]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_average_precision_matches_rank_formula_without_ties():
    scores, labels = RNG.normal(size=300), RNG.integers(0, 2, size=300)
    order = np.argsort(-scores)
    hits = labels[order]
    precision_at_hits = np.cumsum(hits)[hits == 1] / (np.flatnonzero(hits) + 1)
    assert M.average_precision(scores, labels) == pytest.approx(precision_at_hits.mean())


def test_accuracy_ids_and_logits():
    assert M.accuracy([0, 2, 1, 1], [0, 1, 1, 1]) == pytest.approx(0.75)
    logits = torch.tensor([[2.0, 0.1, 0.0], [0.0, 0.0, 3.0], [0.0, 1.0, 0.5]])
    assert M.accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    assert M.accuracy(np.array([1.0, 0.0]), [1, 1]) == pytest.approx(0.5)  # whole-number floats are ids


def test_video_level_auc_by_hand():
    ids = ["a", "a", "b", "c", "c", "d"]
    scores = [0.2, 0.4, 0.9, 0.1, 0.7, 0.5]
    labels = [0, 0, 1, 1, 1, 0]
    # video means a=0.3 (0), b=0.9 (1), c=0.4 (1), d=0.5 (0): pairs 1, 1, 1, 0 -> 0.75
    assert M.video_level_auc(scores, ids, labels) == pytest.approx(0.75)
    assert M.video_level_auc(torch.tensor(scores), torch.tensor([0, 0, 1, 2, 2, 3]), labels) == pytest.approx(
        0.75
    )
    assert M.roc_auc(scores, labels) != pytest.approx(0.75)  # clip-level differs


@pytest.mark.parametrize(
    ("fn", "args", "match"),
    [
        (M.roc_auc, ([0.1, 0.2], [0, 1, 1]), "length mismatch"),
        (M.roc_auc, ([0.1, 0.2], [1, 1]), "only one class"),
        (M.roc_auc, ([0.1, float("nan")], [0, 1]), "NaN or inf"),
        (M.roc_auc, ([0.1, float("inf")], [0, 1]), "NaN or inf"),
        (M.roc_auc, ([], []), "empty"),
        (M.roc_auc, ([0.1, 0.2, 0.3], [0, 1, 2]), "binary"),
        (M.roc_auc, ([[0.1, 0.2]], [[0, 1]]), "1-D"),
        (M.average_precision, ([0.1, 0.2], [0, 0]), "only one class"),
        (M.average_precision, ([0.1], [0, 1]), "length mismatch"),
        (M.average_precision, ([float("nan"), 0.2], [0, 1]), "NaN or inf"),
        (M.average_precision, ([], []), "empty"),
        (M.accuracy, ([0, 1], [0, 1, 1]), "length mismatch"),
        (M.accuracy, ([], []), "empty"),
        (M.accuracy, (np.zeros((2, 2, 2)), [0, 1]), "class ids"),
        (M.accuracy, ([0.5, 1.0], [0, 1]), "integer"),
        (M.accuracy, (np.array([[0.0, np.nan]]), [0]), "NaN or inf"),
        (M.video_level_auc, ([0.1, 0.2, 0.3], [0, 0, 1], [0, 1, 1]), "disagree within video"),
        (M.video_level_auc, ([0.1, 0.2], [0, 1, 2], [0, 1]), "length mismatch"),
        (M.video_level_auc, ([0.1, 0.2, 0.3], [0, 0, 1], [1, 1, 1]), "only one class"),
    ],
)
def test_classification_invalid_input(fn, args, match):
    with pytest.raises(ValueError, match=match):
        fn(*args)


# ------------------------------------------------------------------------------------------------ segmentation
def test_ari_by_hand_and_vs_sklearn():
    # contingency [[2, 0, 0], [0, 1, 1]]: index 1, expected 2*1/6, max 1.5 -> (1 - 1/3) / (1.5 - 1/3) = 4/7
    assert M.adjusted_rand_index([[0, 0], [1, 1]], [[0, 0], [1, 2]]) == pytest.approx(4 / 7)
    true = RNG.integers(0, 4, size=(3, 8, 8))
    pred = RNG.integers(0, 5, size=(3, 8, 8))
    expected = np.mean([adjusted_rand_score(t.ravel(), p.ravel()) for t, p in zip(true, pred)])
    assert M.adjusted_rand_index(torch.tensor(true), torch.tensor(pred)) == pytest.approx(expected)


def test_fg_ari_ignores_background_and_matches_sklearn_on_fg_pixels():
    true = np.array([[0, 0, 1, 1], [0, 0, 2, 2]])
    pred = np.array([[5, 7, 3, 3], [9, 9, 4, 4]])  # background split into junk, objects exact
    assert M.adjusted_rand_index(true, pred, foreground_only=True) == pytest.approx(1.0)
    assert M.adjusted_rand_index(true, pred) < 1.0
    true = RNG.integers(0, 4, size=(2, 10, 10))
    pred = RNG.integers(0, 4, size=(2, 10, 10))
    fg = [adjusted_rand_score(t[t != 0], p[t != 0]) for t, p in zip(true, pred)]
    assert M.adjusted_rand_index(true, pred, foreground_only=True) == pytest.approx(np.mean(fg))


def test_ari_drops_ignore_index():
    true = np.array([[1, 1, 255], [2, 2, 255]])
    pred = np.array([[0, 0, 1], [1, 1, 0]])
    assert M.adjusted_rand_index(true, pred) == pytest.approx(1.0)
    assert M.adjusted_rand_index(true, pred, ignore_index=-1) < 1.0
    assert M.adjusted_rand_index(np.where(true == 255, 7, true), pred, ignore_index=7) == pytest.approx(1.0)


def test_ari_degenerate_cases():
    good = np.array([[[0, 1], [1, 2]]])
    background_only = np.zeros((1, 2, 2), dtype=int)
    true = np.concatenate([good, background_only])
    pred = np.concatenate([good, RNG.integers(0, 3, size=(1, 2, 2))])
    assert M.adjusted_rand_index(true, pred, foreground_only=True) == pytest.approx(1.0)  # image 2 skipped
    with pytest.raises(ValueError, match="no image has foreground pixels"):
        M.adjusted_rand_index(background_only, background_only, foreground_only=True)
    with pytest.raises(ValueError, match="no image has pixels"):
        M.adjusted_rand_index(np.full((2, 2), 255), np.zeros((2, 2)))
    one = np.ones((3, 3), dtype=int)
    assert M.adjusted_rand_index(one, one * 4) == 1.0  # sklearn: both a single cluster -> 1.0
    assert M.adjusted_rand_index(one, np.arange(9).reshape(3, 3)) == pytest.approx(0.0)


def _mbo_reference(true: np.ndarray, pred: np.ndarray, ignore_index: int = 255) -> float:
    per_image = []
    for t, p in zip(true, pred):
        valid = t != ignore_index
        best = []
        for a in np.unique(t[valid]):
            if a == 0:
                continue
            ta = (t == a) & valid
            ious = [((ta & (p == b)).sum()) / ((ta | ((p == b) & valid)).sum()) for b in np.unique(p[valid])]
            best.append(max(ious))
        if best:
            per_image.append(np.mean(best))
    return float(np.mean(per_image))


def test_mean_best_overlap_by_hand():
    true = np.array([[0, 0, 1, 1], [0, 2, 2, 2]])
    pred = np.array([[0, 0, 1, 1], [1, 1, 2, 2]])
    # true 1: best IoU 2/4 (pred 1); true 2: best IoU 2/3 (pred 2); background not scored
    assert M.mean_best_overlap(true, pred) == pytest.approx((0.5 + 2 / 3) / 2)
    batch_true = np.stack([true, true])
    batch_pred = np.stack([pred, true])  # second image perfect
    assert M.mean_best_overlap(batch_true, batch_pred) == pytest.approx(((0.5 + 2 / 3) / 2 + 1) / 2)


def test_mean_best_overlap_vs_bruteforce_and_ignore_index():
    true = RNG.integers(0, 4, size=(3, 9, 9))
    pred = RNG.integers(0, 6, size=(3, 9, 9))
    assert M.mean_best_overlap(true, pred) == pytest.approx(_mbo_reference(true, pred))
    true[:, :, :3] = 255
    assert M.mean_best_overlap(true, pred) == pytest.approx(_mbo_reference(true, pred))
    t = np.array([[1, 1, 255, 255]])
    assert M.mean_best_overlap(t, np.array([[0, 0, 0, 0]])) == pytest.approx(
        1.0
    )  # ignored pixels not in union


def test_mean_best_overlap_skips_images_without_foreground():
    true = np.stack([np.array([[1, 1], [0, 0]]), np.zeros((2, 2), dtype=int)])
    pred = np.stack([np.array([[3, 3], [0, 0]]), np.ones((2, 2), dtype=int)])
    assert M.mean_best_overlap(true, pred) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no image has a true foreground"):
        M.mean_best_overlap(np.zeros((2, 2)), np.zeros((2, 2)))


def test_miou_by_hand_with_absent_class():
    true = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    # class 0: 1/3, class 1: 2/3, class 2: 1/2; class 3 absent from both and left out
    assert M.miou(true, pred, num_classes=4) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    # a class only in the prediction counts with IoU 0
    assert M.miou([[0, 0]], [[0, 1]], num_classes=3) == pytest.approx((1 / 2 + 0) / 2)


def test_miou_accumulates_over_the_set_and_matches_sklearn():
    true = np.array([[[0, 0], [0, 0]], [[1, 1], [1, 1]]])
    pred = np.array([[[0, 0], [0, 1]], [[1, 1], [1, 1]]])
    # set-level: class 0 IoU 3/4, class 1 IoU 4/5 (per-image averaging would give something else)
    assert M.miou(true, pred, 2) == pytest.approx((3 / 4 + 4 / 5) / 2)
    true = RNG.integers(0, 5, size=(4, 6, 6))
    pred = RNG.integers(0, 5, size=(4, 6, 6))
    true[0, 0] = 255
    keep = true != 255
    expected = jaccard_score(true[keep], pred[keep], average="macro")
    assert M.miou(torch.tensor(true), torch.tensor(pred), 6) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("fn", "kwargs", "match"),
    [
        (M.adjusted_rand_index, {}, "shape mismatch"),
        (M.mean_best_overlap, {}, "shape mismatch"),
        (M.miou, {"num_classes": 3}, "shape mismatch"),
    ],
)
def test_segmentation_shape_mismatch(fn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(np.zeros((2, 3, 3), dtype=int), np.zeros((2, 3, 4), dtype=int), **kwargs)


def test_segmentation_invalid_input():
    with pytest.raises(ValueError, match="empty"):
        M.adjusted_rand_index(np.zeros((0, 2, 2), dtype=int), np.zeros((0, 2, 2), dtype=int))
    with pytest.raises(ValueError, match=r"\[H, W\] or \[B, H, W\]"):
        M.mean_best_overlap(np.zeros((1, 1, 2, 2), dtype=int), np.zeros((1, 1, 2, 2), dtype=int))
    with pytest.raises(ValueError, match="integer labels"):
        M.adjusted_rand_index(np.full((2, 2), 0.5), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"true_seg: labels \[7\] outside \[0, 3\)"):
        M.miou([[0, 7]], [[0, 1]], 3)
    with pytest.raises(ValueError, match="pred_seg: labels"):
        M.miou([[0, 1]], [[0, 255]], 3)
    with pytest.raises(ValueError, match="every pixel is ignore_index"):
        M.miou([[255, 255]], [[0, 1]], 3)
    with pytest.raises(ValueError, match="num_classes"):
        M.miou([[0]], [[0]], 0)


# --------------------------------------------------------------------------------------------------- retrieval
SIM = np.array(
    [
        [0.9, 0.1, 0.8, 0.3, 0.2, 0.0],  # positives {2, 3}: ranks 2, 3
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # positives [0, 5]: ranks 6, 1
        [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # positives [4, 5]: ranks 5, 6
    ]
)
POS = [{2, 3}, [0, 5], [4, 5]]


def test_recall_at_k_by_hand_multiple_positives():
    r = M.recall_at_k(SIM, POS, ks=(1, 2, 4, 5, 10))
    assert r == pytest.approx(
        {1: 1 / 3, 2: 2 / 3, 4: 2 / 3, 5: 1.0, 10: 1.0}
    )  # k=10 > gallery: whole gallery
    assert list(M.recall_at_k(SIM, POS)) == [1, 5, 10]
    mask = np.zeros_like(SIM, dtype=bool)
    for q, ps in enumerate(POS):
        mask[q, list(ps)] = True
    assert M.recall_at_k(torch.tensor(SIM), torch.tensor(mask), ks=(1, 2)) == pytest.approx(
        {1: 1 / 3, 2: 2 / 3}
    )
    assert M.recall_at_k(SIM, [2, 5, 1], ks=(1,)) == pytest.approx({1: 1 / 3})  # one int per query
    # an int array [Q, P] holds indices (Flickr30K: 5 captions per image), not a mask
    assert M.recall_at_k(SIM, np.array([[2, 3], [0, 5], [4, 5]]), ks=(1, 2)) == pytest.approx(
        {1: 1 / 3, 2: 2 / 3}
    )


def test_retrieval_map_by_hand():
    # APs: (1/2 + 2/3)/2, (1/1 + 2/6)/2, (1/5 + 2/6)/2
    expected = ((1 / 2 + 2 / 3) / 2 + (1 + 2 / 6) / 2 + (1 / 5 + 2 / 6) / 2) / 3
    assert M.retrieval_map(SIM, POS) == pytest.approx(expected)


def test_retrieval_vs_sklearn_and_torchmetrics():
    from torchmetrics.retrieval import RetrievalHitRate

    sim = RNG.normal(size=(20, 30))
    mask = RNG.random((20, 30)) < 0.15
    mask[np.arange(20), RNG.integers(0, 30, size=20)] = True
    ap = np.mean([average_precision_score(m, s) for s, m in zip(sim, mask)])
    assert M.retrieval_map(sim, mask) == pytest.approx(ap)
    indexes = torch.arange(20)[:, None].expand(20, 30)
    for k in (1, 5, 10):
        hit = RetrievalHitRate(top_k=k)(torch.tensor(sim), torch.tensor(mask), indexes=indexes)
        assert M.recall_at_k(sim, mask, ks=(k,))[k] == pytest.approx(hit.item())


def test_retrieval_ties_broken_by_column_index():
    sim = np.zeros((2, 4))
    assert M.recall_at_k(sim, [[0], [3]], ks=(1,)) == {1: 0.5}


@pytest.mark.parametrize(
    ("sim", "pos", "match"),
    [
        (SIM, POS[:2], "length mismatch"),
        (SIM, [[2], [], [1]], "query 1 has no positive"),
        (SIM, [[2], [6], [1]], "outside the gallery"),
        (SIM, [[2], [-1], [1]], "outside the gallery"),
        (SIM, [[2], [0.5], [1]], "non-integer"),
        (SIM, np.zeros((3, 0), dtype=int), "query 0 has no positive"),
        (SIM, np.zeros((3, 6), dtype=bool), "query 0 has no positive"),
        (np.where(SIM > 0.85, np.nan, SIM), POS, "NaN or inf"),
        (SIM[0], POS, "2-D"),
        (np.zeros((0, 3)), [], "empty"),
        (SIM, np.ones((3, 5), dtype=bool), "shape mismatch"),
    ],
)
def test_retrieval_invalid_input(sim, pos, match):
    with pytest.raises(ValueError, match=match):
        M.recall_at_k(sim, pos)
    with pytest.raises(ValueError, match=match):
        M.retrieval_map(sim, pos)


def test_recall_invalid_k():
    with pytest.raises(ValueError, match="positive integer"):
        M.recall_at_k(SIM, POS, ks=(0,))


# -------------------------------------------------------------------------------------------------- generation
def _samples_with_moments(n: int, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Samples whose sample mean and (ddof=1) covariance are exactly ``mean`` and ``diag(var)``."""
    x = RNG.normal(size=(n, len(mean)))
    x -= x.mean(0)
    w = np.linalg.cholesky(np.cov(x, rowvar=False))
    x = x @ np.linalg.inv(w).T  # whitened: sample covariance = I
    return x * np.sqrt(var) + mean


def test_frechet_distance_diagonal_gaussians_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    a, b = _samples_with_moments(500, mu1, s1), _samples_with_moments(400, mu2, s2)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert M.frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert M.frechet_distance(torch.tensor(a, dtype=torch.float32), a) == pytest.approx(0.0, abs=1e-4)


def test_frechet_distance_vs_eigenvalue_formula():
    a = RNG.normal(size=(200, 5)) @ RNG.normal(size=(5, 5))
    b = RNG.normal(size=(150, 5)) @ RNG.normal(size=(5, 5)) + 0.3
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr sqrt(A B) = sum sqrt(eig(A B)) (eigenvalues are real and >= 0 for SPD A, B)
    tr_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvals(ca @ cb).real, 0, None)))
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca) + np.trace(cb) - 2 * tr_sqrt
    assert M.frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_invalid_input():
    with pytest.raises(ValueError, match="feature dim mismatch"):
        M.frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        M.frechet_distance(np.zeros((1, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN or inf"):
        M.frechet_distance(np.full((4, 3), np.nan), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="2-D"):
        M.frechet_distance(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="empty"):
        M.frechet_distance(np.zeros((0, 3)), np.zeros((4, 3)))


class _TinyExtractor(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(3 * 8 * 8, 6)
        self.seen: list[tuple[float, float, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((x.min().item(), x.max().item(), self.training))
        return self.proj(x.flatten(1))


def test_fid_with_injected_extractor():
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(40, 3, 8, 8, generator=g)
    other = torch.rand(40, 3, 8, 8, generator=g)
    ext = _TinyExtractor().train()
    assert M.fid(imgs, imgs, ext) == pytest.approx(0.0, abs=1e-6)
    near, far = M.fid(imgs, other, ext), M.fid(imgs, (other * 0.5 + 0.5), ext)
    assert far > near > 0
    assert ext.training and all(lo >= 0 and hi <= 1 and not training for lo, hi, training in ext.seen)
    feats = lambda x: ext.proj(x.flatten(1)).detach().numpy()
    assert M.fid(imgs, other, ext, batch_size=7) == pytest.approx(
        M.frechet_distance(feats(imgs), feats(other))
    )


def test_fid_uint8_equals_float_and_matches_torchmetrics():
    from torchmetrics.image.fid import FrechetInceptionDistance

    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, 256, (30, 3, 8, 8), dtype=torch.uint8, generator=g)
    b = torch.randint(0, 200, (30, 3, 8, 8), dtype=torch.uint8, generator=g)
    ext = _TinyExtractor()
    value = M.fid(a, b, ext)
    assert M.fid(a.float() / 255, b.numpy().astype(np.float32) / 255, ext) == pytest.approx(value, rel=1e-5)

    class Wrapped(torch.nn.Module):
        num_features = 6

        def forward(self, x):
            return ext(x.double().float() / 255)

    tm = FrechetInceptionDistance(feature=Wrapped(), reset_real_features=False)
    tm.update(a, real=True)
    tm.update(b, real=False)
    assert value == pytest.approx(tm.compute().item(), rel=1e-3)


def test_fid_invalid_input():
    ext = _TinyExtractor()
    x = torch.rand(4, 3, 8, 8)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        M.fid(x * 255, x, ext)
    with pytest.raises(ValueError, match="image shape mismatch"):
        M.fid(x, torch.rand(4, 3, 4, 4), ext)
    with pytest.raises(ValueError, match="dtype"):
        M.fid(x.long(), x, ext)
    with pytest.raises(ValueError, match="batch of images"):
        M.fid(x[:0], x, ext)
    with pytest.raises(ValueError, match="NaN or inf"):
        M.fid(torch.full_like(x, float("nan")), x, ext)
    with pytest.raises(ValueError, match="batch_size"):
        M.fid(x, x, ext, batch_size=0)


def test_inception_score_extremes():
    mean, std = M.inception_score(np.zeros((50, 10)), splits=5)
    assert (mean, std) == (pytest.approx(1.0), pytest.approx(0.0))
    confident = 50.0 * np.eye(10)[np.arange(100) % 10]  # each of the 10 splits holds every class once
    mean, std = M.inception_score(torch.tensor(confident), splits=10)
    assert mean == pytest.approx(10.0, rel=1e-6) and std == pytest.approx(0.0, abs=1e-5)
    same_class = 50.0 * np.eye(10)[np.zeros(100, dtype=int)]
    assert M.inception_score(same_class, splits=4)[0] == pytest.approx(1.0)


def test_inception_score_vs_torch_reference():
    logits = torch.tensor(RNG.normal(scale=3.0, size=(60, 7)))
    scores = []
    for chunk in torch.chunk(logits, 3):
        p = chunk.softmax(1)
        py = p.mean(0, keepdim=True)
        scores.append(torch.exp((p * (p.log() - py.log())).sum(1).mean()))
    scores = torch.stack(scores)
    mean, std = M.inception_score(logits, splits=3)
    assert mean == pytest.approx(scores.mean().item()) and std == pytest.approx(
        scores.std(unbiased=False).item()
    )


def test_inception_score_invalid_input():
    with pytest.raises(ValueError, match="splits"):
        M.inception_score(np.zeros((5, 3)), splits=10)
    with pytest.raises(ValueError, match="NaN or inf"):
        M.inception_score(np.full((5, 3), np.inf), splits=1)
    with pytest.raises(ValueError, match="2-D"):
        M.inception_score(np.zeros(5), splits=1)


def test_clip_frame_consistency_by_hand():
    frames = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    # consecutive pairs only: cos(f0, f1) = cos(f1, f2) = 1/sqrt2 (f0, f2 orthogonal, not a pair)
    assert M.clip_frame_consistency(frames) == pytest.approx(1 / math.sqrt(2))
    static = np.array([[3.0, 4.0], [0.3, 0.4]])
    batch = torch.tensor(np.stack([frames, frames[[0, 0, 0]]]))
    assert M.clip_frame_consistency(batch) == pytest.approx((1 / math.sqrt(2) + 1) / 2)
    assert M.clip_frame_consistency(static) == pytest.approx(1.0)


def test_clip_text_alignment_by_hand():
    frames = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    assert M.clip_text_alignment(frames, [5.0, 0.0]) == pytest.approx((1 + 0 + 1 / math.sqrt(2)) / 3)
    assert M.clip_text_alignment(frames, [[5.0, 0.0]]) == pytest.approx((1 + 0 + 1 / math.sqrt(2)) / 3)
    batch = np.stack([frames, frames])
    texts = np.array([[1.0, 0.0], [0.0, 1.0]])
    expected = ((1 + 0 + 1 / math.sqrt(2)) / 3 + (0 + 1 + 1 / math.sqrt(2)) / 3) / 2
    assert M.clip_text_alignment(torch.tensor(batch), torch.tensor(texts)) == pytest.approx(expected)


def test_clip_metrics_invalid_input():
    with pytest.raises(ValueError, match="at least 2 frames"):
        M.clip_frame_consistency(np.ones((1, 4)))
    with pytest.raises(ValueError, match="all-zero embedding"):
        M.clip_frame_consistency(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="NaN or inf"):
        M.clip_frame_consistency(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="2-D or 3-D"):
        M.clip_frame_consistency(np.ones(4))
    with pytest.raises(ValueError, match="embedding dim mismatch"):
        M.clip_text_alignment(np.ones((3, 4)), np.ones(5))
    with pytest.raises(ValueError, match="prompts"):
        M.clip_text_alignment(np.ones((2, 3, 4)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="all-zero embedding"):
        M.clip_text_alignment(np.ones((3, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="empty"):
        M.clip_text_alignment(np.ones((0, 4)), np.ones(4))
