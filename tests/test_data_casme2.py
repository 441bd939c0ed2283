"""CASME II adapter, fix table, label schemes, validation and ingest.

Every tree here is a fake CASME II built around the REAL coding sheet (fixture): tiny generated
JPEG frames, only the onset..offset frames the sheet asks for.  The tree builder reads the sheet
with openpyxl on its own, so it does not share the adapter's reading code.
"""

from __future__ import annotations

import collections
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from mer.data.adapters import adapter_class, make_adapter
from mer.data.casme2 import Casme2
from mer.data.ingest import describe, ingest
from mer.data.manifest import read_manifest, write_manifest
from mer.data.schemes import get_scheme, get_vocabulary, label_schemes, load_schemes
from mer.errors import MerError

from conftest import FIXTURES

SHEET = FIXTURES / "annotations" / "CASME2-coding-20140508.xlsx"

pytestmark = pytest.mark.skipif(not SHEET.is_file(),
                                reason=f"real CASME II sheet fixture absent: {SHEET}")


# ------------------------------------------------------------------------------- tree builder
def sheet_rows(path: Path) -> list[dict]:
    """The sheet's rows as {header: cell value}, read with openpyxl (independently of mer)."""
    ws = openpyxl.load_workbook(path, read_only=True).worksheets[0]
    rows = ws.iter_rows(values_only=True)
    header = list(next(rows))
    return [dict(zip(header, r)) for r in rows if r[0] is not None]


def tiny_jpeg() -> bytes:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)  # (H, W, 3) uint8: scan > headers
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def build_tree(root: Path, sheet: Path, frames: str = "CASME2_RAW_selected",
               template: str = "img{n}.jpg") -> Path:
    """Frames onset..offset of every row of ``sheet`` under ``root/frames/sub<Subject>/<Filename>``.

    Frames are hard links of one tiny JPEG (fast); tests that damage a frame replace the link.
    """
    master = root / "frame.jpg"
    root.mkdir(parents=True, exist_ok=True)
    master.write_bytes(tiny_jpeg())
    for row in sheet_rows(sheet):
        folder = root / frames / f"sub{row['Subject']}" / str(row["Filename"])
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(int(row["OnsetFrame"]), int(row["OffsetFrame"]) + 1):
            os.link(master, folder / template.format(n=n))
    return root


def write_sheet(dst: Path, subjects: set[str] | None = None,
                edits: dict[tuple[str, str], dict[str, object]] | None = None) -> Path:
    """A copy of the real sheet keeping only ``subjects``' rows, with cells ``edits``-ed."""
    wb = openpyxl.load_workbook(SHEET)
    ws = wb.worksheets[0]
    col = {c.value: c.column for c in ws[1] if c.value}
    for r in range(ws.max_row, 1, -1):
        subject, clip = ws.cell(r, 1).value, ws.cell(r, 2).value
        if subject is None:
            continue
        if subjects is not None and subject not in subjects:
            ws.delete_rows(r)
            continue
        for header, value in (edits or {}).get((subject, clip), {}).items():
            ws.cell(r, col[header]).value = value
    dst.parent.mkdir(parents=True, exist_ok=True)
    wb.save(dst)
    return dst


def cfg_for(root: Path, sheet: str | Path, **extra) -> dict:
    return {"adapter": "casme2", "root": str(root), "sheet": str(sheet),
            "frames": "CASME2_RAW_selected", "frame_template": "img{n}.jpg", "fps": 200, **extra}


def replace_file(path: Path, data: bytes) -> None:
    path.unlink()  # break the hard link: the other frames keep the intact bytes
    path.write_bytes(data)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The whole real sheet as a tree, ingested once as dataset 'casme2' (annotated apexes)."""
    root = build_tree(tmp_path_factory.mktemp("casme2"), SHEET)
    clips = ingest("casme2", cfg_for(root, SHEET.resolve()), workers=1, apex_policy="annotated")
    return root, clips


@pytest.fixture
def small(tmp_path):
    """Subjects 01 and 04 (14 clips, including sub04 EP12_01f whose apex is '/')."""
    def make(edits=None, subjects=frozenset({"01", "04"})):
        sheet = write_sheet(tmp_path / "CASME2-coding-test.xlsx", set(subjects), edits)
        build_tree(tmp_path, sheet)
        return tmp_path, cfg_for(tmp_path, sheet.name)
    return make


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(MerError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------- the real sheet
def test_real_sheet_counts(full):
    _, clips = full
    assert len(clips) == 255
    subjects = sorted({c.subject for c in clips})
    assert subjects == [f"{i:02d}" for i in range(1, 27)]  # text, zero-padded, 26 subjects
    assert collections.Counter(c.emotion for c in clips) == {
        "others": 99, "disgust": 63, "happiness": 32, "repression": 27, "surprise": 25,
        "sadness": 7, "fear": 2}

    # 5-class: 246 = 255 - 7 sadness - 2 fear.  sub04 EP12_01f (disgust, apex '/') is KEPT: the
    # packaged fix casme2-001 gives it its middle frame; papers quoting 247 used another release.
    five = collections.Counter(c.labels["casme2_5class"] for c in clips)
    assert five.pop("") == 9
    assert five == {"others": 99, "disgust": 63, "happiness": 32, "repression": 27, "surprise": 25}
    assert sum(five.values()) == 246

    three = collections.Counter(c.labels["casme2_3class"] for c in clips)
    assert three.pop("") == 99 + 7 + 2
    assert three == {"negative": 63 + 27, "positive": 32, "surprise": 25}

    every = collections.Counter(c.labels["casme2_all"] for c in clips)
    assert "" not in every and sum(every.values()) == 255
    assert set(clips[0].labels) == {"casme2_5class", "casme2_3class", "casme2_all"}
    assert "255 clips, 26 subjects" in describe(clips)


def test_real_sheet_quirks(full):
    root, clips = full
    by_id = {c.clip_id: c for c in clips}
    assert len(by_id) == 255

    # '/' apex: fixed by the packaged table, recorded as a midpoint
    c = by_id["sub04_EP12_01f"]
    assert (c.onset, c.apex, c.offset, c.apex_source) == (261, 291, 321, "midpoint")
    assert c.fixes == ["casme2-001"] and c.apex_index == 30
    assert all(o.apex_source == "annotated" and o.fixes == [] for o in clips if o is not c)

    # frames, apex index, folder
    c = by_id["sub01_EP02_01f"]
    assert c.frame_dir == "CASME2_RAW_selected/sub01/EP02_01f"
    assert c.frames[0] == "img46.jpg" and c.frames[-1] == "img86.jpg" and len(c.frames) == 41
    assert c.frames[c.apex_index] == "img59.jpg"
    assert c.frame_paths(root)[0] == root / "CASME2_RAW_selected/sub01/EP02_01f/img46.jpg"
    assert (c.aus, c.aus_raw, c.emotion_raw, c.fps) == (["12"], "12", "happiness", 200.0)

    # mixed-type action units: int cells, L/R prefixes, '?'
    assert by_id["sub01_EP19_05f"].aus == ["4", "L10"]
    assert by_id["sub04_EP12_02f"].aus == ["4", "L9", "14"]
    assert by_id["sub06_EP15_02"].aus == ["R1", "R2"]
    q = by_id["sub05_EP05_03"]
    assert (q.aus, q.aus_raw) == ([], "?")

    # irregular filenames are kept verbatim and give safe, unique ids
    for cid in ("sub03_EP01_2", "sub03_EP08_1", "sub07_EP06_02_01", "sub09_EP09f"):
        assert cid in by_id
    assert all(c.clip_id.replace("_", "").isalnum() for c in clips)


def test_ingest_manifest_round_trip(full, tmp_path):
    _, clips = full
    path = write_manifest(clips, tmp_path / "manifest.csv")
    back = read_manifest(path)
    assert back == clips
    assert back[0].subject == "01" and isinstance(back[0].frames, list)


# ------------------------------------------------------------------------------ apex policy
def test_missing_apex_is_an_error_under_annotated(small):
    # as dataset 'synthme' the CASME II fix table does not apply: the '/' apex is unexplained
    root, cfg = small()
    msg = error_of(ingest, "synthme", cfg, 1, "annotated")
    assert "1 problem(s) in 1 clip(s)" in msg
    assert "sub04_EP12_01f: CASME2-coding-test.xlsx row 11: no apex annotated (ApexFrame '/')" in msg
    assert "apex_policy: midpoint" in msg


def test_midpoint_policy(small):
    root, cfg = small()
    clips = {c.clip_id: c for c in ingest("synthme", cfg, 1, "midpoint")}
    c = clips["sub04_EP12_01f"]
    assert (c.apex, c.apex_index, c.apex_source, c.fixes) == (291, 30, "midpoint", [])
    assert c.corpus == "synthme"
    # annotated apexes stay annotated under the midpoint policy
    assert clips["sub01_EP02_01f"].apex == 59 and clips["sub01_EP02_01f"].apex_source == "annotated"


def test_apex_outside_onset_offset(small):
    root, cfg = small({("01", "EP02_01f"): {"ApexFrame": 90}})
    msg = error_of(ingest, "casme2", cfg, 1, "midpoint")  # an invalid apex is never replaced
    assert "sub01_EP02_01f: CASME2-coding-test.xlsx row 2: apex 90 is outside onset..offset 46..86" in msg


# ------------------------------------------------------------------------------ frame checks
def test_missing_frame(small):
    root, cfg = small()
    gone = root / "CASME2_RAW_selected/sub01/EP03_02/img140.jpg"
    gone.unlink()
    msg = error_of(ingest, "casme2", cfg)
    assert f"sub01_EP03_02: {gone}: 1 of 31 onset..offset frames missing: img140.jpg" in msg


def test_missing_clip_folder(small):
    root, cfg = small()
    folder = root / "CASME2_RAW_selected/sub04/EP13_02f"
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    assert f"sub04_EP13_02f: {folder}: clip folder not found" in error_of(ingest, "casme2", cfg)


def test_truncated_frame(small):
    root, cfg = small()
    bad = root / "CASME2_RAW_selected/sub01/EP04_02/img30.jpg"
    data = bad.read_bytes()
    replace_file(bad, data[: len(data) * 2 // 3])
    assert cv2.imread(str(bad)) is not None  # cv2.imread alone accepts it (grey padding)
    msg = error_of(ingest, "casme2", cfg)
    assert f"sub01_EP04_02: {bad}: frame is truncated (the JPEG has no end-of-image marker)" in msg


def test_unreadable_and_odd_frames(small):
    root, cfg = small()
    garbage = root / "CASME2_RAW_selected/sub01/EP04_03/img40.jpg"
    replace_file(garbage, b"\xff\xd8 this is not image data \xff\xd9")
    empty = root / "CASME2_RAW_selected/sub01/EP04_04/img50.jpg"
    replace_file(empty, b"")
    other = root / "CASME2_RAW_selected/sub01/EP19_01/img60.jpg"
    replace_file(other, cv2.imencode(".jpg", np.zeros((64, 48, 3), np.uint8))[1].tobytes())
    msg = error_of(ingest, "casme2", cfg)
    assert "3 problem(s) in 3 clip(s)" in msg
    assert f"sub01_EP04_03: {garbage}: frame cannot be decoded as an image" in msg
    assert f"sub01_EP04_04: {empty}: frame is empty (0 bytes)" in msg
    assert f"sub01_EP19_01: {other}: frame has a different size from img26.jpg" in msg


# ------------------------------------------------------------------------ sheet checks, fixes
def test_unknown_emotion_and_bad_au(small):
    root, cfg = small({("01", "EP03_02"): {"Estimated Emotion": "joy"},
                       ("01", "EP04_02"): {"Action Units": "4+X7"}})
    msg = error_of(ingest, "casme2", cfg)
    assert "sub01_EP03_02: CASME2-coding-test.xlsx row 3: unknown emotion 'joy'" in msg
    assert "sub01_EP04_02: CASME2-coding-test.xlsx row 4: action unit 'X7' of '4+X7'" in msg


def test_every_problem_in_one_error(small):
    root, cfg = small({("01", "EP03_02"): {"Estimated Emotion": "joy"},
                       ("04", "EP13_06f"): {"ApexFrame": 5}})
    (root / "CASME2_RAW_selected/sub01/EP19_06f/img36.jpg").unlink()
    msg = error_of(ingest, "synthme", cfg, 1, "annotated")
    assert "4 problem(s) in 4 clip(s)" in msg
    lines = [ln for ln in msg.splitlines() if ln.startswith("  - ")]
    assert [ln.split(":")[0][4:] for ln in lines] == [  # sheet order
        "sub01_EP03_02", "sub01_EP19_06f", "sub04_EP12_01f", "sub04_EP13_06f"]


def test_fix_rows_are_applied_and_recorded(small, tmp_path):
    root, cfg = small({("01", "EP03_02"): {"Estimated Emotion": "joy"},
                       ("01", "EP04_02"): {"ApexFrame": 99}})
    table = tmp_path / "local_fixes.csv"
    table.write_text(
        "id,corpus,subject,clip,field,old,new,source,reason\n"
        "loc-1,casme2,01,EP03_02,emotion,joy,others,test sheet,typo in the copy\n"
        "loc-2,casme2,01,EP04_02,apex,99,54,original sheet,apex beyond offset in the copy\n"
        "loc-3,samm,006,006_1_2,apex,1,2,elsewhere,another corpus: never applied here\n")
    clips = {c.clip_id: c for c in ingest("casme2", {**cfg, "extra_fixes": [str(table)]})}
    c = clips["sub01_EP03_02"]
    assert (c.emotion_raw, c.emotion, c.labels["casme2_5class"], c.fixes) == (
        "joy", "others", "others", ["loc-1"])
    c = clips["sub01_EP04_02"]
    assert (c.apex, c.apex_index, c.apex_source, c.fixes) == (54, 33, "annotated", ["loc-2"])
    assert clips["sub04_EP12_01f"].fixes == ["casme2-001"]
    assert sum(bool(c.fixes) for c in clips.values()) == 3


def test_stale_fix_is_not_applied(small, tmp_path, caplog):
    root, cfg = small()
    table = tmp_path / "stale.csv"
    table.write_text("id,corpus,subject,clip,field,old,new,source,reason\n"
                     "old-1,casme2,01,EP02_01f,apex,60,70,an old release,no longer needed\n")
    with caplog.at_level(logging.WARNING, logger="mer.data.fixes"):
        clips = ingest("casme2", {**cfg, "extra_fixes": [str(table)]})
    assert clips[0].apex == 59 and clips[0].fixes == []
    assert "fix old-1" in caplog.text and "expects '60'" in caplog.text


@pytest.mark.parametrize("row, expected", [
    ("x-1,casme2,01,EP02_01f,apex,59,60,,no source", "every fix needs a source and a reason"),
    ("x-1,casme2,01,EP02_01f,subject,01,02,s,r", "field 'subject' is not one of"),
    ("x-1,casme2,01,EP02_01f,apex,59,late,s,r", "new apex 'late' is neither a frame number"),
    ("casme2-001,casme2,01,EP02_01f,apex,59,60,s,r", "fix id 'casme2-001' also used at"),
])
def test_malformed_fix_table(small, tmp_path, row, expected):
    root, cfg = small()
    table = tmp_path / "bad.csv"
    table.write_text("id,corpus,subject,clip,field,old,new,source,reason\n" + row + "\n")
    msg = error_of(ingest, "casme2", {**cfg, "extra_fixes": [str(table)]})
    assert expected in msg and "bad.csv:2" in msg


# ------------------------------------------------------------------------ config and layout
def test_config_errors(small, tmp_path):
    root, cfg = small()
    assert "unknown key 'sheeet'" in error_of(ingest, "casme2", {**cfg, "sheeet": "x"})
    assert "did you mean 'sheet'" in error_of(ingest, "casme2", {**cfg, "sheeet": "x"})
    assert "unknown corpus adapter 'casme9'" in error_of(ingest, "casme2", {**cfg, "adapter": "casme9"})
    assert "'fps' must be float" in error_of(ingest, "casme2", {**cfg, "fps": "fast"})
    assert "unknown apex policy 'spot'" in error_of(ingest, "casme2", cfg, 1, "spot")
    assert "is not a file name with {n}" in error_of(ingest, "casme2", {**cfg, "frame_template": "img.jpg"})
    msg = error_of(ingest, "casme2", {**cfg, "root": str(tmp_path / "nowhere")})
    assert "corpus folder not found" in msg and "ln -s" in msg
    msg = error_of(ingest, "casme2", {**cfg, "frames": "Cropped"})
    assert "frame folder 'Cropped' not found" in msg and "CASME2_RAW_selected" in msg
    msg = error_of(ingest, "casme2", {**cfg, "sheet": "missing.xlsx"})
    assert "coding sheet not found" in msg and "CASME2-coding-test.xlsx" in msg


def test_renamed_column(tmp_path):
    sheet = tmp_path / "renamed.xlsx"
    wb = openpyxl.load_workbook(SHEET)
    wb.worksheets[0].cell(1, 9).value = "Emotion"
    wb.save(sheet)
    (tmp_path / "CASME2_RAW_selected").mkdir()
    msg = error_of(ingest, "casme2", cfg_for(tmp_path, sheet.name))
    assert f"{sheet}: the coding sheet lacks columns ['Estimated Emotion']" in msg


def test_cropped_layout_and_workers(tmp_path):
    sheet = write_sheet(tmp_path / "sheet.xlsx", {"02", "03"})
    build_tree(tmp_path, sheet, frames="Cropped", template="reg_img{n}.jpg")
    cfg = {**cfg_for(tmp_path, "sheet.xlsx"), "frames": "Cropped", "frame_template": "reg_img{n}.jpg"}
    one = ingest("casme2_cropped", {**cfg, "corpus": "casme2"}, workers=1)
    two = ingest("casme2_cropped", {**cfg, "corpus": "casme2"}, workers=2)
    assert one == two and len(one) == 13 + 7
    assert one[0].frame_dir == "Cropped/sub02/EP01_11f" and one[0].frames[0] == "reg_img46.jpg"
    assert one[0].corpus == "casme2"


# ------------------------------------------------------------------ adapter parts and schemes
def test_au_parser_and_registry():
    a = make_adapter("casme2", {"adapter": "casme2", "root": "x"})
    assert a.parse_aus("4+L10") == ["4", "L10"]
    assert a.parse_aus(" l2 + 12 ") == ["L2", "12"]
    assert a.parse_aus("?") == [] and a.parse_aus("") == []
    with pytest.raises(ValueError, match="'4 or 5'"):
        a.parse_aus("4 or 5")
    assert adapter_class("casme2") is Casme2
    assert (a.fps, a.corpus, a.frame_name("01", "EP02_01f", 7)) == (200.0, "casme2", "img7.jpg")


def test_schemes_are_consistent():
    schemes = label_schemes()
    assert {"casme2_5class", "casme2_3class", "casme2_all"} <= set(schemes)
    five = get_scheme("casme2_5class")
    assert five.classes == ("happiness", "surprise", "disgust", "repression", "others")
    assert five.label("fear") == "" and five.label("repression") == "repression"
    assert get_scheme("casme2_3class").classes == ("negative", "positive", "surprise")
    assert get_scheme("casme2_3class").label("repression") == "negative"
    vocab = get_vocabulary("casme2")
    assert vocab.normalise(" Others ") == "others" and vocab.normalise("other") == "others"
    assert vocab.normalise("HAPPINESS") == "happiness" and vocab.normalise("joy") is None
    assert "unknown label scheme 'casme2_7class'" in error_of(get_scheme, "casme2_7class")


def test_scheme_file_must_map_every_emotion(tmp_path):
    bad = tmp_path / "schemes.yaml"
    bad.write_text("vocabularies:\n  v: {emotions: [a, b, c]}\n"
                   "schemes:\n  s: {vocabulary: v, classes: [x], map: {a: x, b: null}}\n")
    msg = error_of(load_schemes, bad)
    assert "schemes.s" in msg and "missing ['c']" in msg
    bad.write_text("vocabularies:\n  v: {emotions: [a, b]}\n"
                   "schemes:\n  s: {vocabulary: v, classes: [x, y], map: {a: x, b: null}}\n")
    assert "must list each mapped class ['x'] exactly once" in error_of(load_schemes, bad)
