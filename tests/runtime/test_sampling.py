"""lsml.sampling: hand-computable scores, orientation, and loud failures on bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lsml import sampling

pytestmark = pytest.mark.unit

ALL = sampling.STRATEGIES


# ---- hand-computed values ----------------------------------------------------


def test_confidence_is_the_top_probability():
    assert sampling.confidence([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]).tolist() == pytest.approx([0.7, 0.8])


def test_least_confidence_is_scaled_to_one_for_a_uniform_row():
    # (1 - 0.7) * 3/2 = 0.45 ; uniform: (1 - 1/3) * 3/2 = 1 ; certain: 0
    got = sampling.least_confidence([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0]])
    assert got.tolist() == pytest.approx([0.45, 1.0, 0.0])


def test_margin_looks_at_the_two_best_classes_only():
    # 1 - (0.5 - 0.4) = 0.9 ; 1 - (0.5 - 0.25) = 0.75 (rest of the mass is irrelevant)
    got = sampling.margin([[0.5, 0.4, 0.1], [0.5, 0.25, 0.25]])
    assert got.tolist() == pytest.approx([0.9, 0.75])


def test_entropy_is_scaled_by_log_of_the_class_count():
    # [0.5, 0.5, 0, 0]: H = log 2, / log 4 = 0.5 ; uniform over 4: 1 ; one-hot: 0
    got = sampling.entropy([[0.5, 0.5, 0.0, 0.0], [0.25] * 4, [0.0, 1.0, 0.0, 0.0]])
    assert got.tolist() == pytest.approx([0.5, 1.0, 0.0])


def test_binary_entropy_hand_value():
    p = 0.9
    expected = -(p * math.log(p) + (1 - p) * math.log(1 - p)) / math.log(2)
    assert sampling.entropy([[p, 1 - p]])[0] == pytest.approx(expected)


# ---- orientation: the score Label Studio sorts ascending --------------------


@pytest.mark.parametrize("strategy", ALL)
def test_prediction_score_is_low_for_the_uncertain_task(strategy):
    sure, unsure = [0.96, 0.02, 0.02], [0.4, 0.35, 0.25]
    scores = sampling.prediction_score([sure, unsure], strategy)
    assert scores[1] < scores[0]
    assert np.all((scores >= 0) & (scores <= 1))
    # ascending sort (what Label Studio's uncertainty sampling does) serves the unsure task first
    assert int(np.argsort(scores, kind="stable")[0]) == 1


@pytest.mark.parametrize("strategy", ALL)
def test_prediction_score_is_one_minus_informativeness(strategy):
    p = [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]]
    np.testing.assert_allclose(sampling.prediction_score(p, strategy), 1.0 - sampling.informativeness(p, strategy))


def test_confidence_strategy_score_is_exactly_the_top_probability():
    assert sampling.prediction_score([[0.6, 0.3, 0.1]], "confidence")[0] == pytest.approx(0.6)


def test_strategies_can_disagree_on_which_task_is_most_informative():
    # a: two classes tied on top, b: mass spread over many classes with a clear leader
    a = [0.45, 0.45, 0.1, 0.0, 0.0]
    b = [0.4, 0.15, 0.15, 0.15, 0.15]
    assert sampling.margin([a, b])[0] > sampling.margin([a, b])[1]
    assert sampling.entropy([a, b])[1] > sampling.entropy([a, b])[0]


# ---- edge cases ------------------------------------------------------------


@pytest.mark.parametrize("strategy", ALL)
def test_ties_give_equal_scores_and_top_k_breaks_them_by_index(strategy):
    p = [[0.5, 0.5], [0.9, 0.1], [0.5, 0.5], [0.1, 0.9]]
    info = sampling.informativeness(p, strategy)
    assert info[0] == info[2]
    assert info[1] == pytest.approx(info[3])
    assert sampling.top_k(info, 3).tolist() == [0, 2, 1]


@pytest.mark.parametrize("strategy", ALL)
def test_a_single_class_is_never_uncertain(strategy):
    info = sampling.informativeness([[1.0], [0.3]], strategy)  # rows renormalise to [1.0]
    assert info.tolist() == [0.0, 0.0]
    assert sampling.prediction_score([[1.0]], strategy).tolist() == [1.0]


@pytest.mark.parametrize("strategy", ALL)
def test_rows_not_summing_to_one_are_rescaled(strategy):
    counts = [[6, 3, 1], [2, 2, 0]]  # votes: same as [[.6,.3,.1],[.5,.5,0]]
    np.testing.assert_allclose(
        sampling.informativeness(counts, strategy),
        sampling.informativeness([[0.6, 0.3, 0.1], [0.5, 0.5, 0.0]], strategy),
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("strategy", ALL)
def test_nan_and_inf_are_rejected_naming_the_row(strategy, bad):
    with pytest.raises(ValueError, match=r"NaN or infinity .*row 1"):
        sampling.prediction_score([[0.5, 0.5], [bad, 0.5]], strategy)


@pytest.mark.parametrize(
    "probabilities, message",
    [
        ([], "2-D"),
        (np.zeros((0, 3)), "empty"),
        (np.zeros((2, 0)), "0 classes"),
        ([0.2, 0.8], "2-D"),
        ([[0.2, -0.1, 0.9]], ">= 0"),
        ([[0.0, 0.0], [0.5, 0.5]], "row 0 sums to 0"),
        ([["a", "b"]], "numeric"),
    ],
)
def test_bad_probabilities_raise_a_clear_error(probabilities, message):
    with pytest.raises(ValueError, match=message):
        sampling.informativeness(probabilities, "margin")


def test_unknown_strategy_lists_the_choices():
    with pytest.raises(ValueError, match="unknown score strategy 'random'.*margin"):
        sampling.prediction_score([[0.5, 0.5]], "random")


def test_strategy_names_are_normalised():
    assert sampling.validate_strategy(" Least-Confidence ") == "least_confidence"


def test_softmax_turns_logits_into_probabilities():
    p = sampling.softmax([[0.0, math.log(3.0)], [1000.0, 1000.0]])  # second row would overflow naively
    np.testing.assert_allclose(p, [[0.25, 0.75], [0.5, 0.5]])
    with pytest.raises(ValueError, match="NaN or infinity"):
        sampling.softmax([[0.0, float("nan")]])


# ---- selection ---------------------------------------------------------------


def test_top_k_returns_best_first_and_caps_at_pool_size():
    assert sampling.top_k([0.1, 0.9, 0.5], 2).tolist() == [1, 2]
    assert sampling.top_k([0.1, 0.9, 0.5], 10).tolist() == [1, 2, 0]


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3"])
def test_top_k_rejects_a_bad_k(k):
    with pytest.raises(ValueError, match="k must be"):
        sampling.top_k([0.1, 0.2], k)


def test_selection_rejects_empty_and_nan_scores():
    with pytest.raises(ValueError, match="empty"):
        sampling.top_k([], 1)
    with pytest.raises(ValueError, match="NaN or infinity .*index 1"):
        sampling.top_k([0.1, float("nan")], 1)


def test_k_center_greedy_covers_separate_clusters():
    # three tight clusters of 5 points; 3 picks must land one in each
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + rng.normal(scale=0.1, size=(5, 2)) for c in centers])
    picked = sampling.k_center_greedy(x, 3)
    assert sorted(int(i) // 5 for i in picked) == [0, 1, 2]


def test_k_center_greedy_avoids_what_is_already_labelled():
    x = np.array([[0.0], [0.1], [5.0], [5.1], [10.0]])
    # the labelled set sits at 0 and 10: the only uncovered region is around 5
    picked = sampling.k_center_greedy(x, 1, reference=np.array([[0.0], [10.0]]))
    assert picked.tolist() in ([2], [3])
    picked = sampling.k_center_greedy(x, 2, already_selected=[0, 4])
    assert 0 not in picked.tolist() and 4 not in picked.tolist()


def test_diverse_batch_does_not_return_near_duplicates():
    # 20 near-duplicates of one confusing case (highest scores) + 10 distinct, slightly less informative cases
    rng = np.random.default_rng(1)
    dupes = rng.normal(scale=0.01, size=(20, 2))
    distinct = np.array([[10.0 * (i + 1), 0.0] for i in range(10)])
    x = np.concatenate([dupes, distinct])
    scores = np.concatenate([np.full(20, 0.99) - np.arange(20) * 1e-4, np.full(10, 0.9)])
    plain = sampling.top_k(scores, 5)
    assert all(i < 20 for i in plain)  # plain top-k: all 5 are the same case
    diverse = sampling.diverse_batch(scores, x, 5, pool_factor=6)
    assert len(diverse) == 5 and len(set(diverse.tolist())) == 5
    assert sum(int(i) < 20 for i in diverse) == 1  # one representative of the duplicated case
    assert int(diverse[0]) == 0  # best first: the most informative sample leads


def test_diverse_batch_checks_shapes():
    with pytest.raises(ValueError, match="one row per sample"):
        sampling.diverse_batch([0.1, 0.2, 0.3], np.zeros((2, 4)), 2)
    with pytest.raises(ValueError, match="NaN or infinity"):
        sampling.diverse_batch([0.1, 0.2, 0.3], [[0.0], [float("nan")], [1.0]], 2)
    # k at least the pool: everything, best first
    assert sampling.diverse_batch([0.1, 0.3, 0.2], np.eye(3), 5).tolist() == [1, 2, 0]
