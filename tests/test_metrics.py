"""Golden tests: metrics against values computed by hand."""

import numpy as np
import pytest

from mer.eval.metrics import confusion, scores


def test_confusion_rows_are_truth():
    cm = confusion([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_scores_by_hand():
    # F1 per class: 2*2/(3+2)=0.8, 2*1/(2+2)=0.5, 2*1/(1+2)=2/3; recall: 2/3, 1/2, 1
    s = scores([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], 3)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["uf1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert s["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_absent_classes_are_left_out_but_false_predictions_count():
    # class 3 never occurs: left out; class 2 predicted but never true: F1 0 counts, recall does not
    s = scores([0, 0, 1, 1], [0, 2, 1, 1], 4)
    f1 = [2 * 1 / (2 + 1), 2 * 2 / (2 + 2), 0.0]
    assert s["uf1"] == pytest.approx(np.mean(f1))
    assert s["uar"] == pytest.approx((0.5 + 1.0) / 2)
    assert s["accuracy"] == pytest.approx(3 / 4)


def test_perfect_and_constant_predictions():
    y = [0, 1, 2, 2, 1, 0]
    assert scores(y, y, 3) == {"accuracy": 1.0, "uf1": 1.0, "uar": 1.0}
    s = scores(y, [2] * 6, 3)
    assert s["uar"] == pytest.approx(1 / 3)
    assert s["uf1"] == pytest.approx((2 * 2 / (2 + 6)) / 3)
