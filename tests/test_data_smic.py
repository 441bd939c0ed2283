"""SMIC adapter: HS/VIS/NIR clip folders and the SMIC-E long-clip release.

Fake trees are generated around REAL sheets (fixtures): the HS clip list and frame indices of
``smic_apex.xlsx`` (164 SMIC-HS clips, camera frame indices), the VIS work sheet of
``SMIC-HS-E_annotation.xlsx`` (71 clips, also used for NIR, which has the same clips) and its HS
work sheet for the long release.  Trees are read back with openpyxl/pandas on their own, not
through the adapter.  Frames are hard links of one tiny image; only the onset..offset frames exist
(for SMIC-E: the span of a row's intervals that lie inside its long clip).
"""

from __future__ import annotations

import collections
import logging
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


def e_long_spans(modality: str) -> list[tuple[int, str, int, int]]:
    """(subject, clip, first, last frame to create) of each row of a SMIC-E work sheet.

    The span covers the first interval and every later one that lies inside the row's long clip
    (FirstF..FirstF+TotalVL-1), so that later intervals have their frames too.  (The first
    interval is not always inside: HS s1_ne_03 has 658536..658562 against 650000..650699.)
    """
    df = pd.read_excel(E_SHEET, sheet_name=modality)
    out = []
    for _, r in df.iterrows():
        first, last = int(r["FirstF"]), int(r["FirstF"]) + int(r["TotalVL"]) - 1
        pairs = [(r[a], r[b]) for a, b in (("OnsetF", "OffsetF"), ("Onset2F", "Offset2F"),
                                           ("Onset3F", "Offset3F")) if a in df.columns]
        inside = [(int(a), int(b)) for k, (a, b) in enumerate(pairs)
                  if k == 0 or (pd.notna(a) and pd.notna(b) and first <= a <= b <= last)]
        out.append((int(r["Subject"]), r["Filename"], min(a for a, _ in inside),
                    max(b for _, b in inside)))
    return out


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
    _root, cfg = small_hs(tmp_path, (2,), "reg_image{n:06d}.bmp", "SMIC_all_cropped/HS")
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
    return build_long_tree(tmp_path_factory.mktemp("smic_e"), e_long_spans("HS"))


LONG = {"adapter": "smic", "release": "long"}


def test_long_release_counts_and_layout(long_root, caplog):
    with caplog.at_level(logging.WARNING, logger="mer.data.smic"):
        clips = ingest("smic_e", {**LONG, "root": str(long_root)}, 1, "midpoint")
    # 157 rows' first intervals + 8 second + 1 third interval (s4_ne_04_3)
    assert len(clips) == 166 and len({c.subject for c in clips}) == 16
    assert collections.Counter(c.labels["smic_3class"] for c in clips) == {
        "negative": 71, "positive": 51, "surprise": 44}
    later = sorted(c.clip_id for c in clips if c.clip_id.count("_") == 3)
    assert later == ["s18_ne_01_2", "s18_sur_03_2", "s20_ne_06_2", "s20_ne_09_2",
                     "s20_sur_02_2", "s3_ne_02_2", "s4_ne_04_2", "s4_ne_04_3", "s9_sur_01_2"]
    by_id = {c.clip_id: c for c in clips}
    c = by_id["s18_sur_03"]  # the sheet says negative; the packaged fix smic_e-001 corrects it
    assert (c.emotion_raw, c.emotion, c.fixes) == ("negative", "surprise", ["smic_e-001"])
    c = by_id["s18_sur_03_2"]  # the same row's second interval: smic_e-002
    assert (c.emotion_raw, c.emotion, c.fixes) == ("negative", "surprise", ["smic_e-002"])
    assert sum(bool(c.fixes) for c in clips) == 2
    c = by_id["s3_ne_01"]
    assert c.frame_dir == "SMIC_HS_E/s03/s3_ne_01" and c.subject == "s3"  # padded folder only
    c = by_id["s20_ne_06"]  # three intervals in the sheet: the first keeps the row's name
    assert (c.onset, c.offset, c.apex, c.apex_source) == (17668815, 17668835, 17668825, "midpoint")
    assert c.frames[0] == "image17668815.jpg"
    c = by_id["s20_ne_06_2"]  # the second reads the same folder
    assert (c.onset, c.offset, c.apex, c.clip) == (17668855, 17668883, 17668869, "s20_ne_06_2")
    assert c.frame_dir == "SMIC_HS_E/s20/s20_ne_06" and len(c.frames) == 29
    c = by_id["s4_ne_04_3"]
    assert (c.onset, c.offset, c.frame_dir) == (219413, 219435, "SMIC_HS_E/s04/s4_ne_04")
    # skipped later intervals: five third "intervals" before their long clip, one repeat
    skipped = [r.getMessage() for r in caplog.records if "interval skipped" in r.getMessage()]
    assert len(skipped) == 6
    assert sum("lies outside the long clip" in m for m in skipped) == 5
    assert any("row 7 (s20_ne_06): Onset3F..Offset3F 17549887..17668743 lies outside the long "
               "clip FirstF..LastF 17668743..17668982" in m for m in skipped)
    assert any("row 157 (s9_sur_01): Onset3F..Offset3F 61250..61291 repeats" in m
               for m in skipped)

    first = ingest("smic_e", {**LONG, "root": str(long_root), "intervals": "first"}, 1,
                   "midpoint")
    assert len(first) == 157 and not any(c.clip_id.count("_") == 3 for c in first)
    assert collections.Counter(c.labels["smic_3class"] for c in first) == {
        "negative": 65, "positive": 51, "surprise": 41}
    assert "unknown intervals value 'some'" in error_of(
        make_adapter, "smic_e", {**LONG, "root": str(long_root), "intervals": "some"})


def test_long_interval_residue_rules(tmp_path, caplog):
    """A later interval with onset after offset, a non-number cell, or beyond LastF is skipped;
    the real sheet has none of these, so this sheet is generated (real HS rows, edited)."""
    real = pd.read_excel(E_SHEET, sheet_name="HS")
    keep = ["s20_ne_01", "s20_ne_02", "s20_ne_03", "s20_ne_04"]
    df = real[real["Filename"].isin(keep)].copy().astype(object)
    df[["Onset3F", "Offset3F"]] = None
    df[["Onset2F", "Offset2F"]] = [(17581050, 17581040), ("x", 17581760),
                                   (17625440, 17625470), (17651140, 17651150)]
    spans = {c: (20, c, int(on), int(last)) for c, on, last in
             zip(df["Filename"], df["OnsetF"], df["LastF"])}
    root = build_long_tree(tmp_path, [spans[c] for c in keep])
    df.to_excel(root / E_SHEET.name, sheet_name="HS", index=False)
    with caplog.at_level(logging.WARNING, logger="mer.data.smic"):
        clips = ingest("smic_e", {**LONG, "root": str(root)}, 1, "midpoint")
    assert [c.clip_id for c in clips] == [*keep, "s20_ne_04_2"]
    assert (clips[-1].onset, clips[-1].offset) == (17651140, 17651150)
    msgs = " | ".join(r.getMessage() for r in caplog.records)
    assert "row 2 (s20_ne_01): Onset2F..Offset2F 17581050..17581040 has onset after offset" in msgs
    assert "row 3 (s20_ne_02): Onset2F..Offset2F x..17581760 is not a pair of frame numbers" in msgs
    assert ("row 4 (s20_ne_03): Onset2F..Offset2F 17625440..17625470 lies outside the long "
            "clip FirstF..LastF 17625259..17625458") in msgs
    assert "3 later interval(s)" in msgs


# ----------------------------------------------------------------- estimated apexes (apex_sheet)
def test_apex_sheet_on_clips_release(hs_root):
    clips = ingest("smic", {**HS, "root": str(hs_root), "apex_sheet": str(APEX_LIST)}, 1,
                   "annotated")  # every clip has an apex now: no error under 'annotated'
    assert len(clips) == 164 and {c.apex_source for c in clips} == {"estimated"}
    assert "164 clips, 16 subjects; apex: estimated 164" in describe(clips)
    by_id = {c.clip_id: c for c in clips}
    c = by_id["s20_ne_01"]
    assert (c.onset, c.apex, c.offset, c.apex_index) == (17581039, 17581046, 17581055, 7)
    assert c.frames[c.apex_index] == "image17581046.bmp"
    c = by_id["s3_ne_03"]  # one of the 7 rows without offset_frame
    assert (c.onset, c.apex) == (302370, 302377)


def test_apex_sheet_on_long_release(long_root, caplog):
    with caplog.at_level(logging.WARNING, logger="mer.data.smic"):
        clips = ingest("smic_e", {**LONG, "root": str(long_root), "apex_sheet": str(APEX_LIST)},
                       1, "midpoint")
    assert collections.Counter(c.apex_source for c in clips) == {"estimated": 161, "midpoint": 5}
    by_id = {c.clip_id: c for c in clips}
    # later intervals take the row of the same subject and onset: SMIC-HS's own names
    assert [by_id[i].apex for i in ("s3_ne_02_2", "s4_ne_04_2", "s4_ne_04_3", "s9_sur_01_2")] == [
        302377, 219354, 219430, 61268]
    assert by_id["s20_ne_06_2"].apex_source == "midpoint"  # no row for it
    assert (by_id["s20_ne_06"].apex, by_id["s20_ne_06"].apex_source) == (17668824, "estimated")
    unused = [r.getMessage() for r in caplog.records if "match no clip" in r.getMessage()]
    assert len(unused) == 1 and "3 row(s)" in unused[0]
    assert "s3_ne_20 (smic_apex.xlsx row 160)" in unused[0] and "s2_sur_05" in unused[0]


def test_apex_sheet_errors_and_fix(hs_root, tmp_path):
    cfg = {**HS, "root": str(hs_root)}
    wb = openpyxl.load_workbook(APEX_LIST)
    ws = wb.active
    assert ws.cell(2, 3).value == "s20_ne_01" and ws.cell(2, 6).value == 17581046
    ws.cell(2, 6).value = 17581100  # after the clip's offset 17581055
    bad = tmp_path / "apex_outside.xlsx"
    wb.save(bad)
    msg = error_of(ingest, "smic", {**cfg, "apex_sheet": str(bad)}, 1, "midpoint")
    assert "1 problem(s) in 1 clip(s)" in msg
    assert ("s20_ne_01: HS/s20/micro/negative/s20_ne_01; apex from apex_outside.xlsx row 2: "
            "apex 17581100 is outside onset..offset 17581039..17581055") in msg
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("id,corpus,subject,clip,field,old,new,source,reason\n"
                     "t-1,smic,s20,s20_ne_01,apex,17581100,17581046,test,test\n")
    clips = ingest("smic", {**cfg, "apex_sheet": str(bad), "extra_fixes": [str(fixes)]}, 1,
                   "midpoint")
    c = next(c for c in clips if c.clip_id == "s20_ne_01")
    assert (c.apex, c.apex_source, c.fixes) == (17581046, "estimated", ["t-1"])

    ws.cell(3, 6).value = None  # a row without apex
    wb.save(bad)
    msg = error_of(ingest, "smic", {**cfg, "apex_sheet": str(bad)}, 1, "midpoint")
    assert f"{bad}: apex sheet has bad rows: row 3 ('20', 's20_ne_02')" in msg
    ws.cell(1, 6).value = "apex"
    wb.save(bad)
    assert "apex sheet lacks columns ['apex_frame']" in error_of(
        ingest, "smic", {**cfg, "apex_sheet": str(bad)}, 1, "midpoint")
    assert "apex sheet not found" in error_of(
        ingest, "smic", {**cfg, "apex_sheet": "no_such.xlsx"}, 1, "midpoint")


def test_long_release_vis_sheet_and_errors(long_root, tmp_path):
    root = build_long_tree(tmp_path / "vis", e_long_spans("VIS"), "SMIC_VIS_E")
    vis = {**LONG, "root": str(root), "modality": "VIS", "corpus": "smic_e"}
    clips = ingest("smic_e_vis", vis, 1, "midpoint")
    assert len(clips) == 76 and clips[0].fps == 25.0  # 71 rows + 5 second intervals
    assert collections.Counter(c.emotion for c in clips) == {
        "positive": 28, "negative": 26, "surprise": 22}

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
