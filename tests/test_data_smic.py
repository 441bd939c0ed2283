"""SMIC adapter: HS/VIS/NIR clip folders and the SMIC-E long-clip release.

Fake trees are generated around REAL sheets (fixtures): the HS clip list and frame indices of
``smic_apex.xlsx`` (164 SMIC-HS clips, camera frame indices), the VIS work sheet of
``SMIC-HS-E_annotation.xlsx`` (71 clips, also used for NIR, which has the same clips) and its HS
work sheet for the long release.  Trees are read back with openpyxl/pandas on their own, not
through the adapter.  Frames are hard links of one tiny image; only the onset..offset frames exist.
"""

from __future__ import annotations

import collections
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest
from conftest import FIXTURES

from mer.data.adapters import make_adapter
from mer.data.ingest import describe, ingest
from mer.errors import MerError

ANN = FIXTURES / "annotations"
APEX_LIST = ANN / "smic_apex.xlsx"
E_SHEET = ANN / "SMIC-HS-E_annotation.xlsx"

pytestmark = pytest.mark.skipif(not (APEX_LIST.is_file() and E_SHEET.is_file()),
                                reason=f"real SMIC sheet fixtures absent under {ANN}")
EMOTION = {"ne": "negative", "po": "positive", "sur": "surprise"}


def tiny_image(ext: str) -> bytes:
    rng = np.random.default_rng(1)
    ok, buf = cv2.imencode(ext, rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))  # (H, W, 3)
    assert ok
    return buf.tobytes()


def hs_clip_list() -> list[tuple[int, str, int, int]]:
    """(subject, clip, first, last frame) of the 164 SMIC-HS clips of the real apex list.

    Seven rows lack an offset (clips the SMIC-E sheet misses): the fake clip then ends as far
    after the apex as the apex is after the onset.
    """
    df = pd.read_excel(APEX_LIST, dtype=str)
    out = []
    for r in df.itertuples(index=False):
        onset, apex = int(r.onset_frame), int(r.apex_frame)
        offset = int(r.offset_frame) if isinstance(r.offset_frame, str) else 2 * apex - onset
        out.append((int(r.subject), r.clip, onset, offset))
    return out


def e_rows(modality: str) -> list[tuple[int, str, int, int]]:
    """(subject, clip, onset, offset) of a work sheet of the real SMIC-E workbook (openpyxl)."""
    ws = openpyxl.load_workbook(E_SHEET, data_only=True, read_only=True)[modality]
    rows = ws.iter_rows(values_only=True)
    header = list(next(rows))
    col = {name: header.index(name) for name in ("Subject", "Filename", "OnsetF", "OffsetF")}
    return [(int(r[col["Subject"]]), r[col["Filename"]], int(r[col["OnsetF"]]),
             int(r[col["OffsetF"]])) for r in rows if r[col["Filename"]]]


def build_clips_tree(root: Path, clips, folder: str = "HS",
                     template: str = "image{n:06d}.bmp") -> Path:
    """``root/folder/s<N>/micro/<emotion>/<clip>/<frames>`` for every clip (clips release)."""
    master = root / "frame.bmp"
    root.mkdir(parents=True, exist_ok=True)
    master.write_bytes(tiny_image(".bmp"))
    for subject, clip, first, last in clips:
        d = root / folder / f"s{subject}" / "micro" / EMOTION[clip.split("_")[1]] / clip
        d.mkdir(parents=True, exist_ok=True)
        (root / folder / f"s{subject}" / "non_micro").mkdir(exist_ok=True)
        for n in range(first, last + 1):
            os.link(master, d / template.format(n=n))
    return root


def build_long_tree(root: Path, clips, folder: str = "SMIC_HS_E") -> Path:
    """``root/folder/s<NN>/<clip>/image<idx>.jpg`` (SMIC-E) plus the real workbook."""
    master = root / "frame.jpg"
    root.mkdir(parents=True, exist_ok=True)
    master.write_bytes(tiny_image(".jpg"))
    shutil.copyfile(E_SHEET, root / E_SHEET.name)
    for subject, clip, first, last in clips:
        d = root / folder / f"s{subject:02d}" / clip
        d.mkdir(parents=True, exist_ok=True)
        for n in range(first, last + 1):
            os.link(master, d / f"image{n:06d}.jpg")
    return root


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(MerError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.fixture(scope="module")
def hs_root(tmp_path_factory):
    return build_clips_tree(tmp_path_factory.mktemp("smic"), hs_clip_list())


HS = {"adapter": "smic", "modality": "HS"}


# ------------------------------------------------------------------------ clips release (HS)
def test_hs_counts_and_frames(hs_root):
    clips = ingest("smic", {**HS, "root": str(hs_root)}, 1, "midpoint")
    assert len(clips) == 164
    assert sorted({c.subject for c in clips}, key=lambda s: int(s[1:])) == [
        f"s{n}" for n in (1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 18, 19, 20)]
    assert collections.Counter(c.labels["smic_3class"] for c in clips) == {
        "negative": 70, "positive": 51, "surprise": 43}
    assert "164 clips, 16 subjects; apex: midpoint 164" in describe(clips)
    by_id = {c.clip_id: c for c in clips}
    c = by_id["s20_ne_01"]  # camera frame indices, 8 digits
    assert (c.onset, c.offset, c.apex, c.apex_source) == (17581039, 17581055, 17581047, "midpoint")
    assert c.frame_dir == "HS/s20/micro/negative/s20_ne_01"
    assert c.frames[0] == "image17581039.bmp" and len(c.frames) == 17
    assert c.frames[c.apex_index] == "image17581047.bmp"
    assert (c.fps, c.emotion_raw, c.emotion, c.aus, c.corpus) == (100.0, "negative", "negative",
                                                                  [], "smic")
    c = by_id["s14_ne_01"]  # six digits, zero-padded
    assert c.frames[0] == "image034208.bmp" and c.frame_paths(hs_root)[0].is_file()
    assert by_id["s3_sur_01"].subject == "s3"


def test_no_apex_is_an_error_under_annotated(hs_root):
    msg = error_of(ingest, "smic", {**HS, "root": str(hs_root)}, 1, "annotated")
    assert "164 problem(s) in 164 clip(s)" in msg
    assert "s1_ne_01: HS/s1/micro/negative/s1_ne_01: no apex annotated" in msg
    assert "apex_policy: midpoint" in msg


def small_hs(tmp_path: Path, subjects=(1, 3), template: str = "image{n:06d}.bmp",
             folder: str = "HS") -> tuple[Path, dict]:
    clips = [c for c in hs_clip_list() if c[0] in subjects]
    root = build_clips_tree(tmp_path, clips, folder, template)
    return root, {**HS, "root": str(root), "folder": folder, "frame_template": template}


def test_clips_tree_errors(tmp_path):
    root, cfg = small_hs(tmp_path)
    d = root / "HS/s3/micro/negative/s3_ne_02"
    frames = sorted(d.iterdir())
    frames[5].unlink()                                       # a gap inside the clip
    bad = frames[7]
    bad.unlink()
    bad.write_bytes(b"BM not really a bitmap")                # an undecodable frame
    empty = root / "HS/s1/micro/positive/s1_po_01"
    for f in empty.iterdir():
        f.unlink()                                           # a clip folder without frames
    msg = error_of(ingest, "smic", cfg, 1, "midpoint")
    assert "3 problem(s) in 2 clip(s)" in msg
    assert f"s3_ne_02: {d / frames[5].name}: 1 of " in msg and frames[5].name in msg
    assert f"s3_ne_02: {bad}: frame cannot be decoded as an image" in msg
    assert ("s1_po_01: HS/s1/micro/positive/s1_po_01 (no frame named like 'image000001.bmp'): "
            "onset '' / offset '' are not both frame numbers") in msg


def test_cropped_release_and_config_errors(tmp_path):
    root, cfg = small_hs(tmp_path, (2,), "reg_image{n:06d}.bmp", "SMIC_all_cropped/HS")
    clips = ingest("smic", cfg, 1, "midpoint")
    assert len(clips) == 6 and clips[0].frames[0].startswith("reg_image")
    assert clips[0].frame_dir.startswith("SMIC_all_cropped/HS/s2/micro/")
    assert "folder 'HS' not found" in error_of(ingest, "smic", {**cfg, "folder": "HS"})
    assert "unknown SMIC modality 'UV'" in error_of(make_adapter, "smic", {**cfg, "modality": "uv"})
    assert "unknown SMIC release 'short'" in error_of(make_adapter, "smic",
                                                      {**cfg, "release": "short"})
    assert "is not a file name with {n}" in error_of(make_adapter, "smic",
                                                     {**cfg, "frame_template": "x.bmp"})
    assert "corpus folder not found" in error_of(ingest, "smic", {**cfg, "root": str(tmp_path / "no")})
    assert make_adapter("smic", {**cfg, "modality": "vis"}).fps == 25.0
    assert make_adapter("smic", {**cfg, "fps": 90}).fps == 90.0


@pytest.mark.parametrize("modality", ["VIS", "NIR"])
def test_vis_and_nir(tmp_path, modality):
    root = build_clips_tree(tmp_path, e_rows("VIS"), modality)
    clips = ingest(f"smic_{modality.lower()}", {"adapter": "smic", "root": str(root),
                                                "modality": modality, "corpus": "smic"},
                   1, "midpoint")
    assert len(clips) == 71 and len({c.subject for c in clips}) == 8
    # by folder: the SMIC-E sheet's 24 negative / 19 surprise count s18_sur_03 as negative
    assert collections.Counter(c.emotion for c in clips) == {
        "positive": 28, "negative": 23, "surprise": 20}
    assert {c.fps for c in clips} == {25.0} and {c.corpus for c in clips} == {"smic"}
    assert clips[0].frame_dir == f"{modality}/s11/micro/negative/s11_ne_01"  # s11 < s20


# ------------------------------------------------------------------------- SMIC-E long release
@pytest.fixture(scope="module")
def long_root(tmp_path_factory):
    return build_long_tree(tmp_path_factory.mktemp("smic_e"), e_rows("HS"))


LONG = {"adapter": "smic", "release": "long"}


def test_long_release_counts_and_layout(long_root):
    clips = ingest("smic_e", {**LONG, "root": str(long_root)}, 1, "midpoint")
    assert len(clips) == 157 and len({c.subject for c in clips}) == 16
    assert collections.Counter(c.labels["smic_3class"] for c in clips) == {
        "negative": 65, "positive": 51, "surprise": 41}
    by_id = {c.clip_id: c for c in clips}
    c = by_id["s18_sur_03"]  # the sheet says negative; the packaged fix smic_e-001 corrects it
    assert (c.emotion_raw, c.emotion, c.fixes) == ("negative", "surprise", ["smic_e-001"])
    assert sum(bool(c.fixes) for c in clips) == 1
    c = by_id["s3_ne_01"]
    assert c.frame_dir == "SMIC_HS_E/s03/s3_ne_01" and c.subject == "s3"  # padded folder only
    c = by_id["s20_ne_06"]  # three intervals in the sheet: the first is the clip
    assert (c.onset, c.offset, c.apex, c.apex_source) == (17668815, 17668835, 17668825, "midpoint")
    assert c.frames[0] == "image17668815.jpg"


def test_long_release_vis_sheet_and_errors(long_root, tmp_path):
    root = build_long_tree(tmp_path / "vis", e_rows("VIS"), "SMIC_VIS_E")
    vis = {**LONG, "root": str(root), "modality": "VIS", "corpus": "smic_e"}
    clips = ingest("smic_e_vis", vis, 1, "midpoint")
    assert len(clips) == 71 and clips[0].fps == 25.0
    assert collections.Counter(c.emotion for c in clips) == {
        "positive": 28, "negative": 23, "surprise": 20}

    gone = root / "SMIC_VIS_E/s14/s14_ne_02"
    shutil.rmtree(gone)
    msg = error_of(ingest, "smic_e_vis", vis, 1, "midpoint")
    assert f"s14_ne_02: {gone}: clip folder not found" in msg
    msg = error_of(ingest, "smic_e_nir", {**LONG, "root": str(root), "modality": "NIR",
                                          "folder": "SMIC_VIS_E"}, 1, "midpoint")
    assert "no work sheet 'NIR' (found ['HS', 'Sheet2', 'Sheet3', 'VIS'])" in msg

    renamed = tmp_path / "renamed.xlsx"
    wb = openpyxl.load_workbook(E_SHEET)
    wb["HS"].cell(1, 17).value = "Emotions"
    wb.save(renamed)
    msg = error_of(ingest, "smic_e", {**LONG, "root": str(long_root), "sheet": str(renamed)})
    assert f"{renamed}: work sheet 'HS' lacks columns ['Emotion']" in msg
