"""SAMM adapter: the real v2 coding sheet with a generated frame tree.

The tree builder reads the sheet with openpyxl on its own (header found by its own scan), so it
shares no reading code with the adapter.  Frames are hard links of one tiny JPEG.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest
from conftest import FIXTURES

from mer.data.adapters import make_adapter
from mer.data.ingest import describe, ingest
from mer.data.samm import parse_samm_aus
from mer.errors import MerError

SHEET = FIXTURES / "annotations" / "SAMM_Micro_FACS_Codes_v2.xlsx"

pytestmark = pytest.mark.skipif(not SHEET.is_file(),
                                reason=f"real SAMM sheet fixture absent: {SHEET}")


def sheet_rows(path: Path) -> tuple[int, list[dict]]:
    """(1-based header row, rows as {header: value}) of a SAMM sheet, read with openpyxl."""
    ws = openpyxl.load_workbook(path, read_only=True).worksheets[0]
    rows = list(ws.iter_rows(values_only=True))
    top = next(i for i, r in enumerate(rows) if r and r[0] == "Subject")
    header = list(rows[top])
    return top + 1, [dict(zip(header, r)) for r in rows[top + 1:] if r and r[0] is not None]


def tiny_jpeg() -> bytes:
    rng = np.random.default_rng(1)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def build_tree(root: Path, sheet: Path) -> Path:
    """Frames onset..offset of every row under ``root/SAMM/<Subject>/<Filename>/``."""
    root.mkdir(parents=True, exist_ok=True)
    master = root / "frame.jpg"
    master.write_bytes(tiny_jpeg())
    for row in sheet_rows(sheet)[1]:
        subject = f"{int(row['Subject']):03d}"
        folder = root / "SAMM" / subject / str(row["Filename"])
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(int(row["Onset Frame"]), int(row["Offset Frame"]) + 1):
            os.link(master, folder / f"{subject}_{n:05d}.jpg")
    return root


def write_sheet(dst: Path, subjects: set[str], edits: dict | None = None,
                drop_preamble: bool = False, numeric_subjects: bool = False) -> Path:
    """A copy of the real sheet with only ``subjects``' rows and ``edits`` {(clip, header): value}."""
    wb = openpyxl.load_workbook(SHEET)
    ws = wb.worksheets[0]
    top, _ = sheet_rows(SHEET)
    col = {c.value: c.column for c in ws[top] if c.value}
    for r in range(ws.max_row, top, -1):
        subject, clip = ws.cell(r, 1).value, ws.cell(r, 2).value
        if subject is None:
            continue
        if subject not in subjects:
            ws.delete_rows(r)
            continue
        for (target, header), value in (edits or {}).items():
            if clip == target:
                ws.cell(r, col[header]).value = value
        if numeric_subjects:
            ws.cell(r, 1).value = int(subject)
    if drop_preamble:
        ws.delete_rows(1, top - 1)
    wb.save(dst)
    return dst


def cfg_for(root: Path, sheet: str | Path, **extra) -> dict:
    return {"adapter": "samm", "root": str(root), "sheet": str(sheet), **extra}


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(MerError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    root = build_tree(tmp_path_factory.mktemp("samm"), SHEET)
    return root, ingest("samm", cfg_for(root, SHEET.resolve()), workers=1)


@pytest.fixture
def small(tmp_path):
    """Subjects 006 and 028 (14 clips, including 028_4_1 whose apex is past its offset)."""
    def make(edits=None, **kw):
        sheet = write_sheet(tmp_path / "samm_test.xlsx", {"006", "028"}, edits, **kw)
        build_tree(tmp_path, sheet)
        return tmp_path, cfg_for(tmp_path, sheet.name)
    return make


# ------------------------------------------------------------------------- the real sheet
def test_real_sheet_counts(full):
    _, clips = full
    assert len(clips) == 159
    assert len({c.subject for c in clips}) == 29
    assert collections.Counter(c.emotion for c in clips) == {
        "anger": 57, "other": 26, "happiness": 26, "surprise": 15, "contempt": 12, "disgust": 9,
        "fear": 8, "sadness": 6}

    five = [c for c in clips if c.labels["samm_5class"]]
    assert len(five) == 136 and len({c.subject for c in five}) == 27
    assert collections.Counter(c.labels["samm_5class"] for c in five) == {
        "anger": 57, "other": 26, "happiness": 26, "surprise": 15, "contempt": 12}

    three = [c for c in clips if c.labels["samm_3class"]]
    assert len(three) == 133 and len({c.subject for c in three}) == 28  # = MEGC2019's SAMM part
    assert collections.Counter(c.labels["samm_3class"] for c in three) == {
        "negative": 57 + 12 + 9 + 8 + 6, "positive": 26, "surprise": 15}
    assert sum(bool(c.labels["samm_all"]) for c in clips) == 159
    assert "159 clips, 29 subjects; apex: annotated 157, midpoint 2" in describe(clips)


def test_real_sheet_quirks(full):
    root, clips = full
    by_id = {c.clip_id: c for c in clips}
    c = by_id["006_1_2"]
    assert (c.subject, c.clip, c.frame_dir) == ("006", "006_1_2", "SAMM/006/006_1_2")
    assert c.frames[0] == "006_05562.jpg" and c.frames[-1] == "006_05632.jpg"
    assert c.frames[c.apex_index] == "006_05588.jpg" and len(c.frames) == 71
    assert (c.emotion_raw, c.emotion, c.aus, c.fps) == ("Anger", "anger", ["4", "7"], 200.0)
    assert c.frame_paths(root)[0] == root / "SAMM/006/006_1_2/006_05562.jpg"

    # apexes outside onset..offset: packaged fixes, middle frame, recorded
    c = by_id["028_4_1"]
    assert (c.onset, c.apex, c.offset, c.apex_source, c.fixes) == (
        1071, 1102, 1134, "midpoint", ["samm-001"])
    c = by_id["032_3_1"]
    assert (c.apex, c.apex_source, c.fixes) == (4933, "midpoint", ["samm-002"])
    assert sum(bool(c.fixes) for c in clips) == 2

    # free-text action units
    assert by_id["007_6_1"].aus == ["R6", "R12", "R15"]          # '(R6 or R12)+R15'
    assert by_id["010_2_1"].aus == ["7", "43"]                   # 'ref(7B)+43'
    assert by_id["011_6_1"].aus == ["10"]                        # '10A/B'
    assert by_id["014_6_3"].aus == ["L12"]                       # 'A/L12'
    assert by_id["026_5_1"].aus == ["R14", "17"]                 # 'R14+17+soft focus'
    assert by_id["033_1_4"].aus_raw == "12+15" and by_id["033_1_4"].aus == ["12", "15"]


# -------------------------------------------------------------------- sheet variants, errors
def test_header_found_without_preamble_and_numeric_subjects(small):
    _, cfg = small(drop_preamble=True, numeric_subjects=True)
    clips = ingest("samm", cfg)
    assert len(clips) == 14 and {c.subject for c in clips} == {"006", "028"}
    assert clips[0].frame_dir == "SAMM/006/006_1_2"


def test_apex_outside_is_an_error_without_the_fix(small):
    _, cfg = small()
    msg = error_of(ingest, "samm_copy", {**cfg, "corpus": "samm_copy"})  # packaged fixes: samm only
    assert "1 problem(s) in 1 clip(s)" in msg
    assert "028_4_1: samm_test.xlsx row 26: apex 1143 is outside onset..offset 1071..1134" in msg


def test_missing_folder_frame_and_unreadable_image(small):
    root, cfg = small()
    folder = root / "SAMM/006/006_1_3"
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    gone = root / "SAMM/006/006_1_4/006_02330.jpg"
    gone.unlink()
    bad = root / "SAMM/006/006_2_4/006_00200.jpg"
    bad.unlink()
    bad.write_bytes(b"\xff\xd8 not a picture \xff\xd9")
    msg = error_of(ingest, "samm", cfg)
    assert "3 problem(s) in 3 clip(s)" in msg
    assert f"006_1_3: {folder}: clip folder not found" in msg
    assert f"006_1_4: {gone}: 1 of 80 onset..offset frames missing: 006_02330.jpg" in msg
    assert f"006_2_4: {bad}: frame cannot be decoded as an image" in msg


def test_renamed_column_and_unknown_cells(small, tmp_path):
    root, cfg = small({("006_1_2", "Estimated Emotion"): "Joy",
                       ("006_1_3", "Action Units"): "4+blink"})
    msg = error_of(ingest, "samm", cfg)
    assert "006_1_2: samm_test.xlsx row 15: unknown emotion 'Joy'" in msg
    assert "006_1_3: samm_test.xlsx row 16: action unit 'blink' of '4+blink'" in msg

    wb = openpyxl.load_workbook(root / "samm_test.xlsx")
    wb.worksheets[0].cell(14, 5).value = "Apex"
    wb.save(root / "renamed.xlsx")
    msg = error_of(ingest, "samm", cfg_for(root, "renamed.xlsx"))
    assert "renamed.xlsx: the coding sheet lacks columns ['Apex Frame']" in msg

    wb.worksheets[0].cell(14, 1).value = "Participant"
    wb.save(root / "noheader.xlsx")
    assert "no header row with the columns ['Subject', 'Filename']" in error_of(
        ingest, "samm", cfg_for(root, "noheader.xlsx"))


def test_config_and_layout_errors(tmp_path):
    msg = error_of(ingest, "samm", cfg_for(tmp_path / "none", "x.xlsx"))
    assert "corpus folder not found" in msg and "ln -s /path/to/SAMM" in msg
    msg = error_of(ingest, "samm", cfg_for(tmp_path, "x.xlsx"))
    assert "frame folder 'SAMM' not found" in msg
    (tmp_path / "SAMM").mkdir()
    assert "coding sheet not found" in error_of(ingest, "samm", cfg_for(tmp_path, "x.xlsx"))
    assert "is not a file name with {n}" in error_of(
        make_adapter, "samm", cfg_for(tmp_path, "x.xlsx", frame_template="{subject}.jpg"))


def test_au_parser():
    assert parse_samm_aus("R14A or 17A or 24A") == ["R14", "17", "24"]
    assert parse_samm_aus("4D+ref(6)+7C+43E") == ["4", "6", "7", "43"]
    assert parse_samm_aus("T18+39") == ["18", "39"] and parse_samm_aus("A1B+A2C") == ["1", "2"]
    assert parse_samm_aus("4+4B") == ["4"] and parse_samm_aus("") == []
    with pytest.raises(ValueError, match="'X7'"):
        parse_samm_aus("4+X7")
    with pytest.raises(ValueError, match="empty action unit"):
        parse_samm_aus("4++7")
