"""The shared fold loop: leakage guards, pooled metrics, seeds, the permutation control."""

from dataclasses import dataclass

import json
import numpy as np
import pandas as pd
import pytest

from mer import artifacts
from mer.data.manifest import Clip, write_manifest
from mer.eval.runner import train
from mer.io import save_npz
from mer.methods.registry import METHODS, Samples, register

CLASSES = ["happiness", "surprise", "disgust", "repression", "others"]


def fake_dataset(root, n_subjects=8, per_subject=10, dim=40, signal=3.0, seed=0):
    """A manifest + LBP-TOP-like artifacts where the class shifts a few feature dimensions."""
    rng = np.random.default_rng(seed)
    clips, index = [], []
    out = root / artifacts.artifact_dir("lbptop", "fake")
    out.mkdir(parents=True)
    for s in range(n_subjects):
        for c in range(per_subject):
            label = CLASSES[(s + c) % len(CLASSES)]
            cid = f"sub{s:02d}_EP{c:02d}"
            clips.append(Clip(cid, "fake", f"{s:02d}", f"EP{c:02d}", "x", ["a.jpg"], 1, 1, 1,
                              "annotated", 0, [], "", label, label, 200.0,
                              {"casme2_5class": label, "casme2_3class": ""}))
            x = rng.normal(size=dim)
            x[CLASSES.index(label) * 3:(CLASSES.index(label) + 1) * 3] += signal
            save_npz(out / f"{cid}.npz", feature=x.astype(np.float32))
            index.append({"clip_id": cid, "status": "ok"})
    write_manifest(clips, root / artifacts.manifest_path("fake"))
    pd.DataFrame(index).to_csv(out / "index.csv", index=False)


def params(**eval_overrides):
    ev = {"datasets": ["fake"], "protocol": "loso", "scheme": "casme2_5class", "seeds": [0, 1],
          "permutation_control": True}
    ev.update(eval_overrides)
    return {"seed": 0, "eval": ev, "models": {"lbptop_svm": {"C": [0.01, 0.1]}}}


def test_lbptop_svm_learns_and_control_stays_at_chance(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_dataset(tmp_path)
    m = train("lbptop_svm", params(), tmp_path / "models/lbptop_svm", tmp_path / "metrics/lbptop_svm.json")
    assert m["n_clips"] == 80 and m["n_folds"] == 8
    assert m["n_seeds"] == 1                      # deterministic: one repeat, not eval.seeds' two
    assert m["pooled"]["uf1"] > 0.8
    assert m["control"]["permuted_labels"]["uf1"] < 0.4
    assert set(m["folds"]) == {f"fake/{s:02d}" for s in range(8)}
    on_disk = json.loads((tmp_path / "metrics/lbptop_svm.json").read_text())
    assert on_disk["pooled"] == m["pooled"]
    pred = pd.read_csv(tmp_path / "models/lbptop_svm/predictions.csv", dtype={"subject": str})
    assert len(pred) == 80
    assert np.allclose(pred[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1, atol=1e-4)
    folds = pd.read_csv(tmp_path / "models/lbptop_svm/folds.csv")
    assert folds["n_test"].sum() == 80


@dataclass
class _Spy:
    seen: list


def test_methods_never_see_test_labels_or_test_subjects(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_dataset(tmp_path, n_subjects=4, per_subject=5)

    @register("spy_method")
    class Spy:
        inputs = ("lbptop",)

        @dataclass
        class Params:
            pass

        def __init__(self, p):
            self.train_subjects = None

        def fit(self, train: Samples, rng):
            assert train.y is not None
            self.train_subjects = set(train.meta["subject"])
            self.classes = train.classes

        def predict_proba(self, test: Samples):
            assert test.y is None
            assert not set(test.meta["subject"]) & self.train_subjects
            return np.full((len(test), len(self.classes)), 1 / len(self.classes))

    try:
        p = params(permutation_control=False)
        p["models"] = {"spy_method": {}}
        m = train("spy_method", p, tmp_path / "models/spy", tmp_path / "metrics/spy.json")
        assert m["n_folds"] == 4 and "control" not in m
    finally:
        METHODS.pop("spy_method")


def test_unknown_hyper_parameter_is_an_error(tmp_path, monkeypatch):
    from mer.errors import MerError
    monkeypatch.chdir(tmp_path)
    fake_dataset(tmp_path, n_subjects=2, per_subject=5)
    p = params()
    p["models"]["lbptop_svm"]["c"] = [1.0]
    with pytest.raises(MerError, match="models.lbptop_svm.c'.*did you mean 'models.lbptop_svm.C'"):
        train("lbptop_svm", p, tmp_path / "m", tmp_path / "m.json")


def test_test_clips_lose_their_action_units_and_the_control_moves_them_with_the_labels():
    meta = pd.DataFrame({"clip_id": list("abcdef"), "dataset": ["d"] * 6, "corpus": ["d"] * 6,
                         "subject": list("112233"),
                         "aus": [["1"], ["2"], ["4"], ["12"], ["14"], ["15"]]})
    samples = Samples(meta, np.arange(6), [str(i) for i in range(6)], {})
    hidden = samples.subset(np.array([0, 1]), hide_labels=True)
    assert hidden.y is None and hidden.meta["aus"].isna().all()
    assert samples.subset(np.array([2])).meta["aus"].tolist() == [["4"]]
    from mer.eval.runner import permuted
    shuffled = permuted(samples, seed=0)
    assert sorted(shuffled.y.tolist()) == list(range(6)) and shuffled.y.tolist() != list(range(6))
    # each label keeps its own annotation: label i still carries AU list i
    original = dict(zip(range(6), meta["aus"]))
    assert all(original[y] == a for y, a in zip(shuffled.y, shuffled.meta["aus"]))
    assert samples.meta["aus"].tolist()[0] == ["1"]        # the input is left as it was
