"""`mer export` and `mer predict`: a model file, and recognition on real videos end to end.

The model is an lbptop_svm fitted on a fake corpus (LBP-TOP-sized features, no DVC pipeline): its
answers mean nothing, but everything around them is real (the export format, the streaming
spotting pass, the training stages run on the user's clip, the report).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pickle
import tracemalloc
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES

from mer import __version__, artifacts
from mer.data.manifest import Clip, write_manifest
from mer.errors import MerError
from mer.export import export_model, load_model, read_header
from mer.face.crop import CropParams
from mer.face.landmarks import NoFaceError, detector_names
from mer.features.lbptop import N_BINS, PLANES
from mer.io import save_npz
from mer.methods.registry import METHODS, register
from mer.predict import predict, recognise
from mer.predict.chain import stages_for
from mer.predict.cli import add_predict_commands
from mer.predict.video import open_source
from mer.predict.window import longest_span, motion_energy, spot_window

FACES = FIXTURES / "faces"
CLASSES = ["happiness", "surprise", "disgust", "repression", "others"]
DIM = 85 * len(PLANES) * N_BINS      # LBP-TOP of the default grids 1, 2, 4, 8: 85 blocks


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"fixture {path} is absent (the shared fixtures folder is not next to the repo)")
    return path


def _params() -> dict:
    return {"seed": 0, "eval": {"datasets": ["fake"], "scheme": "casme2_5class", "seeds": [3]},
            "models": {"lbptop_svm": {"C": [0.01]}}, "tim": {"lengths": [16]}}


def _fake_corpus(root: Path) -> None:
    """A manifest and LBP-TOP artifacts of 4 subjects x 5 clips; a class lifts a few bins."""
    rng = np.random.default_rng(0)
    out = root / artifacts.artifact_dir("lbptop", "fake")
    out.mkdir(parents=True)
    clips = []
    for s in range(4):
        for c in range(5):
            label, cid = CLASSES[(s + c) % 5], f"s{s}_c{c}"
            clips.append(Clip(cid, "fake", str(s), cid, "x", ["a.png"], 1, 1, 1, "annotated", 0, [],
                              "", label, label, 200.0, {"casme2_5class": label}))
            x = rng.random(DIM) / 59                                     # histogram-like
            x[CLASSES.index(label) * 50:(CLASSES.index(label) + 1) * 50] += 0.05
            save_npz(out / f"{cid}.npz", feature=x.astype(np.float32))
    pd.DataFrame({"clip_id": [c.clip_id for c in clips], "status": "ok"}).to_csv(
        out / "index.csv", index=False)
    write_manifest(clips, root / artifacts.manifest_path("fake"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    _fake_corpus(root)
    return root


@pytest.fixture(scope="module")
def model(corpus) -> Path:
    with contextlib.chdir(corpus):
        return export_model("lbptop_svm", _params(), corpus / "svm.mer").resolve()


# ------------------------------------------------------------------------------- export / load
def test_export_writes_one_self_describing_file(model, corpus):
    header = read_header(model)
    assert header["method"] == "lbptop_svm" and header["mer_version"] == __version__
    assert header["classes"] == CLASSES and header["scheme"] == "casme2_5class"
    assert header["inputs"] == ["lbptop"] and header["n_clips"] == 20 and header["seed"] == 3
    assert header["datasets"] == ["fake"] and header["model_params"]["C"] == [0.01]
    assert header["model_params"]["class_weight"] == "balanced"       # expanded with defaults
    # the preprocessing of the inputs, expanded with defaults; the given tim.lengths kept
    assert set(header["params"]) == {"crop", "tim", "lbptop", "ingest"}
    assert header["params"]["tim"]["lengths"] == [16] and header["params"]["crop"]["size"] == 224
    assert header["params"]["ingest"] == {"apex_policy": "annotated"}
    fitted, _ = load_model(model)
    assert fitted.C_ == 0.01 and fitted.z_.shape == (20, DIM)   # fitted on all 20 clips
    with contextlib.chdir(corpus):                             # same inputs -> same bytes
        again = export_model("lbptop_svm", _params(), corpus / "again.mer")
    assert again.read_bytes() == model.read_bytes()


def _rewrite_header(src: Path, dst: Path, **changes) -> Path:
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(members["header.json"])
    header.update(changes)
    members["header.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return dst


def test_model_files_of_other_versions_or_not_models_are_refused(model, tmp_path):
    major, minor, *_ = __version__.split(".")
    old = _rewrite_header(model, tmp_path / "old.mer", mer_version=f"{major}.{int(minor) + 1}.0")
    with pytest.raises(MerError, match="incompatible") as err:
        load_model(old)
    assert str(old) in str(err.value) and "re-export" in str(err.value)
    patch = _rewrite_header(model, tmp_path / "patch.mer", mer_version=f"{major}.{minor}.99")
    assert load_model(patch)[1]["mer_version"].endswith(".99")   # patch releases stay compatible
    fmt = _rewrite_header(model, tmp_path / "fmt.mer", format_version=99)
    with pytest.raises(MerError, match="format version 99"):
        load_model(fmt)
    text = tmp_path / "notes.mer"
    text.write_text("not a model")
    with pytest.raises(MerError, match="not a mer model file"):
        load_model(text)
    with zipfile.ZipFile(tmp_path / "other.mer", "w") as zf:
        zf.writestr("readme.txt", "a zip, but no model")
    with pytest.raises(MerError, match="not a mer model file"):
        load_model(tmp_path / "other.mer")
    with pytest.raises(MerError, match="model file not found"):
        load_model(tmp_path / "absent.mer")
    with pytest.raises(MerError, match="label scheme 'casme2_5class'") as err:
        predict(tmp_path / "any.mp4", model, scheme="casme2_3class")
    assert "casme2_3class" in str(err.value)


def test_stage_chains_follow_the_inputs():
    assert stages_for(("lbptop",), {}) == ["crop", "tim", "lbptop"]
    assert stages_for(("tim64",), {}) == ["crop", "tim"]
    assert stages_for(("magnify", "flow"), {}) == ["crop", "magnify", "flow"]
    assert stages_for(("flow",), {}) == ["crop", "flow"]
    assert stages_for(("flow",), {"flow": {"apex_from": "magnify"}}) == ["crop", "magnify", "flow"]
    assert stages_for(("graph",), {}) == ["crop", "magnify", "graph"]


# ------------------------------------------------------------------------------- spotting
def test_spot_window_bounds_the_window_by_the_longest_micro_expression():
    energy = np.full(100, 1.0)
    energy[40:47] = [2, 5, 9, 12, 8, 4, 1.5]                   # a bump: rise 3 frames, fall 3
    assert spot_window(energy, fps=30) == (40, 43, 46)          # nearest fall-back frames
    energy = np.full(100, 1.0)
    energy[30:60] = 10.0
    energy[50] = 11.0                               # 1 s of motion: longer than a micro-expression
    assert spot_window(energy, fps=30) == (41, 50, 56)          # shortened to 15 frames = 0.5 s
    assert longest_span(30) == 15
    assert spot_window(np.array([0.0, 3.0, 0.5, 0.2]), fps=200) == (0, 1, 2)   # >= 3 frames kept


def test_motion_energy_peaks_at_a_transient_change_not_at_a_lasting_one():
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (56, 56)).astype(np.float32), (0, 0), 2)
    frames = np.repeat(texture[None], 60, axis=0)               # (60, 56, 56)
    frames += rng.normal(0, 0.5, frames.shape).astype(np.float32)
    bump = np.exp(-((np.arange(60) - 20) / 2.0) ** 2)           # a brief change peaking at 20
    frames[:, 30:40, 20:36] += 25 * bump[:, None, None]
    frames[45:, 22:30, 20:36] += 25                             # a lasting change from frame 45
    patches = np.clip(frames, 0, 255).round().astype(np.uint8)
    angle = np.linspace(0, np.pi, 17)
    points = np.zeros((68, 2))
    points[:17] = np.stack([28 - 24 * np.cos(angle), 20 + 30 * np.sin(angle)], 1)   # jaw
    points[17:] = rng.uniform(16, 40, (51, 2))
    for start, cx in ((36, 20.0), (42, 36.0)):                  # open eyes: no blink
        points[start:start + 6] = np.stack([cx + 4 * np.cos(np.arange(6) * np.pi / 3),
                                            16 + 2 * np.sin(np.arange(6) * np.pi / 3)], 1)
    landmarks = np.repeat(points[None], 60, axis=0).astype(np.float32)
    energy = motion_energy(patches, landmarks, half=5)
    assert int(np.argmax(energy)) == 20
    assert energy[20] > 1.5 * energy[45:].max()                 # the step scores lower


# ------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def spotted(model, tmp_path_factory):
    """The 472-frame video predicted with spotting and a report, the traced peak memory of its
    spotting pass recorded by a spy around the real function; then, as the short baseline, the
    same pass on a folder of its first 24 frames."""
    video = need(FACES / "WolfgangLanger_Pexels.mp4")
    detector_names()                                # import the back-ends before anything is traced
    real, peaks = recognise.spotted_window, {}

    def traced(source, crop):
        tracemalloc.start()
        try:
            return real(source, crop)
        finally:
            peaks[source.path.name] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()

    out = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(recognise, "spotted_window", traced)
        result = predict(video, model, report=out / "report")
        short = out / "first_second"
        short.mkdir()
        for i, image in open_source(video).frames(0, 24):
            cv2.imwrite(str(short / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        recognise.spotted_window(open_source(short, fps=23.976), CropParams())
    return result, peaks


def test_a_real_video_is_spotted_and_recognised_end_to_end_with_a_report(spotted):
    result = spotted[0]
    assert result.emotion in CLASSES and next(iter(result.probabilities)) == result.emotion
    assert abs(sum(result.probabilities.values()) - 1) < 1e-6
    values = list(result.probabilities.values())
    assert values == sorted(values, reverse=True)
    assert result.window == "spotted" and result.energy.shape == (472,)
    assert result.fps == pytest.approx(23.976, abs=1e-3)
    assert result.apex == int(np.argmax(result.energy))
    assert 0 < result.onset < result.apex < result.offset < 471
    assert result.offset - result.onset <= longest_span(result.fps) == 12
    page = result.report.read_text()
    for png in ("key_frames.png", "motion.png", "probabilities.png"):
        assert (result.report.parent / png).stat().st_size > 5000 and f'src="{png}"' in page
    assert f"apex {result.apex}" in page and result.emotion in page
    assert f"onset {result.onset}, apex {result.apex}, offset {result.offset} (spotted" in \
        result.summary()


def test_spotting_memory_stays_flat_in_the_video_length(spotted):
    """472 frames of 640x360 RGB are 326 MB; the spotting pass keeps a 3 kB patch per frame."""
    peaks = spotted[1]
    long, short = peaks["WolfgangLanger_Pexels.mp4"], peaks["first_second"]
    assert long < 16e6, f"spotting 472 frames peaked at {long / 1e6:.1f} MB"
    assert long - short < 5e6, f"472 vs 24 frames: {long / 1e6:.1f} vs {short / 1e6:.1f} MB"


def test_given_window_is_used_as_given_through_the_cli(model, tmp_path, capsys):
    video = need(FACES / "single_face.mp4")
    parser = argparse.ArgumentParser()
    add_predict_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["predict", str(video), "--model", str(model), "--onset", "20",
                              "--apex", "24", "--offset", "30", "--scheme", "casme2_5class",
                              "--report", str(tmp_path / "report")])
    args.fn(args)
    out = capsys.readouterr().out
    assert "onset 20, apex 24, offset 30 (given;" in out
    assert sum(float(line.split()[-1]) for line in out.splitlines()[1:6]) == pytest.approx(1, abs=3e-3)
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Onset 20, apex 24, offset 30 (given" in page
    for png in ("key_frames.png", "motion.png", "probabilities.png"):
        assert (tmp_path / "report" / png).stat().st_size > 5000 and f'src="{png}"' in page


def test_a_frame_folder_with_several_faces_uses_the_largest(model, tmp_path, capsys):
    photo = cv2.imread(str(need(FACES / "dlib_examples" / "2008_001322.jpg")))  # 3 faces
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (1, 2, 10, 11):                     # natural order: 1, 2, 10, 11 (not 1, 10, 11, 2)
        shifted = np.roll(photo, i // 5, axis=1)                 # a 2 px step between 2 and 10
        cv2.imwrite(str(folder / f"img{i}.png"), shifted)
    with pytest.raises(MerError, match="--fps"):
        predict(folder, model, onset=0, offset=3)
    result = predict(folder, model, onset=0, apex=2, offset=3, fps=30)
    assert "3 faces on frame 0; using the largest" in capsys.readouterr().out
    assert (result.onset, result.apex, result.offset, result.window) == (0, 2, 3, "given")
    source = open_source(folder, fps=30)
    assert [p.name for p in source.files] == ["img1.png", "img2.png", "img10.png", "img11.png"]
    assert [i for i, _ in source.frames(1, 3)] == [1, 2]


def test_no_face_fails_with_the_no_face_error(model):
    video = need(FACES / "no_face.mp4")
    with pytest.raises(NoFaceError, match="no face found") as err:
        predict(video, model)
    assert str(video) in str(err.value) and "frame 0" in str(err.value)


def test_bad_inputs_each_give_one_clear_error(model, tmp_path):
    video = need(FACES / "single_face.mp4")
    with pytest.raises(MerError, match="not found"):
        predict(tmp_path / "missing.mp4", model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MerError, match="no image files"):
        predict(tmp_path / "empty", model, fps=30)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 4096)
    with pytest.raises(MerError, match="cannot be read as a video") as err:
        predict(garbage, model)
    assert str(garbage) in str(err.value)
    with pytest.raises(MerError, match="needs at least 3"):
        predict(video, model, onset=10, offset=11)
    with pytest.raises(MerError, match="--onset and --offset together"):
        predict(video, model, apex=10)
    with pytest.raises(MerError, match="not within onset..offset"):
        predict(video, model, onset=10, apex=30, offset=20)
    with pytest.raises(MerError, match="outside the clip's frames 0..71"):
        predict(video, model, onset=60, offset=80)
    (tmp_path / "two").mkdir()
    for i in range(2):
        cv2.imwrite(str(tmp_path / "two" / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(MerError, match="has 2 frame"):
        predict(tmp_path / "two", model, fps=30)
    cv2.imwrite(str(tmp_path / "two" / "2.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(NoFaceError, match="no face found") as err:      # the crop stage's check
        predict(tmp_path / "two", model, onset=0, offset=2, fps=30)
    assert f"{tmp_path / 'two'} frames 0..2" in str(err.value) and "--onset" in str(err.value)
    with pytest.raises(MerError, match="before onset"):
        predict(video, model, onset=20, offset=10)


class TransductiveSpy:
    """A transductive method that records what ``fit`` was given (registered only in its test)."""

    inputs = ("lbptop",)
    transductive = True

    @dataclass
    class Params:
        pass

    def __init__(self, params):
        self.params = params

    def fit(self, train, rng, unlabeled=None):
        self.seen = {"train": list(train.meta["clip_id"]), "labelled": train.y is not None,
                     "unlabeled": list(unlabeled.meta["clip_id"]), "hidden": unlabeled.y is None,
                     "aus": list(unlabeled.meta["aus"])}
        return self

    def predict_proba(self, test):
        return np.full((len(test), len(test.classes)), 1 / len(test.classes))


def test_a_transductive_method_is_exported_with_its_training_clips_unlabelled(corpus):
    register("transductive_spy")(TransductiveSpy)
    try:
        with contextlib.chdir(corpus):
            path = export_model("transductive_spy", _params(), corpus / "spy.mer")
    finally:
        METHODS.pop("transductive_spy")
    seen = pickle.loads(zipfile.ZipFile(path).read("model.pkl")).seen
    assert seen["train"] == seen["unlabeled"] and len(seen["train"]) == 20
    assert seen["labelled"] and seen["hidden"] and seen["aus"] == [None] * 20
