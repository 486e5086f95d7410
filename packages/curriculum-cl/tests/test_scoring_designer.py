import itertools

import numpy as np
import pytest
from curriculum_cl.curricula import CurriculumSpace, parse_classes, parse_curriculum_ids
from curriculum_cl.designer import (
    distance_matrix,
    generate_curricula,
    normalise_rows,
    rank_orders,
    score_order,
    variance_weights,
)
from curriculum_cl.errors import CurriculumError
from curriculum_cl.scoring import alpha_beta, curriculum_scores, f_score


def test_f_score_hand_values():
    assert f_score(0.2, 1.0) == pytest.approx(2 * 0.2 / 1.2)
    assert f_score(1.0, 0.0) == pytest.approx(2.0)
    # F = 2 / (beta + 1/alpha)
    assert f_score(0.25, 0.5) == pytest.approx(2 / (0.5 + 4))
    # more forgetting, lower F; higher accuracy, higher F
    assert f_score(0.3, 0.9) < f_score(0.3, 0.1)
    assert f_score(0.5, 0.5) > f_score(0.3, 0.5)


def test_alpha_beta_from_accuracy_matrix():
    acc = np.array([[0.9, 0.0, 0.0], [0.4, 0.8, 0.0], [0.1, 0.2, 0.9]])
    alpha, beta = alpha_beta(acc)
    assert alpha == pytest.approx((0.1 + 0.2 + 0.9) / 3)
    assert beta == pytest.approx(0.9 - 0.1)


def test_curriculum_scores_average_before_f():
    ids = np.array([0, 0, 1])
    alpha = np.array([0.2, 0.4, 0.5])
    beta = np.array([1.0, 0.0, 0.5])
    scores = curriculum_scores(ids, alpha, beta)
    assert scores[0][2] == pytest.approx(f_score(0.3, 0.5))  # not the mean of per-run F
    assert scores[0][2] != pytest.approx((f_score(0.2, 1.0) + f_score(0.4, 0.0)) / 2)


def test_curriculum_spaces_and_ids():
    assert len(CurriculumSpace((0, 1, 2, 3, 4))) == 120
    pairs = CurriculumSpace(tuple(range(10)), "pairs")
    assert len(pairs) == 120 and pairs.experiences(0) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    nod = CurriculumSpace((0, 1, 2, 3, 4), "nod")
    assert len(nod) == 60 and nod.num_experiences == 4
    assert nod.experiences(0) == [[0, 1], [2], [3], [4]]
    single = CurriculumSpace((3, 5, 7, 8, 9))
    assert single.experiences(1) == [[3], [5], [7], [9], [8]]  # itertools order
    assert list(itertools.permutations(range(5)))[47] == single.orders[47]
    assert parse_classes("0-4") == [0, 1, 2, 3, 4] and parse_classes("4,2,0") == [4, 2, 0]
    assert parse_curriculum_ids("0-2,7", 120) == [0, 1, 2, 7]
    with pytest.raises(CurriculumError):
        CurriculumSpace((0,))
    with pytest.raises(CurriculumError):
        parse_curriculum_ids("130", 120)


def test_designer_three_class_hand_score():
    d = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
    dn = normalise_rows(d)
    np.testing.assert_allclose(dn[1], [0.5, 0.0, 0.5])
    np.testing.assert_allclose(variance_weights(dn), [4 / 11, 3 / 11, 4 / 11])
    # S = (1 - v_c1) + (1 - D~[c1, c3]) + D~[c1, c2]
    assert score_order(d, (1, 0, 2)) == pytest.approx(1 - 3 / 11 + 0.5 + 0.5)
    assert score_order(d, (0, 2, 1)) == pytest.approx(1 - 4 / 11 + (1 - 1 / 3) + 2 / 3)


def test_designer_five_class_formula_and_best_order():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(5, 4))
    d = distance_matrix(pts, "euclidean")
    dn, v = normalise_rows(d), variance_weights(normalise_rows(d))
    for order in itertools.permutations(range(5)):
        c1, c2, c3, c4, c5 = order
        expected = (1 - v[c1]) + (1 - dn[c1, c5]) + dn[c1, c2] + (1 - dn[c2, c4]) + dn[c2, c3]
        assert score_order(d, order) == pytest.approx(expected)
    # Classes on a line 0..4 (D[i, j] = |i - j|), worked by hand: row sums 10, 7, 6, 7, 10; Var of the normalised
    # rows 2/100, 1.04/49, 0.56/36, 1.04/49, 2/100. Best: start at 1, jump to the far end 4, mirror-close class 2
    # last, then from 4: far 0 next and near 3 mirrored.
    line = np.abs(np.arange(5)[:, None] - np.arange(5)[None, :]).astype(float)
    var = np.array([2 / 100, 1.04 / 49, 0.56 / 36, 1.04 / 49, 2 / 100])
    v1 = var[1] / var.sum()
    hand = (1 - v1) + (1 - 1 / 7) + 3 / 7 + (1 - 1 / 10) + 4 / 10
    assert score_order(line, (1, 4, 0, 3, 2)) == pytest.approx(hand)
    orders = list(itertools.permutations(range(5)))
    scores = rank_orders(line, orders)
    assert orders[int(np.argmax(scores))] == (1, 4, 0, 3, 2)
    assert scores.max() == pytest.approx(hand)


def test_generator_starts_central_and_fills_near_back_far_front():
    line = np.abs(np.arange(5)[:, None] - np.arange(5)[None, :]).astype(float)
    first = generate_curricula(line, num_starts=1)[0]
    assert first[0] == 2
    assert first[4] in (1, 3) and first[1] in (0, 4)
    assert sorted(first) == [0, 1, 2, 3, 4]


def test_distance_matrix_cosine_zero_diagonal_and_bad_input():
    d = distance_matrix(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    assert np.all(np.diag(d) == 0) and d[0, 1] == pytest.approx(1.0)
    with pytest.raises(CurriculumError):
        score_order(np.ones((3, 3)), (0, 1, 2))
    with pytest.raises(CurriculumError):
        score_order(d, (0, 1, 1))
