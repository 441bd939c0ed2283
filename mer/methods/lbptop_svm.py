"""LBP-TOP + linear SVM: the classical baseline every MER paper compares against.

Why the SVM is solved on the Gram matrix: a fold has ~250 clips of 15,045 features.  liblinear's
coordinate descent on standardised features needs seconds per fit (hundreds of passes over the
whole matrix), libsvm's own linear kernel recomputes dot products in plain loops; one BLAS product
``Z Zᵀ`` (n x n) and libsvm on that precomputed kernel gives the same linear SVM in milliseconds,
and the inner cross-validation over C only slices that matrix.

C is chosen by an inner cross-validation whose folds split the *training subjects* of the outer
fold (GroupKFold), scored by macro F1 (ties go to the smaller C); the test subject is never seen.
The standardisation (z-score per histogram bin) is fitted once on the outer fold's training clips
and shared by the inner folds: it uses no labels, so no label information crosses the inner split.
``predict_proba`` returns a softmax of the one-vs-rest decision values: scores that rank classes
consistently with the SVM's prediction, not calibrated probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import softmax
from sklearn.metrics import f1_score
from sklearn.model_selection import GroupKFold
from sklearn.svm import SVC

from mer.methods.registry import Samples, register


@register("lbptop_svm")
class LbpTopSVM:
    inputs = ("lbptop",)
    deterministic = True   # no randomness anywhere: repeating it over seeds would repeat the numbers

    @dataclass
    class Params:
        C: list[float] = field(default_factory=lambda: [0.0001, 0.001, 0.01, 0.1])  # inner-CV grid
        inner_folds: int = 3            # GroupKFold over the training subjects
        standardize: bool = True        # z-score each histogram bin on the training clips
        class_weight: str = "balanced"  # "balanced" | "none": CASME II-like imbalance

    def __init__(self, params: "LbpTopSVM.Params"):
        self.params = params

    def _z(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) / self.scale_ if self.params.standardize else x

    def _svc(self, C: float) -> SVC:
        weight = None if self.params.class_weight == "none" else self.params.class_weight
        return SVC(kernel="precomputed", C=C, class_weight=weight, decision_function_shape="ovr")

    def _select_C(self, gram: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
        """Best C by inner GroupKFold on the training subjects (macro F1; ties -> smaller C)."""
        grid = sorted(self.params.C)
        n_groups = len(set(groups))
        if len(grid) == 1 or n_groups < 2:
            return grid[0]
        splits = list(GroupKFold(n_splits=min(self.params.inner_folds, n_groups)).split(gram, y, groups))
        score = []
        for C in grid:
            f1 = []
            for tr, va in splits:
                svc = self._svc(C).fit(gram[np.ix_(tr, tr)], y[tr])
                f1.append(f1_score(y[va], svc.predict(gram[np.ix_(va, tr)]), average="macro"))
            score.append(np.mean(f1))
        return grid[int(np.argmax(score))]

    def fit(self, train: Samples, rng: np.random.Generator) -> "LbpTopSVM":
        x = train.stack("lbptop", "feature").astype(np.float64)   # (n, 15045)
        self.mean_ = x.mean(0)
        self.scale_ = np.where(x.std(0) > 0, x.std(0), 1.0)     # constant bins stay 0
        self.z_ = self._z(x)                                    # (n, d)
        gram = self.z_ @ self.z_.T                              # (n, n) linear kernel
        self.C_ = self._select_C(gram, train.y, train.groups)
        self.svc_ = self._svc(self.C_).fit(gram, train.y)
        self.n_classes_ = len(train.classes)
        return self

    def predict_proba(self, test: Samples) -> np.ndarray:
        z = self._z(test.stack("lbptop", "feature").astype(np.float64))  # (m, d)
        scores = self.svc_.decision_function(z @ self.z_.T)     # (m, k) or (m,) for two classes
        if scores.ndim == 1:
            scores = np.stack([-scores, scores], 1)
        full = np.full((len(z), self.n_classes_), -np.inf)      # classes absent from training: p = 0
        full[:, self.svc_.classes_] = scores
        return softmax(full, axis=1)
