"""CAS(ME)^3 adapter (parts A micro, A macro, C): the real sheets with generated frame trees.

Trees are built from the sheets read with pandas/openpyxl here, independently of the adapter:
Part A frames for every micro-expression row of BOTH official sheets (the ME sheet and the
combined .xls, which corrects four of its rows), so the corrected clips find their frames.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES

from mer.data.adapters import make_adapter
from mer.data.casme3 import Casme3A, Casme3AMacro, Casme3C, parse_casme3_aus
from mer.data.ingest import describe, ingest
from mer.errors import MerError

DIR = FIXTURES / "annotations" / "casme3"
ME = DIR / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
XLS = DIR / "CAS(ME)3_part_A_v2.xls"
PART_C = DIR / "CAS(ME)3_part_C_ME.xlsx"
DAMAGED = DIR / "error_info_damaged_image_partA.txt"
FRAMES = "data/part_A_split/part_A"

pytestmark = pytest.mark.skipif(not all(p.is_file() for p in (ME, XLS, PART_C, DAMAGED)),
                                reason=f"real CAS(ME)^3 sheet fixtures absent: {DIR}")


def tiny_jpeg() -> bytes:
    rng = np.random.default_rng(2)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def link_frames(root: Path, rows: pd.DataFrame, folder) -> None:
    """Hard links of one tiny JPEG for frames onset..offset of each row, in ``folder(row)``."""
    master = root / "frame.jpg"
    if not master.exists():
        root.mkdir(parents=True, exist_ok=True)
        master.write_bytes(tiny_jpeg())
    for row in rows.itertuples(index=False):
        d = root / folder(row)
        d.mkdir(parents=True, exist_ok=True)
        for n in range(int(row.Onset), int(row.Offset) + 1):
            if not (d / f"{n}.jpg").exists():
                os.link(master, d / f"{n}.jpg")


def part_a_rows(expression: str | None = None) -> pd.DataFrame:
    me = pd.read_excel(ME, dtype=str)
    xls = pd.read_excel(XLS, dtype=str)
    if expression is not None:
        return xls[xls["Expression type"] == expression]
    return pd.concat([me, xls[xls["Expression type"] == "Micro-expression"]])


def part_a_folder(row) -> str:
    return f"{FRAMES}/{row.Subject}/{row.Filename.lower()}/color"


def cfg_a(root: Path, sheet: str | Path = ME, **extra) -> dict:
    return {"adapter": "casme3", "root": str(root), "sheet": str(sheet),
            "damaged_frames": str(DAMAGED), **extra}


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(MerError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.fixture(scope="module")
def part_a(tmp_path_factory):
    root = tmp_path_factory.mktemp("casme3")
    link_frames(root, part_a_rows(), part_a_folder)
    (root / FRAMES).mkdir(parents=True, exist_ok=True)
    return root, ingest("casme3", cfg_a(root), workers=1)


def subset_sheet(dst: Path, source: Path, subjects: set[str], edits=None, extra_rows=()) -> Path:
    """An .xlsx copy of ``source`` with ``subjects``' rows, cells edited {(row#, column): value}."""
    df = pd.read_excel(source, dtype=str)
    df = df[df["Subject"].isin(subjects)].reset_index(drop=True)
    for (i, column), value in (edits or {}).items():
        df.loc[i, column] = value
    if extra_rows:
        df = pd.concat([df, pd.DataFrame(list(extra_rows), columns=df.columns)], ignore_index=True)
    df.to_excel(dst, index=False)
    return dst


# ------------------------------------------------------------------------------ Part A micro
def test_part_a_counts(part_a):
    _, clips = part_a
    assert len(clips) == 860 and len({c.subject for c in clips}) == 94
    assert collections.Counter(c.emotion for c in clips) == {
        "disgust": 250, "surprise": 187, "others": 161, "fear": 86, "anger": 64, "sadness": 57,
        "happiness": 55}
    three = collections.Counter(c.labels["casme3_3class"] for c in clips)
    assert three.pop("") == 161
    assert three == {"negative": 250 + 86 + 64 + 57, "positive": 55, "surprise": 187}
    assert sum(bool(c.labels["casme3_4class"]) for c in clips) == 860
    assert set(clips[0].labels) == {"casme3_3class", "casme3_4class", "casme3_7class"}
    assert {c.apex_source for c in clips} == {"annotated"}
    assert "860 clips, 94 subjects" in describe(clips)


def test_part_a_bad_rows_fixed_from_the_official_xls(part_a):
    _, clips = part_a
    by_id = {c.clip_id: c for c in clips}
    fixed = {cid: c.fixes for cid, c in by_id.items() if c.fixes}
    assert fixed == {"spNO.149_d_112": ["casme3-001"], "spNO.216_d_3647": ["casme3-002"],
                     "spNO.40_e_1812": ["casme3-003"], "spNO.40_e_2327": ["casme3-004"]}
    assert (by_id["spNO.149_d_112"].apex, by_id["spNO.149_d_112"].apex_index) == (160, 48)
    assert (by_id["spNO.216_d_3647"].onset, by_id["spNO.216_d_3647"].frames[0]) == (2647, "2647.jpg")
    assert by_id["spNO.40_e_1812"].offset == 1845 and by_id["spNO.40_e_2327"].offset == 2403
    c = by_id["spNO.216_e_0"]  # onset = apex = 0: ordered, the same in both sheets: kept
    assert (c.onset, c.apex, c.offset, c.apex_index, c.fixes) == (0, 0, 25, 0, [])


def test_part_a_quirks(part_a):
    root, clips = part_a
    by_id = {c.clip_id: c for c in clips}
    c = by_id["spNO.1_a_355"]
    assert (c.subject, c.clip, c.frame_dir) == ("spNO.1", "a_355", f"{FRAMES}/spNO.1/a/color")
    assert c.frames == [f"{n}.jpg" for n in range(355, 361)] and c.frames[c.apex_index] == "359.jpg"
    assert (c.aus, c.emotion, c.fps) == (["5"], "others", 30.0)
    c = by_id["spNO.14_j_1012"]  # the sheet's upper-case 'J'
    assert c.frame_dir == f"{FRAMES}/spNO.14/j/color" and c.frame_paths(root)[0].is_file()
    assert collections.Counter(c.emotion_raw for c in clips)["Others"] == 3
    assert by_id["spNO.1_j_102"].aus == ["26", "25"]
    assert by_id["spNO.149_d_112"].aus == ["28", "14"]  # 'T28+14': T names no side


def test_part_a_bad_rows_are_errors_without_the_fixes(tmp_path):
    sheet = subset_sheet(tmp_path / "me.xlsx", ME, {"spNO.149", "spNO.40", "spNO.216"})
    (tmp_path / FRAMES).mkdir(parents=True)
    msg = error_of(ingest, "copy", cfg_a(tmp_path, sheet.name, corpus="copy"))
    for line in ("spNO.149_d_112: me.xlsx row 2: apex 83 is outside onset..offset 112..358",
                 "spNO.216_d_3647: me.xlsx row ", "onset 3647 is after offset 2694",
                 "spNO.40_e_1812: me.xlsx row ", "onset 1812 is after offset 0"):
        assert line in msg
    assert "spNO.216_e_0" in msg  # its frames are missing here: reported, not dropped


def test_damaged_frames_are_replaced_by_the_nearest_intact_frame(tmp_path, caplog):
    # a clip over spNO.3 J's damaged run (498..576): onset 495, offset 580
    row = ["spNO.3", "J", "495", "530", "580", "4", "III", "disgust"]
    sheet = subset_sheet(tmp_path / "me.xlsx", ME, {"spNO.3"}, extra_rows=[row])
    rows = pd.read_excel(sheet, dtype=str)
    link_frames(tmp_path, rows, part_a_folder)
    for n in range(498, 577):  # the listed frames are unreadable in this copy
        bad = tmp_path / FRAMES / "spNO.3/j/color" / f"{n}.jpg"
        bad.unlink()
        bad.write_bytes(b"broken")
    with caplog.at_level(logging.WARNING, logger="mer.data.casme3"):
        clips = {c.clip_id: c for c in ingest("casme3", cfg_a(tmp_path, sheet.name))}
    c = clips["spNO.3_j_495"]
    assert len(c.frames) == 86 and c.frames[:3] == ["495.jpg", "496.jpg", "497.jpg"]
    assert c.frames[3:82] == ["497.jpg"] * 79 and c.frames[82:] == [f"{n}.jpg" for n in range(577, 581)]
    assert c.frames[c.apex_index] == "497.jpg"
    assert "spNO.3 j_495" in caplog.text and "79 frame(s)" in caplog.text
    assert len(clips) == 14 and all(x.frames[0] == f"{x.onset}.jpg" for x in clips.values())

    # without the list the broken frames are reported
    msg = error_of(ingest, "casme3", cfg_a(tmp_path, sheet.name, damaged_frames=None))
    assert f"spNO.3_j_495: {tmp_path / FRAMES}/spNO.3/j/color/498.jpg: frame cannot be decoded" in msg
    msg = error_of(ingest, "casme3", cfg_a(tmp_path, sheet.name, damaged_frames="nope.txt"))
    assert "official damaged-frame list not found" in msg and "damaged_frames" in msg


def test_part_a_layout_errors(tmp_path):
    sheet = subset_sheet(tmp_path / "me.xlsx", ME, {"spNO.1"})
    link_frames(tmp_path, pd.read_excel(sheet, dtype=str), part_a_folder)
    color = tmp_path / FRAMES / "spNO.1"
    shutil.rmtree(color / "b")
    (color / "e/color/70.jpg").unlink()
    (color / "h/color/185.jpg").unlink()
    (color / "h/color/185.jpg").write_bytes(b"")
    msg = error_of(ingest, "casme3", cfg_a(tmp_path, sheet.name))
    assert "3 problem(s) in 3 clip(s)" in msg
    assert f"spNO.1_b_166: {color}/b/color: clip folder not found" in msg
    assert f"spNO.1_e_62: {color}/e/color/70.jpg: 1 of 35 onset..offset frames missing" in msg
    assert f"spNO.1_h_181: {color}/h/color/185.jpg: frame is empty (0 bytes)" in msg

    df = pd.read_excel(sheet, dtype=str).rename(columns={"emotion": "Emotion"})
    df.to_excel(tmp_path / "renamed.xlsx", index=False)
    msg = error_of(ingest, "casme3", cfg_a(tmp_path, "renamed.xlsx"))
    assert "renamed.xlsx: the CAS(ME)^3 Part A ME sheet lacks columns ['emotion']" in msg
    msg = error_of(ingest, "casme3", cfg_a(tmp_path, "missing.xlsx"))
    assert "CAS(ME)^3 Part A ME sheet not found" in msg and "me.xlsx" in msg
    assert "frame folder 'nowhere' not found" in error_of(
        ingest, "casme3", cfg_a(tmp_path, sheet.name, frames="nowhere"))
    assert "unknown CAS(ME)^3 part 'B'" in error_of(make_adapter, "x", cfg_a(tmp_path, part="B"))
    assert "unknown key 'macro_apex_frame'" in error_of(
        make_adapter, "x", cfg_a(tmp_path, macro_apex_frame=5))


# ------------------------------------------------------------------------------ Part A macro
def test_macro_rows_of_the_real_xls():
    a = make_adapter("casme3_macro", cfg_a(DIR, XLS, part="A_macro"))
    assert isinstance(a, Casme3AMacro) and a.vocabulary == "casme3_expression"
    rows = a.annotations()
    assert len(rows) == 3346 and {r.apex_source for r in rows} == {"frame5"}
    assert all(int(r.apex) == int(r.onset) + 4 for r in rows)
    both = make_adapter("x", cfg_a(DIR, XLS, part="A_macro",
                                   expression_types=["macro-expression", "Micro-expression"]))
    assert collections.Counter(r.emotion for r in both.annotations()) == {
        "Macro-expression": 3346, "Micro-expression": 860}
    assert "unknown expression type 'mega'" in error_of(
        make_adapter, "x", cfg_a(DIR, XLS, part="A_macro", expression_types=["mega"]))


def test_macro_ingest_fifth_frame_as_apex(tmp_path):
    xls_rows = part_a_rows("Macro-expression")
    sheet = tmp_path / "macro.xlsx"
    pd.read_excel(XLS, dtype=str).query("Subject in ['spNO.1', 'spNO.14']").to_excel(sheet, index=False)
    link_frames(tmp_path, xls_rows[xls_rows.Subject.isin(["spNO.1", "spNO.14"])], part_a_folder)
    cfg = cfg_a(tmp_path, sheet.name, part="A_macro", corpus="casme3")
    clips = ingest("casme3_macro", cfg)
    assert len(clips) == 40 and {c.apex_source for c in clips} == {"frame5"}
    assert all(c.apex == c.onset + 4 and c.apex_index == 4 for c in clips)
    assert {c.labels["casme3_expression_type"] for c in clips} == {"macro-expression"}
    c = clips[0]
    assert (c.clip_id, c.onset, c.apex, c.offset, c.emotion_raw) == (
        "spNO.1_a_37", 37, 41, 65, "Macro-expression")
    annotated = ingest("casme3_macro", {**cfg, "macro_apex_frame": 0})
    assert annotated[0].apex == 63 and {c.apex_source for c in annotated} == {"annotated"}


# ------------------------------------------------------------------------------------ Part C
def test_part_c(tmp_path):
    df = pd.read_excel(PART_C, dtype=str)
    link_frames(tmp_path, df.rename(columns={"sub": "Subject", "onset": "Onset",
                                             "offset": "Offset"}),
                lambda row: f"{row.Subject}/color")
    shutil.copy(PART_C, tmp_path / PART_C.name)
    cfg = {"adapter": "casme3", "part": "C", "root": str(tmp_path)}
    assert isinstance(make_adapter("casme3_c", cfg), Casme3C)
    clips = ingest("casme3_c", cfg, 1, "midpoint")
    assert len(clips) == 165 and len({c.subject for c in clips}) == 30
    assert collections.Counter(c.emotion for c in clips) == {
        "negative": 99, "surprise": 30, "others": 20, "positive": 16}
    assert sum(bool(c.labels["casme3_c_3class"]) for c in clips) == 145
    by_id = {c.clip_id: c for c in clips}
    c = by_id["sub1_1"]
    assert (c.frame_dir, c.onset, c.apex, c.offset, c.apex_source) == ("1/color", 373, 379, 385,
                                                                        "midpoint")
    assert c.aus == ["R4", "5"]
    assert by_id["sub4_11"].aus == ["4", "11"]          # full-width comma '4，11'
    assert by_id["sub4_5"].aus == ["14", "L24"]         # trailing comma
    assert by_id["sub10_1"].aus == ["13"] and by_id["sub10_1"].aus_raw == "13?"
    msg = error_of(ingest, "casme3_c", cfg, 1, "annotated")
    assert "165 problem(s)" in msg and "sub1_1: CAS(ME)3_part_C_ME.xlsx row 2: no apex annotated" in msg


def test_au_parser():
    assert parse_casme3_aus("R2+R1") == ["R2", "R1"] and parse_casme3_aus("B22+r18") == ["22", "R18"]
    assert parse_casme3_aus("L1,10,11,38,", ",，") == ["L1", "10", "11", "38"]
    with pytest.raises(ValueError, match="'X4'"):
        parse_casme3_aus("1+X4")
    assert isinstance(make_adapter("x", cfg_a(DIR)), Casme3A)
