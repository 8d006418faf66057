"""nc.metrics against hand-worked examples and, when installed, scikit-learn."""

import numpy as np
import pytest

from nncompile import metrics
from nncompile.errors import ShapeError


def test_hand_worked_example():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 0, 2]
    cm = metrics.confusion_matrix(y_true, y_pred)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # per class precision 1/2, 2/3, 1; recall 1/2, 1, 1/2
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    assert metrics.precision(y_true, y_pred) == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert metrics.recall(y_true, y_pred) == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    f1s = [1 / 2, 2 * (2 / 3) / (2 / 3 + 1), 2 * 0.5 / 1.5]
    assert metrics.f1(y_true, y_pred) == pytest.approx(sum(f1s) / 3)


def test_scores_and_one_hot_labels_are_reduced_to_classes():
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    one_hot = np.array([[0, 1], [0, 1], [0, 1]], np.float32)
    assert metrics.accuracy(one_hot, scores) == pytest.approx(2 / 3)
    assert metrics.accuracy([1, 0, 1], np.array([0.7, 0.2, 0.4])) == pytest.approx(2 / 3)


def test_a_class_never_predicted_has_precision_zero():
    assert metrics.precision([0, 1], [0, 0]) == pytest.approx((0.5 + 0) / 2)


def test_bad_inputs():
    with pytest.raises(ShapeError, match="2 labels but 3 predictions"):
        metrics.confusion_matrix([0, 1], [0, 1, 1])
    with pytest.raises(ShapeError, match="num_classes"):
        metrics.confusion_matrix([0, 5], [0, 1], num_classes=3)


@pytest.mark.parametrize("seed", range(5))
def test_against_scikit_learn(seed):
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 6, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 7, 200))
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(sk.accuracy_score(y_true, y_pred))
    for ours, theirs in [
        (metrics.precision, sk.precision_score),
        (metrics.recall, sk.recall_score),
        (metrics.f1, sk.f1_score),
    ]:
        expected = theirs(y_true, y_pred, average="macro", zero_division=0)
        assert ours(y_true, y_pred) == pytest.approx(expected)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y_true, y_pred), sk.confusion_matrix(y_true, y_pred)
    )
