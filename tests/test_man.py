"""MAN (Multiple Aggregation Networks): the face and RoI geometry on real aligned faces, the
aggregation statistics, the network's shapes, leakage guards, and learning on tiny clips."""

from __future__ import annotations

import contextlib

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import torch.utils.deterministic
from conftest import FIXTURES
from threadpoolctl import threadpool_limits

from mer import artifacts
from mer.data.manifest import Clip, write_manifest
from mer.errors import MerError
from mer.eval.runner import train
from mer.face.crop import CropParams, crop_clip
from mer.io import save_npz
from mer.methods import man as man_module
from mer.methods.man import aggregate, frame_indices
from mer.methods.man_model import MAN as MANNet
from mer.methods.man_model import trunk_dim
from mer.methods.man_rois import (
    BRANCHES,
    ROI_LANDMARKS,
    ROIS,
    cut_rois,
    face_size,
    face_window,
    faces_from_crops,
    roi_contains,
    roi_size,
    to_face_points,
)
from mer.methods.registry import Samples, build

VIDEO = FIXTURES / "faces" / "WolfgangLanger_Pexels.mp4"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: a second OpenMP thread only spins against the other jobs on a shared machine
    (measured 10x slower fits with two threads under load)."""
    with threadpool_limits(1):
        yield


# ------------------------------------------------------------------ geometry
def test_face_and_region_layout_match_the_paper_grid():
    assert face_size(10) == (120, 140)                      # (w, h): the paper's face
    assert roi_size("face", 10) == (140, 120)
    assert {n: roi_size(n, 10) for n in ROIS} == {"left_eye": (60, 70), "right_eye": (60, 70),
                                                   "mouth": (60, 80)}
    faces = np.zeros((3, 70, 60, 3), np.uint8)               # 5-pixel cells
    shapes = {k: v.shape for k, v in cut_rois(faces, 5).items()}
    assert shapes == {"face": (3, 70, 60, 3), "left_eye": (3, 30, 35, 3),
                      "right_eye": (3, 30, 35, 3), "mouth": (3, 30, 40, 3)}
    # the window lies inside the crop at the default geometry, centred left-right
    left, top, width, height = face_window(224, 0.32, 0.30)
    assert left > 0 and top > 0 and left + width < 224 and top + height < 224
    assert left + width / 2 == pytest.approx(112)
    # the regions are mirror images of each other
    (a0, a1, r0, r1), (b0, b1, s0, s1) = ROIS["left_eye"], ROIS["right_eye"]
    assert (a0, a1) == (11 - b1, 11 - b0) and (r0, r1) == (s0, s1)


def test_face_pixels_and_mapped_points_agree():
    """A bright dot in the crop lands in the warped face where to_face_points says it does."""
    crop = np.zeros((1, 128, 128, 3), np.uint8)
    for x, y in [(40, 50), (90, 100)]:
        crop[0, y - 1:y + 2, x - 1:x + 2] = 255
    for cell in (10, 5):
        face = faces_from_crops(crop, 0.32, 0.30, cell)[0, :, :, 0].astype(float)  # (h, w)
        for x, y in [(40, 50), (90, 100)]:
            fx, fy = to_face_points(np.array([x, y], float), 128, 0.32, 0.30, cell)
            r = 3 * cell // 5 + 1
            iy, ix = round(float(fy)), round(float(fx))
            patch = face[iy - r:iy + r + 1, ix - r:ix + r + 1]
            yy, xx = np.mgrid[iy - r:iy + r + 1, ix - r:ix + r + 1]
            cy, cx = (patch * yy).sum() / patch.sum(), (patch * xx).sum() / patch.sum()
            assert abs(cx - fx) < 0.35 and abs(cy - fy) < 0.35, (cell, x, y, cx, cy, fx, fy)


def _video_frames(tmp_path, step: int = 8) -> list:
    """Every ``step``-th frame of the real video as a JPEG file."""
    if not VIDEO.exists():
        pytest.skip(f"fixture {VIDEO} is absent (the shared fixtures folder is not next to the repo)")
    cap = cv2.VideoCapture(str(VIDEO))
    paths, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % step == 0:
            paths.append(tmp_path / f"f{i:03d}.jpg")
            cv2.imwrite(str(paths[-1]), frame)
        i += 1
    cap.release()
    assert i == 472
    return paths


def test_regions_hold_brows_eyes_and_mouth_on_every_aligned_frame_of_a_real_video(tmp_path):
    """The real video (a woman smiling, frowning, surprised, turning her head), every 8th frame
    aligned by its own eyes with the crop recipe (crop_clip on that frame): every brow and eye
    point of each side lies in its eye region, every mouth point in the mouth region.

    Why each frame on its own: over these 20 seconds the head moves far more than within a
    micro-expression clip, and one onset transform would misalign later frames (points 20 px off
    the eye line), which is the crop's limit, not the regions'."""
    params = CropParams(size=128)
    landmarks = np.concatenate([crop_clip([path], params, "wolfgang")["landmarks"]
                                for path in _video_frames(tmp_path)])      # (T, 68, 2) crop px
    assert len(landmarks) == 59
    points = to_face_points(landmarks, 128, params.eye_distance, params.eye_y)  # (T, 68, 2) face px
    for name in ROIS:
        inside = roi_contains(points[:, ROI_LANDMARKS[name]], name)          # (T, k)
        assert inside.all(), f"{name}: {np.count_nonzero(~inside)} points outside on frames " \
                             f"{np.flatnonzero(~inside.all(1))[:5]}"
    # the regions are not trivially large: eyes in the upper band, the mouth well below it
    assert points[:, 36:48, 1].max() < 55 and points[:, 48:68, 1].min() > 62


# ------------------------------------------------------------------ aggregation
def test_aggregation_matches_hand_computed_statistics():
    """A hand-made clip of 5 frames x 2 features: mean, population std and median by hand."""
    s = np.array([[[1.0, 10.0], [2.0, 10.0], [4.0, 13.0], [8.0, 10.0], [5.0, 12.0]]])  # (1, 5, 2)
    z = aggregate(s)
    assert z.shape == (1, 6)
    mean = [4.0, 11.0]
    std = [np.sqrt(((1 - 4) ** 2 + (2 - 4) ** 2 + 0 + 16 + 1) / 5), np.sqrt((1 + 1 + 4 + 1 + 1) / 5)]
    median = [4.0, 10.0]
    np.testing.assert_allclose(z[0], mean + std + median)
    np.testing.assert_allclose(aggregate(s, ["median", "mean"])[0], median + mean)
    rng = np.random.default_rng(0)
    many = rng.normal(size=(7, 9, 4))
    np.testing.assert_allclose(aggregate(many, ["std"]), many.std(axis=1))
    assert frame_indices(64, 8).tolist() == [0, 9, 18, 27, 36, 45, 54, 63]
    # difference: equal steps after the onset, never the near-empty frame right after it
    assert frame_indices(64, 3, after_onset=True).tolist() == [21, 42, 63]
    assert frame_indices(64, 63, after_onset=True).tolist() == list(range(1, 64))


# ------------------------------------------------------------------ network
def test_branch_outputs_and_frame_features_have_the_paper_shapes():
    net = MANNet(BRANCHES, n_classes=4, width=4, blocks=(1, 1), small_input=True).eval()
    x = {name: torch.randn(6, 3, *roi_size(name, 3)) for name in BRANCHES}   # (N, 3, h, w)
    for name in BRANCHES:
        assert net.trunks[name](x[name]).shape == (6, trunk_dim(4, (1, 1))) == (6, 8)
    assert net.concatenated(x).shape == (6, 4 * 8)                          # eq. 2
    assert net.features(x).shape == (6, 64) and net.features(x).min() >= 0   # after ReLU
    assert net(x).shape == (6, 4)
    assert torch.allclose(net(x), net.fc2(net.features(x)))                 # eval: no dropout
    one = MANNet(("mouth",), 3, width=4, blocks=(1,), small_input=True)
    assert one.fc1.in_features == 4 and one(x).shape == (6, 3)
    big = MANNet(("face",), 4)                                              # ResNet-18 trunk
    assert big.trunks["face"](torch.zeros(2, 3, 140, 120)).shape == (2, 512)


def test_params_are_validated():
    with pytest.raises(MerError, match="branches"):
        build("man", {"branches": ["face", "nose"]})
    with pytest.raises(MerError, match="stats"):
        build("man", {"stats": ["mean", "mean"]})
    with pytest.raises(MerError, match="input"):
        build("man", {"input": "flow"})
    with pytest.raises(MerError, match="did you mean"):
        build("man", {"brances": ["face"]})


# ------------------------------------------------------------------ a tiny corpus
CLASSES = ["happiness", "surprise", "others"]
SPOTS = {"happiness": (0.5, 0.76), "surprise": (0.34, 0.2), "others": (0.66, 0.2)}  # crop (x, y)


def tiny_corpus(root, n_subjects: int = 4, per_subject: int = 6, size: int = 32, length: int = 8,
                seed: int = 0) -> None:
    """A manifest + tim64-like clips: a subject-specific textured face; each class brightens a
    patch in its region (mouth, image-left brow, image-right brow) that grows over the clip."""
    rng = np.random.default_rng(seed)
    out = root / artifacts.artifact_dir("tim64", "fake")
    out.mkdir(parents=True)
    clips, index = [], []
    yy, xx = np.mgrid[0:size, 0:size] / size
    for s in range(n_subjects):
        face = cv2.GaussianBlur(rng.uniform(60, 190, (size, size, 3)).astype(np.float32), (0, 0), 1.5)
        for c in range(per_subject):
            label = CLASSES[(s + c) % len(CLASSES)]
            cx, cy = SPOTS[label]
            spot = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 0.06 ** 2))[..., None]  # (S, S, 1)
            ramp = np.linspace(0, 1, length)[:, None, None, None]
            frames = face[None] + 50 * ramp * spot[None] + rng.normal(0, 3, (length, size, size, 3))
            cid = f"sub{s:02d}_EP{c:02d}"
            save_npz(out / f"{cid}.npz", compress=False,
                     frames=np.clip(frames, 0, 255).astype(np.uint8), apex_index=np.int64(length - 1))
            index.append({"clip_id": cid, "status": "ok"})
            clips.append(Clip(cid, "fake", f"{s:02d}", f"EP{c:02d}", "x", ["a.jpg"], 1, 1, 1,
                              "annotated", 0, [], "", label, label, 200.0,
                              {"casme2_5class": label, "casme2_3class": ""}))
    write_manifest(clips, root / artifacts.manifest_path("fake"))
    pd.DataFrame(index).to_csv(out / "index.csv", index=False)


TINY = {"frames": 4, "cell": 2, "width": 4, "blocks": [1], "epochs": 12, "batch_size": 16,
        "lr": 0.005, "input": "difference", "device": "cpu"}


def _samples(root) -> Samples:
    from mer.eval.runner import load_samples
    return load_samples(["fake"], "casme2_5class", ("tim64",))[0]


def test_no_test_subject_frame_reaches_the_network_or_the_svm(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_corpus(tmp_path)
    samples = _samples(tmp_path)
    test_subject = samples.groups == "fake/03"
    train_part = samples.subset(np.flatnonzero(~test_subject))
    test_part = samples.subset(np.flatnonzero(test_subject), hide_labels=True)
    loaded = []
    real = man_module.clip_faces
    monkeypatch.setattr(man_module, "clip_faces", lambda path, *a: loaded.append(path) or real(path, *a))
    model = build("man", {**TINY, "epochs": 1}).fit(train_part, np.random.default_rng(0))
    test_files = set(test_part.paths["tim64"])
    assert loaded and not test_files & set(loaded)                 # fit never opened a test clip
    assert set(model.trained_clips_) == set(train_part.meta["clip_id"])
    assert model.svm_.shape_fit_[0] == len(train_part)             # the SVM saw training clips only
    proba = model.predict_proba(test_part)
    assert proba.shape == (len(test_part), 5) and np.allclose(proba.sum(1), 1)
    with pytest.raises(AssertionError, match="training subjects"):
        model.predict_proba(train_part.subset(np.arange(2), hide_labels=True))


def test_learns_tiny_clips_under_loso_and_the_control_stays_near_chance(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MER_PROGRESS", "0")
    tiny_corpus(tmp_path, n_subjects=3)
    params = {"seed": 0, "models": {"man": TINY},
              "eval": {"datasets": ["fake"], "protocol": "loso", "scheme": "casme2_5class",
                       "seeds": [0], "permutation_control": True}}
    m = train("man", params, tmp_path / "models/man", tmp_path / "metrics/man.json",
              tmp_path / "reports/man")
    assert m["n_clips"] == 18 and m["n_folds"] == 3
    assert m["pooled"]["uf1"] > 0.8, m["pooled"]
    assert m["control"]["permuted_labels"]["uf1"] < 0.6, m["control"]
    assert (tmp_path / "reports/man/rois.png").exists()


def test_fit_repeats_under_a_seed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_corpus(tmp_path, n_subjects=3, per_subject=3)
    samples = _samples(tmp_path)
    tr, te = samples.subset(np.arange(6)), samples.subset(np.arange(6, 9), hide_labels=True)
    p = {**TINY, "epochs": 2}
    a = build("man", p).fit(tr, np.random.default_rng(5)).predict_proba(te)
    b = build("man", p).fit(tr, np.random.default_rng(5)).predict_proba(te)
    np.testing.assert_array_equal(a, b)


def test_faces_are_cut_once_per_process_and_shared_read_only(tmp_path, monkeypatch):
    """The second fold's lookup is the first fold's array: immutable, equal to a fresh cut."""
    monkeypatch.chdir(tmp_path)
    tiny_corpus(tmp_path, n_subjects=1, per_subject=1)
    path = _samples(tmp_path).paths["tim64"][0]
    monkeypatch.setattr(man_module, "_CACHE", man_module._FaceCache(2**20))
    cuts = []
    real = man_module.faces_from_crops
    monkeypatch.setattr(man_module, "faces_from_crops", lambda *a: cuts.append(1) or real(*a))
    first = man_module.clip_faces(path, 3, 2, 0.32, 0.30, True)
    again = man_module.clip_faces(path, 3, 2, 0.32, 0.30, True)
    assert again is first and len(cuts) == 1 and first.shape == (4, 28, 24, 3)
    assert not first.flags.writeable
    with pytest.raises(ValueError):
        first[0, 0, 0, 0] = 1
    other = man_module.clip_faces(path, 3, 3, 0.32, 0.30, True)          # other geometry: a new cut
    assert len(cuts) == 2 and other.shape == (4, 42, 36, 3)
    monkeypatch.setattr(man_module, "_CACHE", man_module._FaceCache(2**20))
    np.testing.assert_array_equal(man_module.clip_faces(path, 3, 2, 0.32, 0.30, True), first)


def test_training_without_the_nan_fill_is_bit_identical(tmp_path, monkeypatch):
    """Skipping torch's NaN fill of new tensors changes no number (no kernel reads memory it did
    not write), and fit leaves the flag as it found it."""
    monkeypatch.chdir(tmp_path)
    tiny_corpus(tmp_path, n_subjects=2, per_subject=3)
    samples = _samples(tmp_path)
    assert torch.utils.deterministic.fill_uninitialized_memory
    model = build("man", {**TINY, "epochs": 2}).fit(samples, np.random.default_rng(3))
    assert torch.utils.deterministic.fill_uninitialized_memory            # restored
    monkeypatch.setattr(man_module, "no_nan_fill", contextlib.nullcontext)  # torch's default
    plain = build("man", {**TINY, "epochs": 2}).fit(samples, np.random.default_rng(3))
    assert model.history_ == plain.history_
    for a, b in zip(model.net_.state_dict().values(), plain.net_.state_dict().values()):
        assert torch.equal(a, b)
