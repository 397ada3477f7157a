"""metrics: the one top-k rule (an exact tie counts against the row) and label checks."""
import numpy as np
import pytest

from soundtrack import metrics


def reference_rank(scores, labels):
    """The tie rule spelled out row by row: other classes scoring >= the true class."""
    return np.array([sum(row[c] >= row[y] for c in range(len(row)) if c != y)
                     for row, y in zip(scores, labels)])


def test_constant_row_is_wrong_at_top1_and_top5():
    scores = np.full((10, 10), 0.1, dtype=np.float32)
    labels = np.arange(10)  # every class once: an arbitrary pick among ties would hit some
    assert metrics.true_class_rank(scores, labels).tolist() == [9] * 10
    assert metrics.topk_accuracy(scores, labels, 1) == 0.0
    assert metrics.topk_accuracy(scores, labels, 5) == 0.0


def test_true_class_tied_with_one_other_is_rank_1():
    scores = np.array([[0.4, 0.4, 0.2],    # label 0, tied with class 1
                       [0.4, 0.4, 0.2],    # label 1, tied with class 0
                       [0.2, 0.5, 0.3]],   # label 1, strictly best
                      dtype=np.float32)
    labels = np.array([0, 1, 1])
    assert metrics.true_class_rank(scores, labels).tolist() == [1, 1, 0]
    assert metrics.topk_accuracy(scores, labels, 1) == pytest.approx(100 / 3)
    assert metrics.topk_accuracy(scores, labels, 2) == 100.0


def test_unlabelled_rows_are_ignored():
    scores = np.array([[0.5, 0.5, 0.0],    # label 0, tied: wrong at top-1
                       [0.5, 0.5, 0.0],    # label 1, tied: wrong at top-1
                       [0.9, 0.1, 0.0],    # unlabelled
                       [0.1, 0.8, 0.1],    # label 1, right
                       [0.0, 0.0, 1.0]],   # unlabelled
                      dtype=np.float32)
    labels = np.array([0, 1, -1, 1, -1])
    assert metrics.topk_accuracy(scores, labels, 1) == pytest.approx(100 / 3)
    assert metrics.topk_accuracy(scores, labels, 2) == 100.0
    assert np.isnan(metrics.topk_accuracy(scores, np.full(5, -1), 1))


def test_k_at_and_beyond_n_classes():
    scores = np.full((1, 4), 0.25, dtype=np.float32)
    labels = np.array([0])
    assert metrics.topk_accuracy(scores, labels, 3) == 0.0    # 3 others tie with class 0
    assert metrics.topk_accuracy(scores, labels, 4) == 100.0  # only 3 others exist
    assert metrics.topk_accuracy(scores, labels, 40) == 100.0
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        metrics.topk_accuracy(scores, labels, 0)


def test_rank_and_topk_match_the_rule_on_random_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, (400, 12)).astype(np.float32)  # many exact ties
    labels = rng.integers(-1, 12, 400)
    keep = labels >= 0
    rank = reference_rank(scores[keep], labels[keep])
    np.testing.assert_array_equal(metrics.true_class_rank(scores[keep], labels[keep]), rank)
    for k in (1, 2, 5, 11, 12):
        assert metrics.topk_accuracy(scores, labels, k) == pytest.approx(100 * np.mean(rank < k))


def test_labels_outside_the_classes_are_errors_naming_the_row():
    scores = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"row 2 has label 4, outside 0..3"):
        metrics.true_class_rank(scores, np.array([0, 3, 4]))
    with pytest.raises(ValueError, match=r"expected int \[3\]"):
        metrics.true_class_rank(scores, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"labels: expected \[3\]"):
        metrics.topk_accuracy(scores, np.array([0, 1]))
