"""Protocols: folds never split a subject, and folds are what each protocol promises."""

import numpy as np
import pandas as pd
import pytest

from mer.errors import MerError
from mer.eval.protocols import make_folds


def clips(spec: dict[str, dict[str, int]]) -> pd.DataFrame:
    rows = [{"corpus": c, "subject": s} for c, subs in spec.items() for s, n in subs.items()
            for _ in range(n)]
    return pd.DataFrame(rows)


def test_loso_one_fold_per_subject_and_composite_keys():
    table = clips({"casme2": {"01": 3, "02": 2}, "samm": {"01": 4}})
    folds = make_folds("loso", table)
    assert [f.name for f in folds] == ["casme2/01", "casme2/02", "samm/01"]  # '01' twice, not merged
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(len(table)))  # every clip tested exactly once
    assert all(len(f.train) + len(f.test) == len(table) for f in folds)


def test_subject_kfold_is_seeded_and_disjoint():
    table = clips({"x": {f"{i:02d}": 2 for i in range(10)}})
    a, b = make_folds("subject_kfold", table, k=3, seed=1), make_folds("subject_kfold", table, k=3, seed=1)
    assert [f.test_groups for f in a] == [f.test_groups for f in b]
    c = make_folds("subject_kfold", table, k=3, seed=2)
    assert [f.test_groups for f in a] != [f.test_groups for f in c]
    groups = [g for f in a for g in f.test_groups]
    assert len(groups) == len(set(groups)) == 10
    with pytest.raises(MerError):
        make_folds("subject_kfold", table, k=11)


def test_cross_database_and_leave_one_dataset_out():
    table = clips({"hs": {"s1": 2, "s2": 1}, "vis": {"s1": 2}})
    (fold,) = make_folds("cross_database", table, source="hs", target="vis")
    assert fold.train.tolist() == [0, 1, 2] and fold.test.tolist() == [3, 4]
    lodo = make_folds("leave_one_dataset_out", table)
    assert [f.name for f in lodo] == ["hs", "vis"]
    with pytest.raises(MerError, match="target 'nir'"):
        make_folds("cross_database", table, source="hs", target="nir")


def test_unknown_protocol_names_the_choices():
    with pytest.raises(MerError, match="loso"):
        make_folds("lodo", clips({"x": {"1": 1}}))
