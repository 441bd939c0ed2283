"""SynthME: layout and sheet as CASME II, determinism, detectability, bounded motion, AU rules."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest

from mer.errors import MerError
from mer.synth import SynthParams, synthesize
from mer.synth.actions import AU_TABLE, au_motion, face_axes
from mer.synth.casme2_layout import HEADER, RAW_DIR, SHEET_NAME, write_sheet
from mer.synth.emotions import COMBOS, EMOTIONS, class_counts, emotion_for, split_aus
from mer.synth.faces import ASTRONAUT, _dlib_models, find_source
from mer.synth.fields import field_on_grid
from mer.synth.params import CASME2_EMOTION_COUNTS
from mer.synth.plan import plan_corpus
from mer.synth.render import build_scene, render_frames, temporal_profile

FIXTURES = Path(__file__).parents[1] / ".." / "shared" / "fixtures"
CASME2_SHEET = FIXTURES / "annotations" / "CASME2-coding-20140508.xlsx"

TINY = {"seed": 7, "n_subjects": 2, "clips_per_subject": 3, "duration_s": [0.05, 0.08],
        "neutral_frames": [2, 4], "amplitude": [0.04, 0.05], "blink_prob": 0.5}
QUIET = {"noise_sigma": 0.0, "drift_px": 0.0, "flicker": 0.0, "blink_prob": 0.0}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> tuple[Path, Path, list]:
    """The tiny corpus, built twice: serially and with two workers."""
    params = SynthParams.from_dict(TINY)
    a, b = tmp_path_factory.mktemp("a") / "synthme", tmp_path_factory.mktemp("b") / "synthme"
    clips = synthesize(params, a, workers=1)
    synthesize(params, b, workers=2)
    return a, b, clips


@pytest.fixture(scope="module")
def source():
    return find_source(ASTRONAUT)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- params --------------------------------------------------------------------------------------
def test_unknown_params_key_is_one_clear_error():
    with pytest.raises(MerError) as err:
        SynthParams.from_dict({"n_subject": 3})
    assert "n_subject" in str(err.value) and "n_subjects" in str(err.value)


@pytest.mark.parametrize("cfg", [{"amplitude": [0.05, 0.02]}, {"amplitude": [0.01]},
                                 {"n_subjects": "many"}, {"jpeg_quality": 101},
                                 {"emotion_weights": {"anger": 3}}, {"blink_prob": 2}])
def test_bad_params_values_raise(cfg):
    with pytest.raises(MerError):
        SynthParams.from_dict(cfg)


def test_params_round_trip():
    p = SynthParams.from_dict({"amplitude": [0.01, 0.02], "faces": ["a.png"], "n_subjects": 4})
    assert SynthParams.from_dict(p.to_dict()) == p
    assert p.amplitude == (0.01, 0.02) and p.faces == ("a.png",)
    assert SynthParams.from_dict({}) == SynthParams()


# --- emotions ------------------------------------------------------------------------------------
@pytest.mark.parametrize("aus,emotion", [
    ("12", "happiness"), ("6", "happiness"), ("L12", "happiness"), ("9", "disgust"),
    ("R10", "disgust"), ("4", "disgust"), ("14", "repression"), ("15+17", "repression"),
    ("1+2", "surprise"), ("25", "surprise"), ("1+2+4", "fear"), ("20", "fear"), ("1", "sadness"),
    ("7", "others"), ("R2", "others"), ("24", "others")])
def test_casme2_rules(aus, emotion):
    assert emotion_for(split_aus(aus)) == emotion


def test_every_combination_follows_the_rules_and_is_modelled():
    for emotion, table in COMBOS.items():
        for aus in table:
            assert emotion_for(split_aus(aus)) == emotion, aus
            for token in split_aus(aus):
                assert int(token.lstrip("LR")) in AU_TABLE, token
    required = {1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 20, 25}
    assert required <= set(AU_TABLE)


def test_class_counts_follow_casme2_imbalance():
    counts = class_counts(CASME2_EMOTION_COUNTS, 260)
    assert sum(counts.values()) == 260
    order = ["others", "disgust", "happiness", "repression", "surprise", "sadness", "fear"]
    values = [counts[e] for e in order]
    assert values == sorted(values, reverse=True) and values[-1] >= 1
    assert counts["others"] == 101  # 99/255 of 260, rounded by largest remainder


# --- the displacement kernel -------------------------------------------------------------------
def test_overlapping_influences_never_exceed_the_largest_displacement():
    rng = np.random.default_rng(0)
    xs, ys = np.arange(0, 120, dtype=np.float32), np.arange(0, 100, dtype=np.float32)
    worst_sum = 0.0
    for _ in range(20):
        pts = rng.uniform(30, 70, (12, 2))  # crowded: influences overlap heavily
        vec = rng.normal(size=(12, 2)) * 5
        f = field_on_grid(pts, vec, 15.0, xs, ys)
        assert np.linalg.norm(f, axis=-1).max() <= np.linalg.norm(vec, axis=1).max() + 1e-4
        # an unnormalised sum of Gaussians would overshoot: the normalisation is doing real work
        w = np.exp(-0.5 * ((xs[None, None, :] - pts[:, 0, None, None]) ** 2
                           + (ys[None, :, None] - pts[:, 1, None, None]) ** 2) / 15.0**2)
        same = np.abs(vec).max() * w.sum(0)  # all pointing alike
        worst_sum = max(worst_sum, same.max() / np.abs(vec).max())
    assert worst_sum > 2


# --- layout and sheet --------------------------------------------------------------------------
def test_layout_is_casme2(corpora):
    root, _, clips = corpora
    raw = root / RAW_DIR
    assert sorted(p.name for p in raw.iterdir()) == ["sub01", "sub02"]
    assert len(clips) == 6
    for c in clips:
        folder = raw / f"sub{c.subject:02d}" / c.name
        assert re.fullmatch(r"EP\d\d_\d\d", c.name)
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(f"img{n}.jpg" for n in range(1, c.n_frames + 1))
        assert 1 < c.onset < c.apex < c.offset < c.n_frames  # neutral frames on both sides
        img = cv2.imread(str(folder / "img1.jpg"))
        assert img.shape == (480, 640, 3)
    assert (root / SHEET_NAME).is_file()


def test_sheet_cells(corpora):
    root, _, clips = corpora
    ws = openpyxl.load_workbook(root / SHEET_NAME).active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == HEADER
    assert len(rows) == 1 + len(clips)
    for subject, name, e1, onset, apex, offset, e2, aus, emotion in rows[1:]:
        assert isinstance(subject, str) and re.fullmatch(r"\d\d", subject)
        assert e1 is None and e2 is None
        assert all(isinstance(v, int) for v in (onset, apex, offset)) and onset < apex < offset
        assert isinstance(aus, int) or re.fullmatch(r"[LR]?\d+(\+[LR]?\d+)*", aus)
        assert isinstance(aus, int) == str(aus).isdigit()
        assert emotion in EMOTIONS and emotion == emotion_for(split_aus(str(aus)))
    assert [c.value for c in ws["A"][1:]] and all(c.data_type == "s" for c in ws["A"][1:])


def test_sheet_matches_real_casme2_columns_and_types(corpora):
    if not CASME2_SHEET.is_file():
        pytest.skip(f"real CASME II sheet not available at {CASME2_SHEET}")
    root, _, _ = corpora
    real = openpyxl.load_workbook(CASME2_SHEET).active
    ours = openpyxl.load_workbook(root / SHEET_NAME).active
    real_rows = list(real.iter_rows(values_only=True))
    our_rows = list(ours.iter_rows(values_only=True))
    assert our_rows[0] == real_rows[0]
    for col in range(len(real_rows[0])):
        real_types = {type(r[col]) for r in real_rows[1:]}
        our_types = {type(r[col]) for r in our_rows[1:]}
        assert our_types <= real_types, (real_rows[0][col], our_types, real_types)
    real_df = pd.read_excel(CASME2_SHEET)
    our_df = pd.read_excel(root / SHEET_NAME)
    assert list(our_df.columns) == list(real_df.columns)
    assert set(our_df["Estimated Emotion"]) <= set(real_df["Estimated Emotion"]) | {"others"}


def test_output_is_byte_deterministic_and_independent_of_workers(corpora):
    a, b, _ = corpora
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys() and len(fa) > 100
    differing = [k for k in fa if fa[k] != fb[k]]
    assert differing == []


def test_sheet_bytes_do_not_depend_on_the_clock(tmp_path, monkeypatch):
    clips = plan_corpus(SynthParams.from_dict(TINY), 1)[1]
    first = write_sheet(tmp_path / "a.xlsx", clips).read_bytes()
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # 2033: zip entries would say so
    second = write_sheet(tmp_path / "b.xlsx", clips).read_bytes()
    assert first == second
    assert openpyxl.load_workbook(tmp_path / "b.xlsx").properties.modified.year == 2014


def test_a_different_seed_changes_the_corpus():
    p = SynthParams.from_dict(TINY)
    a, b = plan_corpus(p, 1)[1], plan_corpus(replace(p, seed=8), 1)[1]
    assert [(c.aus, c.amplitude) for c in a] != [(c.aus, c.amplitude) for c in b]


# --- detectability -----------------------------------------------------------------------------
def test_dlib_finds_face_and_68_landmarks_in_99_percent_of_frames(corpora):
    root, _, clips = corpora
    detector, predictor = _dlib_models()
    total = found = 0
    for c in clips:
        folder = root / RAW_DIR / f"sub{c.subject:02d}" / c.name
        for n in range(1, c.n_frames + 1):
            rgb = np.ascontiguousarray(cv2.imread(str(folder / f"img{n}.jpg"))[..., ::-1])
            rects = detector(rgb, 0)
            total += 1
            found += len(rects) == 1 and predictor(rgb, rects[0]).num_parts == 68
    assert total > 100
    assert found / total >= 0.99, f"{found}/{total}"


# --- motion ------------------------------------------------------------------------------------
def _scene(source, aus: str, amplitude: float, **overrides):
    params = SynthParams.from_dict({**TINY, **QUIET, **overrides})
    subjects, clips = plan_corpus(params, 1)
    clip = replace(clips[0], aus=aus, amplitude=amplitude)
    return clip, build_scene(source, subjects[clip.subject - 1].identity, clip, params)


def test_temporal_profile_is_onset_apex_offset():
    p = temporal_profile(30, onset=5, apex=12, offset=25)
    assert np.all(p[:5] == 0) and np.all(p[24:] == 0)  # frames 1..5 and 25..30
    assert p[11] == 1 and np.all(np.diff(p[4:12]) > 0) and np.all(np.diff(p[11:25]) < 0)


def test_apex_motion_within_amplitude_and_absent_outside_the_window(source):
    clip, scene = _scene(source, "4+L10", 0.05)
    norms = np.linalg.norm(scene.apex_field, axis=-1)
    assert scene.amplitude_px == pytest.approx(0.05 * scene.face_width)
    assert 0.6 * scene.amplitude_px < norms.max() <= scene.amplitude_px + 1e-3
    frames = np.stack(list(render_frames(scene))).astype(np.int16)  # (T, H, W, 3)
    still = np.r_[0:clip.onset, clip.offset - 1:clip.n_frames]  # frames <= onset, >= offset
    assert np.all(frames[still] == frames[0])
    change = np.abs(frames - frames[0]).mean(axis=(1, 2, 3))
    inside = change[clip.onset:clip.offset - 1]
    assert inside.min() > 0 and int(np.argmax(change)) + 1 == clip.apex


def test_landmarks_move_by_at_most_the_amplitude_and_in_the_facs_direction(source):
    detector, predictor = _dlib_models()
    clip, scene = _scene(source, "12", 0.05)
    frames = list(render_frames(scene))

    def landmarks(img):
        rgb = np.ascontiguousarray(img[..., ::-1])
        shape = predictor(rgb, detector(rgb, 0)[0])
        return np.array([(p.x, p.y) for p in shape.parts()], float)

    before, apex = landmarks(frames[0]), landmarks(frames[clip.apex - 1])
    move = np.linalg.norm(apex - before, axis=1)
    corners = [48, 54]
    tol = 2.0  # dlib's own jitter on an unchanged face is about 1 px
    assert move.max() <= scene.amplitude_px + tol
    assert move[corners].min() > 0.4 * scene.amplitude_px
    # the jaw line stays put (dlib's jaw estimate follows the mouth a little, so use the field)
    jaw = np.linalg.norm(scene.motion.at(scene.landmarks[:17]), axis=1)
    assert jaw.max() < 0.1 * scene.amplitude_px
    right, up = face_axes(before)
    shift = apex[corners] - before[corners]
    assert np.all(shift @ up > 0)  # lip corners go up...
    assert shift[0] @ right < 0 < shift[1] @ right  # ...and out


@pytest.mark.parametrize("aus,point,expect_up,expect_out", [
    ("4", 22, -1, -1), ("1", 22, +1, 0), ("15", 54, -1, 0), ("17", 57, +1, 0), ("25", 57, -1, 0),
    ("20", 54, 0, +1), ("7", 46, +1, 0)])
def test_au_directions(source, aus, point, expect_up, expect_out):
    _, scene = _scene(source, aus, 0.04)
    lm = scene.landmarks
    right, up = face_axes(lm)
    d = scene.motion.at(lm[point:point + 1])[0]
    outward = right if lm[point] @ right > lm[27] @ right else -right
    if expect_up:
        assert np.sign(d @ up) == expect_up
    if expect_out:
        assert np.sign(d @ outward) == expect_out
    assert np.linalg.norm(d) > 0.3 * scene.amplitude_px


def test_one_sided_aus_move_one_side(source):
    _, scene = _scene(source, "L12", 0.05)
    lm = scene.landmarks
    d = np.linalg.norm(scene.motion.at(lm[[48, 54]]), axis=1)  # 48: subject's right, 54: left
    assert d[1] > 0.5 * scene.amplitude_px and d[0] < 0.05 * scene.amplitude_px
    points, _ = au_motion("R12", lm, 5.0)
    assert np.all(points[:, 0] < lm[27, 0] + 1)  # every moving point on the image's left


# --- identities --------------------------------------------------------------------------------
def test_subjects_differ_in_shape_and_appearance(source):
    params = SynthParams.from_dict({**TINY, **QUIET})
    subjects, clips = plan_corpus(params, 1)
    scenes = [build_scene(source, subjects[c.subject - 1].identity, c, params)
              for c in (clips[0], clips[-1])]
    assert clips[0].subject != clips[-1].subject

    def shape(lm):  # landmarks with position, roll and size removed (RMS radius 100 px)
        right, up = face_axes(lm)
        q = np.stack([(lm - lm.mean(0)) @ right, (lm - lm.mean(0)) @ up], 1)
        return q / np.sqrt((q**2).sum(1).mean()) * 100

    a, b = (shape(s.landmarks) for s in scenes)
    assert np.abs(a - b).max() > 2
    crop = lambda s: cv2.resize(s.neutral[200:300, 270:370], (50, 50))
    assert np.abs(crop(scenes[0]) - crop(scenes[1])).mean() > 5


def test_a_face_image_without_a_face_is_a_clear_error(tmp_path):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(MerError, match="no face"):
        find_source(str(blank))
    with pytest.raises(MerError, match="not found"):
        find_source(str(tmp_path / "missing.png"))


def test_extra_face_images_become_subjects(source):
    portrait = FIXTURES / "faces" / "dlib_examples" / "Tom_Cruise_avp_2014_4.jpg"
    group = FIXTURES / "faces" / "dlib_examples" / "2008_001009.jpg"
    if not portrait.is_file() or not group.is_file():
        pytest.skip(f"dlib example photos not available under {portrait.parent}")
    with pytest.raises(MerError, match="2 faces"):
        find_source(str(group))
    params = SynthParams.from_dict({**TINY, "faces": [str(portrait)]})
    subjects, clips = plan_corpus(params, 2)
    assert [s.identity.source for s in subjects] == [0, 1]
    extra = find_source(str(portrait))
    clip = next(c for c in clips if c.subject == 2)
    scene = build_scene(extra, subjects[1].identity, clip, params)
    apex = list(render_frames(scene))[clip.apex - 1]
    detector, _ = _dlib_models()
    rects = detector(np.ascontiguousarray(apex[..., ::-1]), 0)
    assert len(rects) == 1
    assert abs(rects[0].width() - scene.face_width) < 0.25 * scene.face_width
