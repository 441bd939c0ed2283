"""Metrics of micro-expression recognition, computed on predictions pooled over all folds.

The literature's headline numbers are accuracy, UF1 (unweighted F1: the mean over classes of the
per-class F1) and UAR (unweighted average recall: the mean over classes of per-class recall).  They
are computed on the predictions of all folds together (pooled), because fold means over LOSO folds
with a handful of clips each are dominated by tiny, unstable folds; fold means are reported too, as
secondary numbers.  Classes absent from both truth and prediction are left out of the means (the
MEGC convention), so a fold holding two classes is not punished for the others.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts, rows = true class, columns = predicted class."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes)


def scores(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> dict[str, float]:
    """Accuracy, UF1 and UAR of one set of predictions (see module docstring)."""
    cm = confusion(y_true, y_pred, n_classes).astype(float)
    tp = np.diag(cm)
    n_true, n_pred = cm.sum(1), cm.sum(0)
    present = (n_true + n_pred) > 0
    f1 = np.divide(2 * tp, n_true + n_pred, out=np.zeros_like(tp), where=present)
    seen = n_true > 0
    recall = np.divide(tp, n_true, out=np.zeros_like(tp), where=seen)
    total = cm.sum()
    return {
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "uf1": float(f1[present].mean()) if present.any() else float("nan"),
        "uar": float(recall[seen].mean()) if seen.any() else float("nan"),
    }
