"""DeRe-GRL: shapes, the ADM's maps, each loss by hand, gradients, ablations, a seeded fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from mer.errors import MerError
from mer.features.graph import Graph
from mer.io import save_npz
from mer.methods.dere_grl import DeReGRLMethod
from mer.methods.dere_grl_losses import (
    balance_loss,
    mean_centre_loss,
    total_loss,
    weight_centre_loss,
)
from mer.methods.dere_grl_model import DeReGRL, complete_adjacency
from mer.methods.registry import Samples, build

CLASSES = ["happiness", "surprise", "disgust", "repression", "others"]
REPO = Path(__file__).parents[1]
GRAPH = Graph("dere31")


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest.py


def _x(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 31, 2, generator=torch.Generator().manual_seed(seed))  # (N, 3, V, 2)


@pytest.mark.parametrize("c1", [8, 16])
def test_output_shapes_for_both_papers_c1(c1):
    torch.manual_seed(0)
    model = DeReGRL(GRAPH, n_classes=5, c1=c1, hidden=12, c2=6, n_actions=4).eval()
    out = model(_x(6))
    assert out.logits.shape == (6, 5)
    assert out.actions.shape == (6, 3 * 4, 3 * c1)          # F_A: 3 N_a rows of C1 x 3 key frames
    assert out.weights.shape == (6, 12)                     # W: one weight per action feature
    assert [tuple(m.shape) for m in out.maps] == [(6, 10, 4), (6, 9, 4), (6, 12, 4)]  # brows, nose, mouth


def test_map_rows_are_softmax_distributions_over_actions():
    torch.manual_seed(1)
    out = DeReGRL(GRAPH, 5, c1=8, n_actions=3).eval()(_x(5, seed=2) * 3)
    for m in out.maps:
        assert torch.all(m > 0)
        assert torch.allclose(m.sum(2), torch.ones(m.shape[:2]), atol=1e-6)
    # eq. 3 by hand for the nose: F_A^n = M_A^T X_B^n on every key frame
    model = DeReGRL(GRAPH, 5, c1=8, n_actions=3).eval()
    x = _x(2, seed=3)
    with torch.no_grad():
        out = model(x)
        xb = model.backbone(model.data_bn(x.reshape(6, 62)).view(2, 3, 31, 2))  # (2, 3, 31, C1)
    nose = xb[:, :, GRAPH.parts["nose"]]                                      # (2, 3, 9, 8)
    by_hand = torch.stack([out.maps[1][i].T @ nose[i, t] for i in range(2) for t in range(3)])
    got = out.actions[:, 3:6].reshape(2, 3, 3, 8).permute(0, 2, 1, 3).reshape(6, 3, 8)
    assert torch.allclose(by_hand, got, atol=1e-5)


def test_mean_centre_loss_by_hand():
    actions = torch.tensor([[[1.0, 0.0], [0.0, 2.0]],
                            [[3.0, 0.0], [0.0, 2.0]]])              # (N=2, K=2, D=2)
    # centres (2, 0) and (0, 2): squared deviations 1 + 0 per sample, twice -> 2 / (2 * 2)
    assert mean_centre_loss(actions).item() == pytest.approx(0.5)
    assert mean_centre_loss(torch.ones(4, 3, 5)).item() == 0.0


def test_weight_centre_loss_uses_per_class_batch_centres():
    w = torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 5.0]])           # (N=3, K=2)
    y = torch.tensor([0, 0, 1])
    # class 0 centre (2, 0): distances 1, 1; class 1 alone: 0 -> mean 2/3
    assert weight_centre_loss(w, y).item() == pytest.approx(2 / 3)
    assert weight_centre_loss(w, torch.tensor([2, 2, 2])).item() == pytest.approx(
        ((w - w.mean(0)) ** 2).sum(1).mean().item())


def test_balance_loss_pulls_mean_weights_to_uniform():
    w = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.0, 0.5]])             # mean (0.5, 0.25, 0.25)
    assert balance_loss(w).item() == pytest.approx((1 / 6) ** 2 + 2 * (1 / 12) ** 2)
    assert balance_loss(torch.full((4, 9), 1 / 9)).item() == pytest.approx(0.0, abs=1e-12)


def test_total_loss_adds_weighted_terms_and_drops_what_the_ablation_lacks():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1])
    actions = torch.tensor([[[1.0, 0.0]], [[3.0, 0.0]]])
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ce = torch.nn.functional.cross_entropy(logits, y).item()
    got = total_loss(logits, y, actions, w, (1.0, 2.0, 0.5)).item()
    want = ce + 1.0 * 0.5 + 2.0 * 0.0 + 0.5 * balance_loss(w).item()
    assert got == pytest.approx(want)
    assert total_loss(logits, y, actions, w, (0.0, 0.0, 0.0)).item() == pytest.approx(ce)
    assert total_loss(logits, y, None, None, (1.0, 1.0, 1.0)).item() == pytest.approx(ce)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    model = DeReGRL(GRAPH, 5, c1=8, hidden=8, c2=8, n_actions=3)
    out = model(_x(8, seed=4))
    y = torch.arange(8) % 5
    total_loss(out.logits, y, out.actions, out.weights, (1.0, 1.0, 0.1)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_ablations_build_only_their_modules():
    torch.manual_seed(0)
    backbone = DeReGRL(GRAPH, 5, modules="backbone")
    adm = DeReGRL(GRAPH, 5, modules="adm")
    full = DeReGRL(GRAPH, 5, modules="full")
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(backbone) < count(adm) < count(full)
    ob, oa = backbone.eval()(_x(3)), adm.eval()(_x(3))
    assert ob.actions is None and ob.weights is None and ob.logits.shape == (3, 5)
    assert oa.weights is None and oa.actions.shape == (3, 9, 48)
    assert np.allclose(complete_adjacency(4).sum(0), 0.25)   # complete graph: every entry 1/k


# --------------------------------------------------------------------------- method on clips
def _clips(root: Path, n_subjects: int = 5, per_subject: int = 10, versions: int = 2,
           seed: int = 0) -> Samples:
    """Clips whose class moves a few landmarks between onset and apex (and half-way back by the
    offset); subjects differ in face shape; version s > 0 adds landmark noise (box-scale noise)."""
    rng = np.random.default_rng(seed)
    motion = rng.normal(0, 0.05, (len(CLASSES), 31, 2)) * (rng.random((len(CLASSES), 31, 1)) < 0.3)
    paths, rows, y = [], [], []
    for s in range(n_subjects):
        face = rng.normal(0, 0.05, (31, 2))                                # (31, 2) the subject
        for c in range(per_subject):
            label = (s + c) % len(CLASSES)
            onset = face + rng.normal(0, 0.01, (31, 2))
            keys = np.stack([onset, onset + motion[label], onset + 0.5 * motion[label]])  # (3, 31, 2)
            nodes = keys[None] + np.concatenate(
                [np.zeros((1, 3, 31, 2)), rng.normal(0, 0.01, (versions - 1, 3, 31, 2))])  # (S, 3, 31, 2)
            paths.append(root / f"s{s}_{c}.npz")
            save_npz(paths[-1], nodes=nodes.astype(np.float32))
            rows.append({"clip_id": f"s{s}_{c}", "dataset": "fake", "corpus": "fake",
                         "subject": f"s{s}", "aus": None})
            y.append(label)
    return Samples(pd.DataFrame(rows), np.array(y), CLASSES, {"graph": paths})


QUICK = {"epochs": 40, "batch_size": 32, "lr": 0.003, "c1": 8, "hidden": 8, "c2": 8, "device": "cpu",
         "features": "displacement", "lambda_mc": 0.0, "augment": False}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Samples:
    return _clips(tmp_path_factory.mktemp("dere"))


def test_a_fold_learns_and_repeats_bit_for_bit_under_a_seed(clips):
    train_idx = np.flatnonzero(clips.meta["subject"] != "s4")
    test_idx = np.flatnonzero(clips.meta["subject"] == "s4")
    train, test = clips.subset(train_idx), clips.subset(test_idx, hide_labels=True)
    a = build("dere_grl", QUICK).fit(train, np.random.default_rng(7))
    p = a.predict_proba(test)
    assert p.shape == (10, 5) and np.allclose(p.sum(1), 1, atol=1e-6)
    assert (p.argmax(1) == clips.y[test_idx]).mean() >= 0.7              # chance is 0.2
    assert a.history_[-1] < 0.5 * a.history_[0]
    short = {**QUICK, "epochs": 2}
    once = build("dere_grl", short).fit(train, np.random.default_rng(7)).predict_proba(test)
    again = build("dere_grl", short).fit(train, np.random.default_rng(7)).predict_proba(test)
    assert np.array_equal(once, again)
    other = build("dere_grl", short).fit(train, np.random.default_rng(8)).predict_proba(test)
    assert not np.array_equal(once, other)
    e = a.explain()
    assert np.array(e["maps"][2]).shape == (12, 3) and np.array(e["class_weights"]).shape == (5, 9)


def test_training_uses_every_version_and_testing_only_version_0(clips, tmp_path):
    model = build("dere_grl", {**QUICK, "augment": True, "epochs": 1})
    x, y = model._training_set(clips)
    assert x.shape == (2 * len(clips), 3, 31, 2) and y.tolist() == np.repeat(clips.y, 2).tolist()
    off = build("dere_grl", QUICK)._training_set(clips)[0]
    assert off.shape == (len(clips), 3, 31, 2)
    # a test clip's prediction ignores its versions >= 1
    fitted = model.fit(clips.subset(np.arange(40)), np.random.default_rng(0))
    test = clips.subset(np.arange(40, 50), hide_labels=True)
    moved = []
    for path in test.paths["graph"]:
        nodes = np.load(path)["nodes"].copy()
        nodes[1:] += 5.0
        moved.append(tmp_path / path.name)
        save_npz(moved[-1], nodes=nodes)
    shifted = Samples(test.meta, None, CLASSES, {"graph": moved})
    assert np.array_equal(fitted.predict_proba(test), fitted.predict_proba(shifted))


def test_node_features_are_coordinates_displacements_or_both(clips):
    nodes = np.load(clips.paths["graph"][0])["nodes"]                  # (2, 3, 31, 2)
    coords = build("dere_grl", {**QUICK, "features": "coordinates"})._features(nodes)
    moved = build("dere_grl", QUICK)._features(nodes)
    both = build("dere_grl", {**QUICK, "features": "both"})._features(nodes)
    assert np.array_equal(coords, nodes)
    assert np.all(moved[:, 0] == 0) and np.allclose(moved[:, 1], nodes[:, 1] - nodes[:, 0])
    assert both.shape == (2, 3, 31, 4) and np.array_equal(both[..., 2:], moved)


def test_render_draws_both_figures(clips, tmp_path):
    model = build("dere_grl", {**QUICK, "epochs": 1}).fit(clips, np.random.default_rng(0))
    made = DeReGRLMethod.render({"f1": model.explain(), "f2": model.explain()}, clips, tmp_path)
    assert [name for name, _ in made] == ["action_maps.png", "action_weights.png"]
    assert all((tmp_path / name).stat().st_size > 1000 for name, _ in made)


def test_bad_params_and_inputs_raise_one_clear_error(clips, tmp_path):
    with pytest.raises(MerError, match="modules"):
        build("dere_grl", {"modules": "rrm"})
    with pytest.raises(MerError, match="temporal_kernel"):
        build("dere_grl", {"temporal_kernel": 2})
    with pytest.raises(MerError, match="n_action"):
        build("dere_grl", {"n_action": 3})                               # typo: did-you-mean
    save_npz(tmp_path / "wide.npz", nodes=np.zeros((1, 3, 68, 2), np.float32))
    wide = Samples(clips.meta.iloc[:1], None, CLASSES, {"graph": [tmp_path / "wide.npz"]})
    with pytest.raises(MerError, match="dere31"):
        build("dere_grl", QUICK)._test_set(wide)


def test_shipped_configs_validate():
    quick = yaml.safe_load((REPO / "conf/model/dere_grl.yaml").read_text())
    assert quick["methods"] == ["dere_grl"]
    model = build("dere_grl", quick["models"]["dere_grl"])
    assert model.params.modules == "full" and model.params.n_actions == 3
    paper = yaml.safe_load((REPO / "conf/model/dere_grl_paper.yaml").read_text())
    build("dere_grl", {**quick["models"]["dere_grl"], **paper["models"]["dere_grl"]})
