"""LBP-TOP + linear SVM: the classical baseline every MER paper compares against.

The regularisation C is chosen by an inner cross-validation whose folds split the *training
subjects* of the outer fold (GroupKFold), scored by macro F1; the test subject is never seen.
``predict_proba`` returns a softmax of the one-vs-rest decision values: scores that rank classes
consistently with the SVM's prediction, not calibrated probabilities (Platt scaling would need yet
another inner split on a few hundred clips).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import softmax
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from mer.methods.registry import Samples, register


@register("lbptop_svm")
class LbpTopSVM:
    inputs = ("lbptop",)

    @dataclass
    class Params:
        C: list[float] = field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0])  # inner-CV grid
        inner_folds: int = 3          # GroupKFold over the training subjects
        standardize: bool = True      # z-score each histogram bin on the training clips
        class_weight: str = "balanced"  # "balanced" | "none": CASME II-like imbalance
        max_iter: int = 20000

    def __init__(self, params: "LbpTopSVM.Params"):
        self.params = params

    def fit(self, train: Samples, rng: np.random.Generator) -> "LbpTopSVM":
        p = self.params
        x = train.stack("lbptop", "feature")          # (n, 15045) float32
        svm = LinearSVC(class_weight=None if p.class_weight == "none" else p.class_weight,
                        max_iter=p.max_iter, random_state=int(rng.integers(2**31 - 1)))
        model = make_pipeline(StandardScaler(), svm) if p.standardize else make_pipeline(svm)
        groups = train.groups
        n_groups = len(set(groups))
        if len(p.C) > 1 and n_groups >= 2:
            search = GridSearchCV(model, {"linearsvc__C": list(p.C)}, scoring="f1_macro",
                                  cv=GroupKFold(n_splits=min(p.inner_folds, n_groups)), refit=True)
            search.fit(x, train.y, groups=groups)
            self.model_, self.C_ = search.best_estimator_, search.best_params_["linearsvc__C"]
        else:
            model.set_params(linearsvc__C=p.C[0])
            self.model_, self.C_ = model.fit(x, train.y), p.C[0]
        self.n_classes_ = len(train.classes)
        return self

    def predict_proba(self, test: Samples) -> np.ndarray:
        x = test.stack("lbptop", "feature")           # (n, 15045)
        scores = self.model_.decision_function(x)     # (n, k) or (n,) when two classes trained
        if scores.ndim == 1:
            scores = np.stack([-scores, scores], 1)
        full = np.full((len(x), self.n_classes_), -np.inf)  # classes absent from training get 0
        full[:, self.model_.classes_] = scores
        return softmax(full, axis=1)
