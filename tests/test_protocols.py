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


def test_cdmer_one_fold_per_experiment_keyed_by_dataset():
    table = clips({"smic": {"s1": 2, "s2": 1}})
    table["dataset"] = ["hs", "hs", "hs"]
    vis = clips({"smic": {"s1": 2}})
    vis["dataset"] = "vis"
    table = pd.concat([table, vis], ignore_index=True)
    # HS and VIS filmed the same people: subject smic/s1 is on both sides, by design
    hv, vh = make_folds("cdmer", table, experiments=["hs->vis", "vis -> hs"])
    assert (hv.name, vh.name) == ("hs->vis", "vis->hs")
    assert hv.train.tolist() == [0, 1, 2] and hv.test.tolist() == [3, 4]
    assert vh.train.tolist() == [3, 4] and vh.test.tolist() == [0, 1, 2]
    with pytest.raises(MerError, match="target 'nir'"):
        make_folds("cdmer", table, experiments=["hs->nir"])
    for bad in (["hs"], ["hs->hs"], []):
        with pytest.raises(MerError, match="experiment|eval.experiments"):
            make_folds("cdmer", table, experiments=bad)


def test_leave_one_dataset_out():
    table = clips({"hs": {"s1": 2, "s2": 1}, "vis": {"s1": 2}})
    lodo = make_folds("leave_one_dataset_out", table)
    assert [f.name for f in lodo] == ["hs", "vis"]


def test_a_leaking_protocol_is_caught():
    from mer.eval import protocols
    from mer.eval.protocols import Fold, register_protocol

    @register_protocol("_leaky")
    def leaky(table, **_):
        return [Fold("x", np.array([0]), np.array([1]), ("a/s1",))]
    try:
        with pytest.raises(AssertionError, match="both train and test"):
            make_folds("_leaky", clips({"a": {"s1": 2}}))
    finally:
        protocols.PROTOCOLS.pop("_leaky")


def test_unknown_protocol_names_the_choices():
    with pytest.raises(MerError, match="loso"):
        make_folds("lodo", clips({"x": {"1": 1}}))
