"""MoExt: module shapes (Tables 1-2 at 224 px), the losses against their loop forms, the view
expansion sets, the leakage rule of the pre-training pool, the SynthME macro block read back by
the CAS(ME)^3 adapter, and fit/predict on a tiny problem (deterministic, learns, shares its
pre-training across folds, reconstructs held-out apexes better than copying the onset)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mer import artifacts
from mer.data.manifest import Clip, write_manifest
from mer.io import save_npz
from mer.methods import moext as moext_module
from mer.methods.moext import PoolClip, allowed, check_pool, key_frames
from mer.methods.moext_losses import (
    expansion_labels,
    reconstruction_loss,
    shape_shape_loss,
    shape_shape_loss_loop,
    shape_texture_loss,
    shape_texture_loss_loop,
)
from mer.methods.moext_model import (
    Arch,
    ClassifierNet,
    FeatureSeparator,
    MotionExtractor,
    PretrainNet,
    Reconstructor,
)
from mer.methods.moext_views import (
    OPERATIONS,
    augment_pairs,
    draw_operations,
    expansion_sets,
)
from mer.methods.registry import Samples, build

CLASSES = ["a", "b"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest.py


# ------------------------------------------------------------------ modules
def test_shapes_through_f_e_r_at_224_px():
    arch = Arch(size=224, width=8, blocks=(1, 1, 1), branch_channels=16, pool=7, dim=32,
                recon_width=32, recon_blocks=2, proj_dim=8)
    f = FeatureSeparator(arch).eval()
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        g = f.backbone(x)
        s, t = f(x)
        m = MotionExtractor(arch).eval()(s, s.flip(0))
        out = Reconstructor(arch).eval()(m, t)
    assert g.shape == (2, 32, 14, 14)          # stem /4, two stride-2 stages: 224 / 16
    assert s.shape == t.shape == m.shape == (2, 32)
    assert out.shape == (2, 3, 224, 224) and out.min() >= 0   # the final ReLU of Table 2
    assert not torch.allclose(s, t)             # two branches, not one


def test_paper_reconstruction_follows_table_2():
    """Table 2 at the paper's widths: 1024 x 1 x 1 in, 512 x 8 x 8, 512 x 7 x 7, ..., 64 x 112,
    32 x 112 x 112, 3 x 224 x 224 out."""
    r = Reconstructor(Arch()).eval()
    shapes = []
    hooks = [mod.register_forward_hook(lambda _m, _i, o: shapes.append(tuple(o.shape[1:])))
             for mod in r.net]
    with torch.no_grad():
        out = r(torch.rand(1, 512), torch.rand(1, 512))
    for h in hooks:
        h.remove()
    assert shapes[:4] == [(512, 2, 2), (512, 4, 4), (512, 8, 8), (512, 7, 7)]
    assert shapes[4:8] == [(512, 14, 14), (256, 28, 28), (128, 56, 56), (64, 112, 112)]
    assert shapes[8:13] == [(32, 112, 112)] * 5
    assert out.shape == (1, 3, 224, 224)


def test_motion_extractor_ablation_is_the_absolute_difference():
    arch = Arch(dim=6, motion_extractor=False)
    s_o, s_a = torch.randn(3, 6), torch.randn(3, 6)
    assert torch.equal(MotionExtractor(arch)(s_o, s_a), (s_a - s_o).abs())
    assert not list(MotionExtractor(arch).parameters())


def test_classifier_inherits_the_pretrained_shape_path_and_extractor():
    arch = Arch(size=28, width=4, blocks=(1,), small_input=True, branch_channels=4, pool=2,
                dim=8, recon_width=8, recon_blocks=1, proj_dim=4)
    pre = PretrainNet(arch)
    net = ClassifierNet(arch, 3)
    net.load_pretrained(pre)
    for name, value in net.state_dict().items():
        if not name.startswith("head."):
            assert torch.equal(value, pre.state_dict()[name]), name
    assert net.separator.texture is None


# ------------------------------------------------------------------ losses
def test_losses_match_their_loop_forms():
    g = torch.Generator().manual_seed(0)
    n, m, d = 3, 3, 5
    f_s = torch.nn.functional.normalize(torch.randn(n, 2 * m, d, generator=g), dim=-1)
    f_t = torch.nn.functional.normalize(torch.randn(n, 2 * m, d, generator=g), dim=-1)
    f_bar = torch.nn.functional.normalize(torch.randn(d, generator=g), dim=0)
    for eps in (0.2, 0.5, 3.0):
        assert float(shape_texture_loss(f_bar, f_s, f_t, eps)) == pytest.approx(
            shape_texture_loss_loop(f_bar, f_s, f_t, eps), rel=1e-5)
        assert float(shape_shape_loss(f_s, eps)) == pytest.approx(
            shape_shape_loss_loop(f_s, eps), rel=1e-5, abs=1e-7)
    a, b = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    assert float(reconstruction_loss(a, b)) == pytest.approx(
        sum(abs(float(x) - float(y)) for x, y in zip(a.flatten(), b.flatten())) / a.numel())
    # L_ss is zero when each expansion set collapses to a point and the two points are eps apart
    onset, apex = torch.zeros(d), torch.zeros(d)
    apex[0] = 0.5
    collapsed = torch.stack([onset] * m + [apex] * m)[None]            # (1, 2m, d)
    assert float(shape_shape_loss(collapsed, 0.5)) == pytest.approx(0.0, abs=1e-5)
    assert float(shape_shape_loss(collapsed, 0.6)) > 0
    assert expansion_labels(2).tolist() == [0, 0, 1, 1]


def test_shape_shape_loss_has_finite_gradients_at_zero_distance():
    f = torch.zeros(2, 4, 3, requires_grad=True)
    shape_shape_loss(f, 0.3).backward()
    assert torch.isfinite(f.grad).all()


# ------------------------------------------------------------------ views and augmentation
def test_expansion_sets_hold_the_frame_and_distinct_operations():
    g = torch.Generator().manual_seed(1)
    onset, apex = torch.rand(4, 3, 8, 8, generator=g), torch.rand(4, 3, 8, 8, generator=g)
    m = 3
    ops = draw_operations(500, m, torch.Generator().manual_seed(2))
    assert ops.shape == (500, 2) and (ops[:, 0] != ops[:, 1]).all()
    assert set(ops.flatten().tolist()) == set(range(len(OPERATIONS)))
    sets = expansion_sets(onset, apex, m, torch.Generator().manual_seed(3), 0.05, 1.5)
    assert sets.shape == (4, 2 * m, 3, 8, 8)
    assert torch.equal(sets[:, 0], onset) and torch.equal(sets[:, m], apex)   # view 0
    chosen = draw_operations(4, m, torch.Generator().manual_seed(3))          # same draw
    for b in range(4):
        for v, op in enumerate(chosen[b].tolist(), start=1):
            for frame, base in ((onset, 0), (apex, m)):
                view = sets[b, base + v]
                if OPERATIONS[op] == "grayscale":   # three equal channels, the same op on both
                    assert torch.allclose(view[0], view[1]) and torch.allclose(view[1], view[2])
                elif OPERATIONS[op] == "contrast":  # deterministic: (x - mean) 1.5 + mean
                    x = frame[b]
                    assert torch.allclose(view, ((x - x.mean()) * 1.5 + x.mean()).clamp(0, 1))
                else:                               # noise: differs from the frame
                    assert (view - frame[b]).abs().mean() > 0.01
    with pytest.raises(ValueError):
        draw_operations(2, 5, g)


def test_augmented_copies_keep_the_pair_and_move_both_frames_alike():
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 255, (2, 2, 16, 16, 3), dtype=np.uint8)
    pairs[:, 1] = pairs[:, 0]                               # apex = onset: no motion
    out = augment_pairs(pairs, 4, 10.0, True, rng)
    assert out.shape == (8, 2, 16, 16, 3)
    assert np.array_equal(out[0], pairs[0]) and np.array_equal(out[4], pairs[1])
    assert all(np.array_equal(o[0], o[1]) for o in out)    # the same transform on both frames
    assert not np.array_equal(out[1], out[0])


# ------------------------------------------------------------------ leakage
def _meta(rows):
    return Samples(pd.DataFrame(rows, columns=["clip_id", "dataset", "corpus", "subject"]),
                   np.zeros(len(rows), int), CLASSES, {"crop": [Path("x")] * len(rows)})


def test_leakage_rule_and_its_assertion():
    train = _meta([("c1", "casme3", "casme3", "spNO.1"), ("c2", "casme3", "casme3", "spNO.2")])
    corpora, subjects = {"casme3"}, {("casme3", "spNO.1"), ("casme3", "spNO.2")}
    own = PoolClip("m1", "casme3_macro", "casme3", "spNO.1", True, Path("m1"))
    test_subject = PoolClip("m9", "casme3_macro", "casme3", "spNO.9", True, Path("m9"))
    other = PoolClip("s1", "synthme_macro", "synthme_macro", "spNO.9", True, Path("s1"))
    assert allowed(own, corpora, subjects) and allowed(other, corpora, subjects)
    assert not allowed(test_subject, corpora, subjects)
    check_pool([own, other], train)
    with pytest.raises(AssertionError, match="leakage"):
        check_pool([own, test_subject, other], train)


# ------------------------------------------------------------------ the macro block
def test_synthme_macro_block_reads_back_through_the_casme3_adapter(tmp_path):
    from mer.data.ingest import ingest
    from mer.synth.casme3_layout import SHEET_PATH
    from mer.synth.corpus import synthesize
    from mer.synth.params import DEFAULT_VARIANTS, SynthParams
    from mer.synth.variants import corpus_params

    base = SynthParams.from_dict({"frame_size": [256, 192], "face_width_px": 110.0,
                                  "position_px": 6.0})
    macro = corpus_params(base, "synthme_macro")
    assert set(macro.subjects()).isdisjoint(base.subjects())             # disjoint subjects
    assert DEFAULT_VARIANTS["synthme_macro"]["layout"] == "casme3"
    tiny = dataclasses.replace(macro, n_subjects=2, subject_numbers=(101, 102),
                               clips_per_subject=5, variants={})
    specs = synthesize(tiny, tmp_path / "macro", 1)
    sheet = pd.read_excel(tmp_path / "macro" / SHEET_PATH, sheet_name=None, dtype=str)
    assert list(sheet) == ["AU+Emotion", "eye blink"]
    assert list(sheet["AU+Emotion"].columns) == ["Subject", "Filename", "Onset", "Apex", "Offset",
                                                 "AU", "Expression type", "Objective class"]
    kinds = set(sheet["AU+Emotion"]["Expression type"])
    assert kinds <= {"Macro-expression", "Micro-expression"} and "Macro-expression" in kinds
    cfg = {"adapter": "casme3", "part": "A_macro", "corpus": "synthme_macro",
           "root": str(tmp_path / "macro"), "sheet": SHEET_PATH, "damaged_frames": None,
           "expression_types": ["macro-expression", "micro-expression"], "fps": 30.0}
    clips = ingest("synthme_macro", cfg, 1, "annotated")
    assert len(clips) == len(specs) == 10
    for c in clips:
        assert c.corpus == "synthme_macro" and c.subject in ("spNO.101", "spNO.102")
        assert all((tmp_path / "macro" / c.frame_dir / f).is_file() for f in c.frames)
        if c.emotion == "macro-expression":     # the 5th frame stands in for the apex
            assert c.apex_source == "frame5" and c.apex_index == 4
        else:
            assert c.apex_source == "annotated" and 0 < c.apex_index < len(c.frames) - 1
    macro_len = [len(c.frames) for c in clips if c.emotion == "macro-expression"]
    assert min(macro_len) >= 18 and max(macro_len) <= 40          # 0.6-1.1 s at 30 fps


# ------------------------------------------------------------------ the method on a tiny problem
SIZE = 28


def _face(rng: np.random.Generator) -> np.ndarray:
    """A smooth random 'face' (SIZE, SIZE, 3) float in [0.2, 0.6]."""
    low = rng.uniform(0.2, 0.6, (4, 4, 3))
    return np.kron(low, np.ones((7, 7, 1)))


def _clip(rng: np.random.Generator, label: int) -> np.ndarray:
    """(3, SIZE, SIZE, 3) uint8 onset, middle, apex: a bright patch grows in the upper (class 0)
    or lower (class 1) half between onset and apex."""
    onset = _face(rng)
    apex = onset.copy()
    row = 4 if label == 0 else 18
    col = int(rng.integers(9, 12))
    apex[row:row + 6, col:col + 6] += 0.35
    frames = np.stack([onset, (onset + apex) / 2, apex])
    frames += rng.normal(0, 0.005, frames.shape)
    return (frames.clip(0, 1) * 255).round().astype(np.uint8)


def _write_crop(path: Path, frames: np.ndarray) -> Path:
    save_npz(path, compress=False, frames=frames,
             landmarks=np.zeros((len(frames), 68, 2), np.float32),
             transform=np.eye(2, 3), apex_index=np.int64(2))
    return path


def _samples(root: Path, n_subjects: int = 4, per_subject: int = 8, seed: int = 0) -> Samples:
    rng = np.random.default_rng(seed)
    rows, paths, y = [], [], []
    root.mkdir(parents=True, exist_ok=True)
    for s in range(n_subjects):
        for k in range(per_subject):
            label = k % 2
            cid = f"s{s}_{k}"
            paths.append(_write_crop(root / f"{cid}.npz", _clip(rng, label)))
            rows.append({"clip_id": cid, "dataset": "tiny", "corpus": "tiny", "subject": str(s),
                         "aus": []})
            y.append(label)
    return Samples(pd.DataFrame(rows), np.array(y), CLASSES, {"crop": paths})


def _write_macro_corpus(root: Path, n: int = 16) -> None:
    """A pre-training corpus 'tiny_macro' (manifest + crop index) under ``root`` (the cwd)."""
    rng = np.random.default_rng(5)
    out = artifacts.artifact_dir("crop", "tiny_macro")
    out.mkdir(parents=True)
    clips, rows = [], []
    for i in range(n):
        cid = f"m{i}"
        _write_crop(out / f"{cid}.npz", _clip(rng, i % 2))
        clips.append(Clip(cid, "tiny_macro", f"spNO.{100 + i // 4}", cid, "x", ["1", "2", "3"],
                          1, 3, 3, "frame5", 2, [], "", "macro-expression", "macro-expression",
                          30.0))
        rows.append({"clip_id": cid, "status": "ok"})
    write_manifest(clips, artifacts.manifest_path("tiny_macro"))
    artifacts.write_index(out, rows)


TINY = {"epochs": 25, "batch_size": 16, "lr": 3e-3, "pretrain_epochs": 20,
        "pretrain_batch_size": 16, "pretrain_lr": 3e-3, "views": 2, "copies": 2,
        "pretrain_copies": 2, "size": SIZE, "width": 4, "blocks": [1], "small_input": True,
        "branch_channels": 8, "pool": 4, "dim": 16, "recon_width": 16, "recon_blocks": 1,
        "proj_dim": 8, "residual": True, "recon_stem": "linear", "freeze": 0, "device": "cpu"}


def test_key_frames_reads_only_onset_and_apex(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (5, 8, 8, 3), dtype=np.uint8)
    save_npz(tmp_path / "c.npz", compress=False, frames=frames, apex_index=np.int64(3))
    pair, apex = key_frames(tmp_path / "c.npz")
    assert apex == 3 and np.array_equal(pair, frames[[0, 3]])
    save_npz(tmp_path / "z.npz", compress=True, frames=frames, apex_index=np.int64(3))
    assert np.array_equal(key_frames(tmp_path / "z.npz")[0], frames[[0, 3]])


def _tiny_split(tmp_path: Path) -> tuple[Samples, Samples, np.ndarray]:
    _write_macro_corpus(tmp_path)
    samples = _samples(tmp_path / "crop")
    test_idx = np.flatnonzero(samples.meta["subject"] == "3")
    return (samples.subset(np.flatnonzero(samples.meta["subject"] != "3")),
            samples.subset(test_idx, hide_labels=True), samples.y[test_idx])


def test_tiny_fit_is_deterministic_and_shares_its_pretraining(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    moext_module._PRETRAINED.clear()
    train, test, _ = _tiny_split(tmp_path)
    section = {**TINY, "epochs": 3, "pretrain_epochs": 3, "pretrain_datasets": ["tiny_macro"],
               "pretrain_micro": False}

    def run(fold: int):
        m = build("moext", section)
        m.fit(train, np.random.default_rng([0, fold]))
        return m, m.predict_proba(test)

    first, p1 = run(0)
    again, p2 = run(1)          # another fold of the same seed: the pre-training is reused
    moext_module._PRETRAINED.clear()
    _, p3 = run(1)              # the same fold without the cache: identical numbers
    assert np.array_equal(p2, p3) and not np.array_equal(p1, p2)
    e1, e2 = first.explain(), again.explain()
    assert e1["scope"] == "per seed, shared across folds" and not e1["shared"] and e2["shared"]
    assert e1["pretrain_history"] == e2["pretrain_history"]
    assert e1["pool_size"] == 16 and e1["pool_macro"] == 16
    assert p1.shape == (len(test), 2) and np.allclose(p1.sum(1), 1)
    moext_module._PRETRAINED.clear()


def test_tiny_fit_learns_and_reconstructs_held_out_apexes(tmp_path, monkeypatch):
    """Pre-trained on the macro corpus, R rebuilds the held-out subject's apexes closer (L1) than
    copying the onset does; the classifier separates the two movements."""
    monkeypatch.chdir(tmp_path)
    moext_module._PRETRAINED.clear()
    train, test, truth = _tiny_split(tmp_path)
    m = build("moext", {**TINY, "pretrain_epochs": 40, "pretrain_datasets": ["tiny_macro"],
                        "pretrain_micro": False})
    proba = m.fit(train, np.random.default_rng([0, 0])).predict_proba(test)
    e = m.explain()
    assert (proba.argmax(1) == truth).mean() >= 0.75
    assert e["recon_l1"] < 0.9 * e["copy_onset_l1"], (e["recon_l1"], e["copy_onset_l1"])
    assert e["pretrain_history"][-1] < e["pretrain_history"][0]
    moext_module._PRETRAINED.clear()


def test_fold_pool_with_training_clips_pretrains_per_fold_and_drops_test_subjects(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    samples = _samples(tmp_path / "crop", n_subjects=3, per_subject=4)
    train = samples.subset(np.flatnonzero(samples.meta["subject"] != "2"))
    m = build("moext", {**TINY, "epochs": 1, "pretrain_epochs": 1, "pretrain_datasets": [],
                        "pretrain_micro": True})
    pool = m._pool(train)
    assert {c.subject for c in pool} == {"0", "1"} and len(pool) == 8
    m.fit(train, np.random.default_rng([0, 0]))
    assert m.explain()["scope"] == "per fold" and not m.explain()["shared"]
    no_macro = build("moext", {**TINY, "pretrain_micro": True, "macro": False,
                               "pretrain_datasets": []})
    assert all(not c.macro for c in no_macro._pool(train))


def test_bad_params_are_one_clear_error():
    from mer.errors import MerError

    with pytest.raises(MerError, match="7 x 2"):
        build("moext", {"size": 64})
    with pytest.raises(MerError, match="freeze"):
        build("moext", {"freeze": 5})
    with pytest.raises(MerError, match="pool"):
        build("moext", {"pretrain_datasets": [], "pretrain_micro": False})
