"""MEGC2019 composite: the official list over SMIC-HS, CASME II and SAMM read by their adapters.

One fake composite folder is generated around the REAL list and REAL member sheets (fixtures):
``casme2/`` (CASME II sheet + CASME2_RAW_selected), ``samm/`` (SAMM sheet + SAMM/), ``smic/``
(HS clip folders from the real SMIC-HS list).  Only the listed clips get frames, so a derivation
from the sheets (which would need unlisted clips) could not even pass validation.  Trees are
built with openpyxl/pandas here, independently of the adapters.
"""

from __future__ import annotations

import collections
import csv
import os
import shutil
from pathlib import Path

import openpyxl
import pytest
from conftest import FIXTURES
from test_data_smic import build_clips_tree, hs_clip_list, tiny_image

from mer.data.adapters import make_adapter
from mer.data.ingest import describe, ingest
from mer.data.manifest import read_manifest, write_manifest
from mer.errors import MerError

ANN = FIXTURES / "annotations"
LIST = ANN / "MEGC2019_combined_3class_gt.csv"
CASME2 = ANN / "CASME2-coding-20140508.xlsx"
SAMM = ANN / "SAMM_Micro_FACS_Codes_v2.xlsx"
NEEDED = (LIST, CASME2, SAMM, ANN / "smic_apex.xlsx", ANN / "SMIC-HS-E_annotation.xlsx")

pytestmark = pytest.mark.skipif(not all(p.is_file() for p in NEEDED),
                                reason=f"real MEGC2019/member sheet fixtures absent under {ANN}")

MEMBERS = {"smic": {"adapter": "smic", "root": "smic"},
           "casme2": {"adapter": "casme2", "root": "casme2"},
           "samm": {"adapter": "samm", "root": "samm"}}


def official() -> list[list[str]]:
    with LIST.open(newline="") as f:
        return [row for row in csv.reader(f) if row]


def sheet_table(path: Path, first: str = "Subject") -> list[dict]:
    """Rows under the first row whose first cell is ``first`` (SAMM has a 13-row preamble)."""
    rows = iter(openpyxl.load_workbook(path, read_only=True).worksheets[0].iter_rows(
        values_only=True))
    for row in rows:
        if row and row[0] == first:
            header = [str(c).strip() if c is not None else "" for c in row]
            break
    return [dict(zip(header, r)) for r in rows if r and r[0] is not None]


def link_frames(master: Path, folder: Path, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        os.link(master, folder / name)


def build_composite(root: Path) -> Path:
    """The composite folder with only the listed clips' onset..offset frames."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(LIST, root / LIST.name)
    listed = {(r[0], r[1], r[2]) for r in official()}
    master = root / "frame.jpg"
    master.write_bytes(tiny_image(".jpg"))

    (root / "casme2").mkdir()
    shutil.copyfile(CASME2, root / "casme2" / CASME2.name)
    for r in sheet_table(CASME2):
        if ("casme2", f"sub{r['Subject']}", r["Filename"]) in listed:
            link_frames(master, root / "casme2/CASME2_RAW_selected" / f"sub{r['Subject']}" /
                        r["Filename"], (f"img{n}.jpg" for n in range(int(r["OnsetFrame"]),
                                                                     int(r["OffsetFrame"]) + 1)))
    (root / "samm").mkdir()
    shutil.copyfile(SAMM, root / "samm" / SAMM.name)
    for r in sheet_table(SAMM):
        subject = str(r["Subject"])
        if ("samm", str(int(subject)), r["Filename"]) in listed:
            link_frames(master, root / "samm/SAMM" / subject / r["Filename"],
                        (f"{subject}_{n:05d}.jpg" for n in range(int(r["Onset Frame"]),
                                                                 int(r["Offset Frame"]) + 1)))
    build_clips_tree(root / "smic", hs_clip_list())
    return root


def cfg_for(root: Path, **extra) -> dict:
    return {"adapter": "megc2019", "root": str(root), "members": MEMBERS, **extra}


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(MerError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.fixture(scope="module")
def composite(tmp_path_factory):
    root = build_composite(tmp_path_factory.mktemp("megc2019"))
    return root, ingest("megc2019", cfg_for(root), 1, "midpoint")


def test_official_counts(composite):
    root, clips = composite
    assert len(clips) == 442
    per = collections.Counter(c.corpus for c in clips)
    assert per == {"smic": 164, "casme2": 145, "samm": 133}
    subjects = collections.defaultdict(set)
    for c in clips:
        subjects[c.corpus].add(c.subject)
    assert {k: len(v) for k, v in subjects.items()} == {"smic": 16, "casme2": 24, "samm": 28}
    assert len({f"{c.corpus}/{c.subject}" for c in clips}) == 68  # the LOSO folds
    assert collections.Counter(c.labels["megc2019_3class"] for c in clips) == {
        "negative": 250, "positive": 109, "surprise": 83}
    assert all(set(c.labels) == {"megc2019_3class"} for c in clips)
    assert "442 clips, 68 subjects" in describe(clips)
    # list order is kept, ids are unique and carry the corpus
    assert [c.clip_id for c in clips[:2]] == ["casme2_sub01_EP02_01f", "casme2_sub01_EP19_05f"]
    assert len({c.clip_id for c in clips}) == 442


def test_member_conventions_survive(composite):
    root, clips = composite
    by_id = {c.clip_id: c for c in clips}
    c = by_id["smic_s1_ne_01"]  # the list says s01 / s01_ne_01
    assert (c.subject, c.clip, c.fps, c.apex_source) == ("s1", "s1_ne_01", 100.0, "midpoint")
    assert c.frame_dir == "smic/HS/s1/micro/negative/s1_ne_01"
    c = by_id["casme2_sub01_EP02_01f"]
    assert (c.subject, c.apex, c.fps, c.emotion) == ("01", 59, 200.0, "happiness")
    assert c.frame_dir == "casme2/CASME2_RAW_selected/sub01/EP02_01f"
    c = by_id["samm_006_1_2"]  # the list says subject 6
    assert (c.subject, c.onset, c.apex, c.labels["megc2019_3class"]) == ("006", 5562, 5588,
                                                                         "negative")
    assert c.frame_paths(root)[0] == root / "samm/SAMM/006/006_1_2/006_05562.jpg"
    assert all(c.frame_paths(root)[-1].is_file() for c in clips)
    # member fix tables still apply: the two SAMM clips whose apex lies outside onset..offset
    # (CASME II's fixed clip, sub04 EP12_01f, is not in the list)
    fixed = {c.clip_id: c.fixes for c in clips if c.fixes}
    assert fixed == {"samm_028_4_1": ["samm-001"], "samm_032_3_1": ["samm-002"]}
    assert "casme2_sub04_EP12_01f" not in by_id


def test_manifest_round_trip(composite, tmp_path):
    _, clips = composite
    back = read_manifest(write_manifest(clips, tmp_path / "manifest.csv"))
    assert back == clips
    assert not any(Path(c.frame_dir).is_absolute() for c in back)


def test_broken_members_are_reported_together(tmp_path):
    root = build_composite(tmp_path / "megc")
    shutil.rmtree(root / "smic/HS/s3/micro/negative/s3_ne_05")
    gone = root / "casme2/CASME2_RAW_selected/sub01/EP02_01f/img50.jpg"
    gone.unlink()
    msg = error_of(ingest, "megc2019", cfg_for(root), 1, "midpoint")
    assert "2 member(s) of dataset 'megc2019' have problems" in msg
    assert "member 'smic'" in msg and "member 'casme2'" in msg
    assert ("s3_ne_05: MEGC2019_combined_3class_gt.csv:" in msg
            and "listed, but s3 s3_ne_05 is not in the annotations of smic" in msg)
    assert f"sub01_EP02_01f: {gone}: 1 of 41 onset..offset frames missing: img50.jpg" in msg


def test_list_and_config_errors(tmp_path):
    root = tmp_path / "megc"
    root.mkdir()
    msg = error_of(ingest, "megc2019", cfg_for(root), 1, "midpoint")
    assert "composite list not found" in msg
    (root / LIST.name).write_text("dataset,subject,clip,label\n")
    assert "label 'label' is not 0, 1 or 2" in error_of(ingest, "megc2019", cfg_for(root), 1,
                                                         "midpoint")
    (root / LIST.name).write_text("casme2,sub01,EP02_01f,1\ncasme,sub01,EP02_01f,1\n")
    msg = error_of(ingest, "megc2019", cfg_for(root), 1, "midpoint")
    assert "MEGC2019_combined_3class_gt.csv:2" in msg and "corpus 'casme' has no member" in msg
    (root / LIST.name).write_text("casme2,sub01,EP02_01f,1\ncasme2,sub01,EP02_01f,0\n")
    assert "listed twice" in error_of(ingest, "megc2019", cfg_for(root), 1, "midpoint")

    bad = {**MEMBERS, "samm": {"adapter": "samm", "root": "/abs/SAMM"}}
    assert "must be a folder inside" in error_of(make_adapter, "megc2019", cfg_for(root, members=bad))
    bad = {**MEMBERS, "samm": {"adapter": "samm", "root": "samm", "sheeet": "x"}}
    msg = error_of(make_adapter, "megc2019", cfg_for(root, members=bad))
    assert "params data.megc2019.members.samm" in msg and "unknown key 'sheeet'" in msg
    assert "no frame rate of its own" in error_of(make_adapter, "megc2019", cfg_for(root, fps=30))
    a = make_adapter("megc2019", cfg_for(root))
    assert a.frame_dir("smic/s1", "s1_ne_01") == "smic/HS/s1/micro/negative/s1_ne_01"
    assert a.clip_id("casme2/01", "EP02_01f") == "casme2_sub01_EP02_01f"
