"""The cross-database protocol in the fold loop: per-dataset schemes, transductive methods (target
features without labels), per-experiment metrics, the oracle variant kept apart, one repeat for a
deterministic method."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from mer import artifacts
from mer.data.manifest import Clip, write_manifest
from mer.errors import MerError
from mer.eval.runner import train
from mer.io import save_npz
from mer.methods.registry import METHODS, Samples, register

THREE = ["negative", "positive", "surprise"]
# the same three classes, spelt by each corpus's own vocabulary
SPELLING = {"casme2_3class": {"negative": "disgust", "positive": "happiness", "surprise": "surprise"},
            "smic_3class": {c: c for c in THREE}}


def build_corpus(root, name, scheme, n_subjects, per_subject, seed, feature, with_crop=False):
    """A manifest and LBP-TOP artifacts of 3-class clips; ``feature(label, rng)`` draws a clip's
    feature vector; ``with_crop`` adds a crop artifact per clip (the face TGSR's figure draws on)."""
    rng = np.random.default_rng(seed)
    feat_dir = root / artifacts.artifact_dir("lbptop", name)
    crop_dir = root / artifacts.artifact_dir("crop", name)
    feat_dir.mkdir(parents=True)
    clips, index = [], []
    for s in range(n_subjects):
        for c in range(per_subject):
            label = THREE[(s + c) % 3]
            cid = f"{name}_s{s}_{c}"
            raw = SPELLING[scheme][label]
            clips.append(Clip(cid, name, f"s{s}", f"c{c}", "x", ["a.jpg"], 1, 1, 1, "midpoint", 0, [],
                              "", raw, raw, 100.0, {scheme: label}))
            save_npz(feat_dir / f"{cid}.npz", feature=feature(label, rng).astype(np.float32))
            if with_crop:
                crop_dir.mkdir(parents=True, exist_ok=True)
                save_npz(crop_dir / f"{cid}.npz", frames=np.full((2, 64, 64, 3), 128, np.uint8))
            index.append({"clip_id": cid, "status": "ok"})
    write_manifest(clips, root / artifacts.manifest_path(name))
    pd.DataFrame(index).to_csv(feat_dir / "index.csv", index=False)


def fake_corpus(root, name, scheme, shift, n_subjects=4, per_subject=6, dim=12, seed=0):
    """Clips whose class moves feature block 0..2; the whole corpus is offset by ``shift``."""
    def feature(label, rng):
        x = rng.normal(size=dim) + shift
        x[THREE.index(label) * 4:(THREE.index(label) + 1) * 4] += 4.0
        return x
    build_corpus(root, name, scheme, n_subjects, per_subject, seed, feature)


@dataclass
class Calls:
    fits: list = field(default_factory=list)


CALLS = Calls()


@pytest.fixture
def transductive_method():
    """A nearest-class-mean classifier that centres source and target on their own means, so the
    target's features (never its labels) matter; its oracle grid is a shrinkage of the means."""

    @register("_centring")
    class Centring:
        inputs = ("lbptop",)
        transductive = True
        deterministic = True

        @dataclass
        class Params:
            shrink: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])

        def __init__(self, params):
            self.params = params

        def fit(self, train: Samples, rng, unlabeled: Samples | None = None):
            assert train.y is not None and unlabeled is not None and unlabeled.y is None
            CALLS.fits.append((set(train.meta["dataset"]), set(unlabeled.meta["dataset"])))
            x = train.stack("lbptop", "feature")
            self.target_mean_ = unlabeled.stack("lbptop", "feature").mean(0)
            centred = x - x.mean(0)
            self.means_ = np.stack([centred[train.y == k].mean(0) for k in range(len(train.classes))])
            return self

        def _proba(self, test, shrink=0.0):
            z = test.stack("lbptop", "feature") - self.target_mean_
            d = ((z[:, None, :] - (1 - shrink) * self.means_[None]) ** 2).sum(-1)
            e = np.exp(-(d - d.min(1, keepdims=True)))
            return e / e.sum(1, keepdims=True)

        def predict_proba(self, test: Samples):
            assert test.y is None
            return self._proba(test)

        def oracle_path(self, train, target):
            self.fit(train, None, unlabeled=target)
            for s in self.params.shrink:
                yield {"shrink": s}, self._proba(target, s)

    yield "_centring"
    METHODS.pop("_centring")


def cd_params(method, **ev):
    base = {"datasets": ["fa", "fb"], "protocol": "cdmer", "scheme": "smic_3class",
            "schemes": {"fa": "casme2_3class"}, "experiments": ["fa->fb", "fb->fa"],
            "aliases": {"fa": "C", "fb": "H"}, "seeds": [0, 1, 2], "permutation_control": True}
    base.update(ev)
    return {"seed": 0, "eval": base, "models": {method: {}}}


def test_cdmer_metrics_are_keyed_by_experiment(tmp_path, monkeypatch, transductive_method):
    monkeypatch.chdir(tmp_path)
    fake_corpus(tmp_path, "fa", "casme2_3class", shift=0.0)
    fake_corpus(tmp_path, "fb", "smic_3class", shift=3.0, seed=1)
    CALLS.fits.clear()
    m = train(transductive_method, cd_params(transductive_method), tmp_path / "models/x",
              tmp_path / "metrics/x.json")
    assert set(m["experiments"]) == {"fa->fb", "fb->fa"}
    assert m["experiments"]["fa->fb"]["short"] == "C->H"
    assert m["experiments"]["fa->fb"]["n_test"] == 24
    assert m["scheme"] == "casme2_3class,smic_3class"
    assert m["n_seeds"] == 1                                   # deterministic: one repeat
    assert "pooled" not in m and m["mean"]["uf1"] > 0.9        # centring undoes the corpus offset
    assert m["control"]["permuted_labels"]["uf1"] < 0.6
    # fitted on the source, with the target's features
    assert ({"fa"}, {"fb"}) in CALLS.fits and ({"fb"}, {"fa"}) in CALLS.fits
    assert "oracle_variant" not in m
    assert (tmp_path / "reports/_centring/README.md").read_text().endswith("draws no figures.\n")


def test_oracle_variant_is_recorded_apart(tmp_path, monkeypatch, transductive_method):
    monkeypatch.chdir(tmp_path)
    fake_corpus(tmp_path, "fa", "casme2_3class", shift=0.0)
    fake_corpus(tmp_path, "fb", "smic_3class", shift=3.0, seed=1)
    m = train(transductive_method, cd_params(transductive_method, oracle=True,
                                             permutation_control=False),
              tmp_path / "models/x", tmp_path / "metrics/x.json")
    oracle = m["oracle_variant"]
    assert oracle["selection"] == "oracle" and m["selection"] == "train-only"
    assert set(oracle["experiments"]) == {"fa->fb", "fb->fa"}
    assert all(e["grid_points"] == 3 and "shrink" in e["selected"] for e in oracle["experiments"].values())
    # the oracle picks the best grid point on the target labels: never worse than the default point
    assert all(oracle["experiments"][n]["uf1"] >= m["experiments"][n]["uf1"] - 1e-9
               for n in m["experiments"])


def test_oracle_needs_cdmer_and_mismatched_schemes_are_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_corpus(tmp_path, "fa", "casme2_3class", shift=0.0)
    fake_corpus(tmp_path, "fb", "smic_3class", shift=3.0, seed=1)
    p = cd_params("lbptop_svm", oracle=True, protocol="loso")
    with pytest.raises(MerError, match="eval.oracle is a variant of the cdmer protocol"):
        train("lbptop_svm", p, tmp_path / "m", tmp_path / "m.json")
    p = cd_params("lbptop_svm", schemes={"fa": "casme2_5class"})
    with pytest.raises(MerError, match="same classes"):
        train("lbptop_svm", p, tmp_path / "m", tmp_path / "m.json")


def test_svm_baseline_runs_every_experiment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_corpus(tmp_path, "fa", "casme2_3class", shift=0.0)
    fake_corpus(tmp_path, "fb", "smic_3class", shift=0.0, seed=1)
    p = cd_params("lbptop_svm", seeds=[0], oracle=True)
    p["models"]["lbptop_svm"] = {"C": [0.1]}
    m = train("lbptop_svm", p, tmp_path / "m", tmp_path / "m.json")
    assert m["mean"]["uf1"] > 0.8 and m["n_seeds"] == 1
    assert "oracle_variant" not in m          # no paper grid to search: no oracle variant


def test_report_lays_cdmer_out_like_the_paper(tmp_path, monkeypatch, transductive_method):
    from mer.eval.report import write_summary
    monkeypatch.chdir(tmp_path)
    fake_corpus(tmp_path, "fa", "casme2_3class", shift=0.0)
    fake_corpus(tmp_path, "fb", "smic_3class", shift=3.0, seed=1)
    p = cd_params(transductive_method, oracle=True)
    train(transductive_method, p, tmp_path / "models/x", tmp_path / "metrics/_centring.json")
    published = tmp_path / "published.yaml"
    published.write_text("""tgsr:
  tables:
    cdmer:
      columns: {exp7: {source: C, target: H}, exp8: {source: H, target: C}}
      rows:
        - method: SVM
          cells: {exp7: {uf1: 0.3697, accuracy: 0.4512}, exp8: {uf1: 0.3245, accuracy: 0.4846}}
""")
    write_summary(["_centring"], tmp_path / "summary.md", tmp_path / "metrics", published)
    text = (tmp_path / "summary.md").read_text()
    assert "| method | selection | Exp.7 (C->H) M-F1 / ACC | Exp.8 (H->C) M-F1 / ACC |" in text
    assert "| paper: SVM | published | 0.3697 / 45.12 | 0.3245 / 48.46 | 0.3471 / 46.79 | - |" in text
    assert "| _centring (oracle variant) | oracle |" in text


def lbptop_corpus(root, name, scheme, shift, seed, n_subjects=3, per_subject=6):
    """Clips with LBP-TOP-shaped features (85 blocks x 3 planes x 59 bins, each histogram summing
    to 1) whose class raises bins of blocks 5, 20 and 40, plus a crop artifact (the face figure)."""
    def feature(label, rng):
        h = rng.gamma(2.0, 1.0, (85, 3, 59)) + shift * np.linspace(0, 1, 59)
        h[[5, 20, 40][THREE.index(label)], :, :8] += 3.0
        return (h / h.sum(-1, keepdims=True)).reshape(-1)
    build_corpus(root, name, scheme, n_subjects, per_subject, seed, feature, with_crop=True)


def test_tgsr_runs_cdmer_and_draws_each_experiment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lbptop_corpus(tmp_path, "fa", "casme2_3class", shift=0.0, seed=0)
    lbptop_corpus(tmp_path, "fb", "smic_3class", shift=1.0, seed=1)
    p = cd_params("tgsr", permutation_control=False)
    p["models"]["tgsr"] = {"kappa": [3, 6], "inner_folds": 3}
    m = train("tgsr", p, tmp_path / "models/tgsr", tmp_path / "metrics/tgsr.json")
    assert m["n_seeds"] == 1 and m["mean"]["uf1"] > 0.8
    figures = tmp_path / "reports/tgsr"
    assert sorted(f.name for f in figures.glob("*.png")) == ["fa_to_fb.png", "fb_to_fa.png"]
    assert "fa->fb: kappa" in (figures / "README.md").read_text()


def test_train_command_reports_the_mean_over_experiments(tmp_path, monkeypatch, capsys,
                                                         transductive_method):
    import yaml

    from mer.cli import main
    monkeypatch.chdir(tmp_path)
    fake_corpus(tmp_path, "fa", "casme2_3class", shift=0.0)
    fake_corpus(tmp_path, "fb", "smic_3class", shift=3.0, seed=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(cd_params(transductive_method)))
    assert main(["train", transductive_method]) == 0
    assert "mean over 2 experiments: accuracy" in capsys.readouterr().out
