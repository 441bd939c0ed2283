"""SynthME's SMIC-like variants: params and variants, the SMIC layout read back by the SMIC
adapter, the camera differences between HS, VIS and NIR, and determinism.

Tiny corpora: two planned subjects (s3 and s11, three clips each), of which VIS and NIR film s11
only, as SMIC's VIS and NIR cameras filmed only HS's last subjects.
"""

from __future__ import annotations

import collections
import copy
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mer.data.ingest import ingest
from mer.data.smic import _CODES, MODALITIES, TEMPLATES
from mer.errors import MerError
from mer.synth import SynthParams, synthesize
from mer.synth import stage as synth_stage
from mer.synth.actions import AU_TABLE
from mer.synth.corpus import TRUTH_NAME
from mer.synth.emotions import SMIC_COMBOS, SMIC_EMOTIONS, emotion_for, split_aus
from mer.synth.layouts import get_layout, layout_names
from mer.synth.params import DEFAULT_VARIANTS
from mer.synth.plan import plan_corpus
from mer.synth.render import tone_table, view_homography
from mer.synth.smic_layout import CODES, FRAME_TEMPLATE
from mer.synth.variants import corpus_names, corpus_params

CAMERAS = {"synthme_hs": "HS", "synthme_vis": "VIS", "synthme_nir": "NIR"}


def tiny_section(**hs_overrides) -> dict:
    """The default variants, shrunk: subjects s3 and s11 with three clips each."""
    variants = copy.deepcopy(DEFAULT_VARIANTS)
    variants["synthme_hs"].update({"n_subjects": 2, "subject_numbers": [3, 11],
                                   "subject_clips": [3, 3], "duration_s": [0.15, 0.25],
                                   **hs_overrides})
    for name in ("synthme_vis", "synthme_nir"):
        variants[name]["write_subjects"] = [11]
    return {"variants": variants}


def tiny(name: str) -> SynthParams:
    return corpus_params(SynthParams.from_dict(tiny_section()), name)


def error_of(fn, *args) -> str:
    with pytest.raises(MerError) as info:
        fn(*args)
    return str(info.value)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    roots = {}
    for name in CAMERAS:
        roots[name] = tmp_path_factory.mktemp(name) / name
        synthesize(tiny(name), roots[name], workers=1)
    return roots


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _frames(root: Path, camera: str, clip: str) -> np.ndarray:
    """(T, H, W, 3) uint8 of one clip folder, in camera-index order."""
    folder = next((root / camera).glob(f"s*/micro/*/{clip}"))
    return np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(folder.iterdir())])


# --- params and variants -------------------------------------------------------------------------
def test_default_variants_are_smic_like():
    base = SynthParams.from_dict({})
    assert corpus_names(base) == ["synthme", "synthme_hs", "synthme_vis", "synthme_nir", "synthme_macro"]
    hs, vis, nir = (corpus_params(base, n) for n in ("synthme_hs", "synthme_vis", "synthme_nir"))
    assert (hs.fps, vis.fps, nir.fps) == (100.0, 25.0, 25.0)
    assert (hs.gray, vis.gray, nir.gray) == (False, False, True)
    assert vis.noise_sigma > hs.noise_sigma and nir.contrast != hs.contrast
    assert vis.seed == nir.seed == hs.seed != base.seed  # other people than synthme
    subjects, clips = plan_corpus(hs, 1)
    assert len(subjects) == 16 and len(clips) == 164
    assert collections.Counter(c.emotion for c in clips) == {
        "negative": 70, "positive": 51, "surprise": 43}
    assert [s.number for s in subjects] == [1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 18, 19,
                                            20]
    v_subjects, v_clips = plan_corpus(vis, 1)
    assert [s.number for s in v_subjects] == [11, 12, 13, 14, 15, 18, 19, 20]
    assert len(v_clips) == 71
    # the same people making the same micro-expressions, with each camera's frame count
    same = {(c.subject, c.name): c for c in clips}
    for c in v_clips:
        h = same[(c.subject, c.name)]
        assert (c.aus, c.amplitude, c.emotion, c.index) == (h.aus, h.amplitude, h.emotion, h.index)
        assert abs((c.offset - c.onset) / 25 - (h.offset - h.onset) / 100) <= 0.5 / 25 + 0.5 / 100
    assert {s.number: s.identity for s in v_subjects} == {
        s.number: s.identity for s in subjects if s.number in {s.number for s in v_subjects}}


def test_variant_overrides_and_the_base_are_independent():
    section = {"noise_sigma": 3.0, "variants": {"loud": {"noise_sigma": 9.0},
                                                "louder": {"extends": "loud", "flicker": 0.1}}}
    base = SynthParams.from_dict(section)
    assert base.noise_sigma == 3.0 and corpus_params(base, "synthme") is base
    loud, louder = corpus_params(base, "loud"), corpus_params(base, "louder")
    assert (loud.noise_sigma, loud.flicker) == (9.0, base.flicker)
    assert (louder.noise_sigma, louder.flicker) == (9.0, 0.1)
    assert louder.variants == {} and louder.layout == "casme2"
    assert SynthParams.from_dict(base.to_dict()) == base


@pytest.mark.parametrize("variants,expect", [
    ({"v": {"nosie_sigma": 3}}, "unknown key 'synthesize.variants.v.nosie_sigma'"),
    ({"v": {"nosie_sigma": 3}}, "did you mean 'synthesize.variants.v.noise_sigma'"),
    ({"v": {"extends": "w"}}, "'w' is not a variant"),
    ({"a": {"extends": "b"}, "b": {"extends": "a"}}, "in a circle: a -> b -> a"),
    ({"v": {"variants": {}}}, "variants do not nest"),
    ({"synthme": {}}, "bad variant name 'synthme'"),
    ({"V-1": {}}, "bad variant name 'V-1'"),
    ({"v": {"layout": "smic", "modality": "HS"}},
     "neutral_frames: a SMIC clip folder holds onset..offset only"),
    ({"v": {"layout": "smic", "neutral_frames": [0, 0]}}, "needs a SMIC camera, got ''"),
    ({"v": {"layout": "smic", "modality": "UV", "neutral_frames": [0, 0]}}, "got 'UV'"),
    ({"v": {"modality": "HS"}}, "modality is for layout 'smic'"),
    ({"v": {"layout": "avi"}}, "unknown SynthME layout 'avi'"),
    ({"v": {"layout": "smic", "modality": "HS", "neutral_frames": [0, 0]}},
     "unknown emotion(s) ['disgust', 'fear', 'happiness', 'others', 'repression', 'sadness']"),
    ({"v": {"write_subjects": [30]}}, "write_subjects: must name distinct planned subjects"),
    ({"v": {"subject_clips": [2, 2]}}, "subject_clips: gives 2 values for n_subjects = 26"),
    ({"v": {"view_yaw_deg": 40}}, "view_yaw_deg: beyond 25 degrees"),
    ({"v": {"gamma": 0}}, "gamma: must be positive"),
])
def test_bad_variants_are_one_clear_error(variants, expect):
    msg = error_of(SynthParams.from_dict, {"variants": variants})
    assert expect in msg


def test_unknown_corpus_names_the_known_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    msg = error_of(synth_stage.run, {"synthesize": {}}, "synthme_uv")
    assert "unknown SynthME corpus 'synthme_uv'" in msg
    assert "synthme, synthme_hs, synthme_vis, synthme_nir" in msg
    assert not (tmp_path / "data").exists()


def test_layouts_registry_and_smic_spelling_agree_with_the_adapter():
    assert layout_names() == ["casme2", "casme3", "smic"]
    assert "use one of: casme2, casme3, smic" in error_of(get_layout, "avi")
    assert set(MODALITIES) == set(CAMERAS.values())
    assert FRAME_TEMPLATE == TEMPLATES["clips"]
    assert {v: k for k, v in CODES.items()} == _CODES


def test_smic_combinations_read_as_their_class_under_casme2_rules():
    three_class = {"positive": {"happiness"}, "surprise": {"surprise"},
                   "negative": {"disgust", "repression", "sadness", "fear"}}
    assert set(SMIC_COMBOS) == set(SMIC_EMOTIONS)
    for emotion, table in SMIC_COMBOS.items():
        for aus in table:
            assert emotion_for(split_aus(aus)) in three_class[emotion], aus
            assert all(int(t.lstrip("LR")) in AU_TABLE for t in split_aus(aus)), aus


# --- camera model ----------------------------------------------------------------------------
def test_tone_curve_and_view_geometry():
    assert tone_table(SynthParams()) is None
    nir = tone_table(SynthParams(contrast=0.7, gamma=0.8, brightness=25.0))
    assert nir.dtype == np.uint8 and np.all(np.diff(nir.astype(int)) >= 0)  # monotone
    assert nir[0] > 0 and nir[255] < 255 and np.ptp(nir) < 0.75 * 255  # flatter and lifted
    assert view_homography(np.array([160.0, 120.0]), 150.0, 0.0, 0.0) is None
    h = view_homography(np.array([160.0, 120.0]), 150.0, 20.0, 0.0)
    left, centre, right = cv2.perspectiveTransform(
        np.array([[[85, 120], [160, 120], [235, 120]]], np.float32), h)[0]
    assert np.allclose(centre, (160, 120), atol=1e-3)
    # seen from the image's right: the right half of the face is nearer, hence wider
    assert right[0] - centre[0] > 1.05 * (centre[0] - left[0])
    assert 0.9 < (right[0] - left[0]) / 150 < 0.95  # foreshortened, about cos(20 degrees)


# --- the written corpora ---------------------------------------------------------------------
def test_smic_adapter_reads_every_variant(corpora):
    for name, camera in CAMERAS.items():
        clips = ingest(name, {"adapter": "smic", "root": str(corpora[name]), "modality": camera,
                              "corpus": name}, 1, "midpoint")
        assert len(clips) == (6 if camera == "HS" else 3)
        assert {c.subject for c in clips} == ({"s3", "s11"} if camera == "HS" else {"s11"})
        assert {c.fps for c in clips} == {100.0 if camera == "HS" else 25.0}
        assert {c.apex_source for c in clips} == {"midpoint"}  # SMIC annotates no apex
        assert {c.labels["smic_3class"] for c in clips} <= set(SMIC_EMOTIONS)
        assert all(c.emotion == c.emotion_raw == c.frame_dir.split("/")[3] for c in clips)
        assert all(c.aus == [] for c in clips)
        truth = pd.read_csv(corpora[name] / TRUTH_NAME, dtype=str)
        for c in clips:  # the folder holds onset..offset, named by the camera's frame index
            row = truth[truth.Filename == c.clip].iloc[0]
            assert (c.onset, c.offset) == (int(row.OnsetFrame), int(row.OffsetFrame))
            assert c.frames[0] == f"image{c.onset:06d}.bmp" and len(c.frames) == int(row.frames)
        assert not list(corpora[name].glob("*.xls*"))  # no coding sheet, as in SMIC_all_raw


def test_the_cameras_film_the_same_clips_differently(corpora):
    hs, vis, nir = (corpora[n] for n in CAMERAS)
    names = sorted(p.name for p in (vis / "VIS").glob("s11/micro/*/*"))
    assert names == sorted(p.name for p in (nir / "NIR").glob("s11/micro/*/*"))
    assert names == sorted(p.name for p in (hs / "HS").glob("s11/micro/*/*"))
    stats = collections.defaultdict(list)
    for clip in names:
        f = {camera: _frames(corpora[name], camera, clip) for name, camera in CAMERAS.items()}
        assert all(x.shape[1:] == (240, 320, 3) for x in f.values())
        # frame rate: four HS frames per VIS/NIR frame, VIS and NIR in step
        assert len(f["VIS"]) == len(f["NIR"])
        assert abs(len(f["HS"]) - 4 * len(f["VIS"])) <= 6
        # gray: NIR's three channels are equal, the colour cameras' are not
        assert np.array_equal(f["NIR"][..., 0], f["NIR"][..., 2])
        assert np.abs(f["VIS"][..., 0].astype(int) - f["VIS"][..., 2]).mean() > 10
        for camera, x in f.items():
            x = x.astype(np.float64)
            stats[f"{camera} level"].append(x.mean())
            # temporal noise in a still background patch (top-left corner)
            d = x[1:, 5:45, 5:45] - x[:-1, 5:45, 5:45]
            stats[f"{camera} noise"].append((d - d.mean(axis=(1, 2, 3), keepdims=True)).std()
                                            / np.sqrt(2))
            stats[f"{camera} contrast"].append(x[0, 40:200, 100:220].std())
    m = {k: float(np.mean(v)) for k, v in stats.items()}
    # the HS camera's dark tone curve, NIR's lifted one
    assert m["HS level"] + 20 < m["VIS level"] < m["NIR level"] - 10
    # sensor noise as configured (4.5, 6.5 and 6 gray levels), measured where nothing moves
    assert 4.0 < m["HS noise"] < 5.0 and 5.9 < m["VIS noise"] < 7.1 and 5.4 < m["NIR noise"] < 6.6
    # NIR's flatter tone curve: less contrast inside the face than the VIS picture
    assert m["NIR contrast"] < 0.85 * m["VIS contrast"]


def test_variant_output_is_byte_deterministic(corpora, tmp_path):
    again = tmp_path / "synthme_nir"
    synthesize(tiny("synthme_nir"), again, workers=2)
    first, second = _files(corpora["synthme_nir"]), _files(again)
    assert first.keys() == second.keys() and len(first) > 10
    assert [k for k in first if first[k] != second[k]] == []
