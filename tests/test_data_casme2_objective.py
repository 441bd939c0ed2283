"""CASME II objective classes (I..VII, the MEGC2018 convention) from the objective-class sheet
and from the 2019 revision's own 'Objective Classes' column.

Trees are fake CASME II folders built around the REAL coding sheet by the builder of
tests/test_data_casme2.py; the expected classes are read from the REAL objective-class sheet with
openpyxl, independently of the adapter.
"""

from __future__ import annotations

import collections
import logging
from pathlib import Path

import openpyxl
import pytest

from mer.data.adapters import make_adapter
from mer.data.ingest import describe, ingest
from mer.data.manifest import read_manifest, write_manifest
from mer.data.schemes import get_scheme
from mer.errors import MerError

from conftest import FIXTURES
from test_data_casme2 import SHEET, build_tree, cfg_for, error_of, write_sheet

OBJECTIVE = FIXTURES / "annotations" / "CASME2-ObjectiveClasses.xlsx"
ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII"]
EMOTION_SCHEMES = {"casme2_5class", "casme2_3class", "casme2_all"}
OBJECTIVE_SCHEMES = {"casme2_objective", "casme2_objective_all"}

pytestmark = pytest.mark.skipif(not (SHEET.is_file() and OBJECTIVE.is_file()),
                                reason=f"real CASME II sheet fixtures absent: {SHEET}, {OBJECTIVE}")


def objective_rows() -> dict[tuple[str, str], int]:
    """(subject, clip) -> class 1..7 of the objective sheet's FIRST worksheet (openpyxl)."""
    ws = openpyxl.load_workbook(OBJECTIVE, read_only=True).worksheets[0]
    rows = ws.iter_rows(values_only=True)
    assert list(next(rows))[:3] == ["Subject", "Filename", "Objective Class"]
    return {(str(s), str(c)): int(k) for s, c, k, *_ in rows if s is not None}


def sheet_2019(dst: Path, cell=lambda k: k, drop: tuple[str, str] | None = None) -> Path:
    """The real 2014 sheet plus an 'Objective Classes' column (the 2019 revision's layout),
    filled from the objective sheet through ``cell``; ``drop``'s cell is left empty."""
    classes = objective_rows()
    wb = openpyxl.load_workbook(SHEET)
    ws = wb.worksheets[0]
    col = ws.max_column + 1
    ws.cell(1, col).value = "Objective Classes"
    for r in range(2, ws.max_row + 1):
        key = (ws.cell(r, 1).value, ws.cell(r, 2).value)
        if key[0] is not None and key != drop:
            ws.cell(r, col).value = cell(classes[key])
    wb.save(dst)
    return dst


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return build_tree(tmp_path_factory.mktemp("casme2_objective"), SHEET)


@pytest.fixture(scope="module")
def from_sheet(tree):
    """The whole 2014 sheet with the objective-class sheet (absolute path: the fixture)."""
    cfg = cfg_for(tree, SHEET.resolve(), objective_classes=str(OBJECTIVE.resolve()))
    return ingest("casme2", cfg, workers=1)


def test_objective_counts_on_the_real_sheet(from_sheet):
    clips = from_sheet
    assert len(clips) == 255
    assert set(clips[0].labels) == EMOTION_SCHEMES | OBJECTIVE_SCHEMES
    every = collections.Counter(c.labels["casme2_objective_all"] for c in clips)
    assert every == {"I": 25, "II": 15, "III": 99, "IV": 26, "V": 20, "VI": 1, "VII": 69}
    # MEGC2018: classes I..V, VI and VII dropped -> 185 clips
    five = collections.Counter(c.labels["casme2_objective"] for c in clips)
    assert five.pop("") == 1 + 69
    assert five == {"I": 25, "II": 15, "III": 99, "IV": 26, "V": 20}
    assert sum(five.values()) == 185
    assert get_scheme("casme2_objective").classes == ("I", "II", "III", "IV", "V")

    # clip by clip as the sheet says (its Sheet2 of stray rows plays no part)
    expected = objective_rows()
    assert len(expected) == 255
    for c in clips:
        assert c.labels["casme2_objective_all"] == ROMAN[expected[(c.subject, c.clip)] - 1]
    # the emotion schemes are untouched by the objective classes
    by_id = {c.clip_id: c for c in clips}
    c = by_id["sub01_EP02_01f"]
    assert (c.emotion, c.labels["casme2_5class"], c.labels["casme2_objective"]) == (
        "happiness", "happiness", "I")
    assert by_id["sub01_EP03_02"].labels["casme2_objective"] == ""  # class VII
    assert "casme2_objective: 185 clips (III 99" in describe(clips)


def test_objective_labels_survive_the_manifest(from_sheet, tmp_path):
    back = read_manifest(write_manifest(from_sheet, tmp_path / "manifest.csv"))
    assert back == from_sheet
    header = (tmp_path / "manifest.csv").read_text().splitlines()[0].split(",")
    assert {"label_casme2_objective", "label_casme2_objective_all"} <= set(header)


def test_the_2019_sheet_gives_the_same_scheme(tree, from_sheet, tmp_path):
    sheet = sheet_2019(tmp_path / "CASME2-coding-2019.xlsx",
                       cell=lambda k: ROMAN[k - 1] if k % 2 else k)  # 'I', 2, 'III', ...
    cfg = cfg_for(tree, sheet)
    adapter = make_adapter("casme2", cfg)
    rows = adapter.annotations()
    assert adapter.revision == "2019"
    assert rows[0].extra_labels == (("casme2_objective", "I"),)
    clips = ingest("casme2", cfg, workers=1)
    assert [c.labels for c in clips] == [c.labels for c in from_sheet]
    assert clips == from_sheet


def test_a_clip_missing_from_the_objective_sheet(tmp_path):
    coding = write_sheet(tmp_path / "coding.xlsx", {"01", "04"})
    build_tree(tmp_path, coding)
    wb = openpyxl.load_workbook(OBJECTIVE)
    ws = wb.worksheets[0]
    assert (ws.cell(3, 1).value, ws.cell(3, 2).value) == ("01", "EP03_02")
    ws.delete_rows(3)
    wb.save(tmp_path / "objective.xlsx")
    cfg = cfg_for(tmp_path, coding.name, objective_classes="objective.xlsx")
    msg = error_of(ingest, "casme2", cfg)
    assert f"{tmp_path / 'objective.xlsx'}: 1 clip(s) of the coding sheet have no objective " \
           "class: sub01 EP03_02 (coding.xlsx row 3)" in msg
    assert "objective_classes: null" in msg


def test_objective_sheet_errors(tmp_path):
    coding = write_sheet(tmp_path / "coding.xlsx", {"01"})
    build_tree(tmp_path, coding)
    cfg = cfg_for(tmp_path, coding.name, objective_classes="nowhere.xlsx")
    msg = error_of(ingest, "casme2", cfg)
    assert "coding sheet not found" in msg and "objective_classes" in msg

    wb = openpyxl.load_workbook(OBJECTIVE)
    wb.worksheets[0].cell(1, 3).value = "Class"
    wb.save(tmp_path / "renamed.xlsx")
    msg = error_of(ingest, "casme2", {**cfg, "objective_classes": "renamed.xlsx"})
    assert "the objective-class sheet lacks columns ['Objective Class']" in msg

    assert "'objective_classes' must be str or NoneType" in error_of(
        ingest, "casme2", {**cfg, "objective_classes": 3})


def test_bad_cells_of_the_2019_column(tree, tmp_path):
    sheet = sheet_2019(tmp_path / "bad.xlsx", cell=lambda k: 8 if k == 6 else k,
                       drop=("01", "EP02_01f"))
    msg = error_of(ingest, "casme2", cfg_for(tree, sheet))
    assert "2 problem(s) in 2 clip(s)" in msg
    assert "sub01_EP02_01f: bad.xlsx row 2: no casme2_objective annotation" in msg
    assert "unknown casme2_objective value '8'" in msg  # the single class-VI clip


def test_explicit_objective_sheet_wins_over_the_2019_column(tree, tmp_path, caplog):
    sheet = sheet_2019(tmp_path / "coding-2019.xlsx", cell=lambda k: 1)  # every clip 'I'
    cfg = cfg_for(tree, sheet, objective_classes=str(OBJECTIVE.resolve()))
    with caplog.at_level(logging.WARNING, logger="mer.data.casme2"):
        rows = make_adapter("casme2", cfg).annotations()
    assert "has its own 'Objective Classes' column" in caplog.text
    got = collections.Counter(dict(r.extra_labels)["casme2_objective"] for r in rows)
    assert got == {"3": 99, "7": 69, "4": 26, "1": 25, "5": 20, "2": 15, "6": 1}


def test_without_a_source_there_are_no_objective_labels(tmp_path):
    coding = write_sheet(tmp_path / "coding.xlsx", {"02"})
    build_tree(tmp_path, coding)
    clips = ingest("casme2", cfg_for(tmp_path, coding.name))
    assert len(clips) == 13 and set(clips[0].labels) == EMOTION_SCHEMES
    with pytest.raises(MerError, match="objective-class sheet"):
        make_adapter("casme2", cfg_for(tmp_path, OBJECTIVE.resolve())).annotations()
