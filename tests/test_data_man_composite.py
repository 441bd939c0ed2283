"""The Multiple Aggregation Networks merged corpus (CASME + CASME II + SMIC-HS in four classes).

One fake composite folder: ``casme2/`` is a tree generated around the REAL CASME II sheet,
``smic/`` the HS clip folders of the real SMIC-HS list, ``casme/`` the small synthetic sections of
tests/test_data_casme.py (no real CASME sheet exists here).  Expected class counts are computed
here from the sheets with openpyxl and the paper's grouping written out below, independently of
the adapters and of schemes.yaml.
"""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import pytest
from test_data_casme import SECTION_A, SECTION_B, write_section
from test_data_casme2 import SHEET as CASME2_SHEET
from test_data_casme2 import build_tree as build_casme2_tree
from test_data_casme2 import sheet_rows as casme2_rows
from test_data_smic import APEX_LIST, E_SHEET, build_clips_tree, hs_clip_list

from mer.data.adapters import make_adapter
from mer.data.datasets_cli import check_dataset
from mer.data.ingest import ingest
from mer.data.manifest import read_manifest, write_manifest
from mer.errors import MerError

pytestmark = pytest.mark.skipif(
    not all(p.is_file() for p in (CASME2_SHEET, APEX_LIST, E_SHEET)),
    reason="real CASME II / SMIC sheet fixtures absent")

# The paper's grouping, spelled out independently of schemes.yaml (lower-cased sheet emotions).
PAPER = {"happiness": "positive", "surprise": "surprise", "disgust": "negative",
         "fear": "negative", "sadness": "negative", "repression": "others", "tense": "others",
         "comtempt": "others", "contempt": "others", "others": "others"}
SMIC = {"ne": "negative", "po": "positive", "sur": "surprise"}


def build_merged(root: Path) -> tuple[Path, dict]:
    """The composite folder and its config (member roots relative to it)."""
    a = write_section(root / "casme", "CASME_A/Section A", SECTION_A)
    b = write_section(root / "casme", "CASME_B/Section B", SECTION_B)
    (root / "casme2").mkdir()
    shutil.copyfile(CASME2_SHEET, root / "casme2" / CASME2_SHEET.name)
    build_casme2_tree(root / "casme2", CASME2_SHEET)
    build_clips_tree(root / "smic", hs_clip_list())
    cfg = {"adapter": "man_composite", "root": str(root), "members": {
        "casme": {"adapter": "casme", "root": "casme",
                  "sections": [{"sheet": a, "frames": "CASME_A/Section A"},
                               {"sheet": b, "frames": "CASME_B/Section B"}]},
        "casme2": {"adapter": "casme2", "root": "casme2", "sheet": CASME2_SHEET.name},
        "smic": {"adapter": "smic", "root": "smic", "release": "clips", "modality": "HS"}}}
    return root, cfg


def expected_counts() -> dict[str, collections.Counter]:
    casme = collections.Counter(PAPER[r[-1].lower()] for r in SECTION_A + SECTION_B)
    casme2 = collections.Counter(PAPER[str(r["Estimated Emotion"]).strip().lower()]
                                 for r in casme2_rows(CASME2_SHEET))
    smic = collections.Counter(SMIC[clip.split("_")[1]] for _, clip, _, _ in hs_clip_list())
    return {"casme": casme, "casme2": casme2, "smic": smic}


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(MerError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    root, cfg = build_merged(tmp_path_factory.mktemp("man"))
    return root, cfg, ingest("man_merged", cfg, 1, "midpoint")


def test_counts_per_member_and_class(merged):
    _, _, clips = merged
    want = expected_counts()
    # CASME II (2014 sheet, 255 clips) and SMIC-HS (164) in the paper's four classes
    assert want["casme2"] == {"others": 126, "negative": 72, "positive": 32, "surprise": 25}
    assert want["smic"] == {"negative": 70, "positive": 51, "surprise": 43}
    got = collections.defaultdict(collections.Counter)
    for c in clips:
        got[c.corpus][c.labels["man_4class"]] += 1
    assert dict(got) == want
    assert len(clips) == 9 + 255 + 164
    assert all(set(c.labels) == {"man_4class"} for c in clips)
    subjects = {(c.corpus, c.subject) for c in clips}
    assert collections.Counter(k for k, _ in subjects) == {"casme": 4, "casme2": 26, "smic": 16}
    # the same subject name in CASME and CASME II stays two subjects (two folds)
    assert ("casme", "01") in subjects and ("casme2", "01") in subjects
    assert len({c.clip_id for c in clips}) == len(clips)


def test_member_conventions_survive(merged):
    root, _, clips = merged
    by_id = {c.clip_id: c for c in clips}
    c = by_id["casme_sub02_EP09"]  # 'comtempt' in the sheet
    assert (c.emotion, c.labels["man_4class"], c.fps) == ("contempt", "others", 60.0)
    assert c.frame_dir == "casme/CASME_A/Section A/sub02/EP09"
    c = by_id["casme2_sub01_EP02_01f"]
    assert (c.subject, c.apex, c.fps, c.emotion, c.labels["man_4class"]) == (
        "01", 59, 200.0, "happiness", "positive")
    assert c.frame_dir == "casme2/CASME2_RAW_selected/sub01/EP02_01f"
    assert by_id["casme2_sub04_EP12_01f"].fixes == ["casme2-001"]  # member fix table applies
    c = by_id["smic_s1_ne_01"]
    assert (c.apex_source, c.fps, c.labels["man_4class"]) == ("midpoint", 100.0, "negative")
    assert c.frame_dir == "smic/HS/s1/micro/negative/s1_ne_01"
    assert all(c.frame_paths(root)[-1].is_file() for c in clips)


def test_manifest_round_trip_and_summary(merged, tmp_path):
    _, cfg, clips = merged
    back = read_manifest(write_manifest(clips, tmp_path / "manifest.csv"))
    assert back == clips and not any(Path(c.frame_dir).is_absolute() for c in back)
    text = check_dataset("man_merged", {"data": {"man_merged": cfg},
                                        "ingest": {"apex_policy": "midpoint"}, "workers": 1})
    assert "428 clips, 46 subjects" in text
    assert "man_4class: 428 clips (negative 145, others 130, positive 84, surprise 69)" in text
    assert "  casme2: 255 clips, 26 subjects" in text
    assert "  smic: 164 clips, 16 subjects; apex: midpoint 164" in text


def test_broken_members_are_reported_together(tmp_path):
    root, cfg = build_merged(tmp_path / "man")
    gone = root / "casme/CASME_A/Section A/sub02/EP07_1/img35.jpg"
    gone.unlink()
    frames = sorted((root / "smic/HS/s3/micro/negative/s3_ne_05").iterdir())
    frames[3].unlink()  # break the hard link: only this frame is damaged
    frames[3].write_bytes(b"not an image")  # SMIC's folders are its annotation: damage a frame
    msg = error_of(ingest, "man_merged", cfg, 1, "midpoint")
    assert "2 member(s) of dataset 'man_merged' have problems" in msg
    assert "member 'casme'" in msg and "member 'smic'" in msg and "member 'casme2'" not in msg
    assert f"sub02_EP07_1: {gone}: 1 of 12 onset..offset frames missing: img35.jpg" in msg
    assert f"s3_ne_05: {frames[3]}" in msg and "1 problem(s) in 1 clip(s) of dataset 'smic'" in msg


def test_config_errors(tmp_path):
    members = {"casme2": {"adapter": "casme2", "root": "casme2"}}
    cfg = {"adapter": "man_composite", "root": str(tmp_path / "none"), "members": members}
    msg = error_of(ingest, "man_merged", cfg, 1, "midpoint")
    assert "composite folder not found" in msg and "ln -s /path/to/casme2" in msg
    bad = {"casme2": {"adapter": "casme2", "root": "/abs/CASME2"}}
    assert "must be a folder inside" in error_of(make_adapter, "m", {**cfg, "members": bad})
    bad = {"casme2": {"adapter": "casme2", "root": "casme2", "sheeet": "x"}}
    msg = error_of(make_adapter, "m", {**cfg, "members": bad})
    assert "params data.m.members.casme2" in msg and "unknown key 'sheeet'" in msg
    # SAMM's anger, CAS(ME)^3's anger: no class of the paper's grouping, so refused up front
    bad = {"samm": {"adapter": "samm", "root": "samm"}}
    msg = error_of(make_adapter, "m", {**cfg, "members": bad})
    assert "emotions ['anger'] of vocabulary 'samm' have no class in vocabulary 'man'" in msg
    bad = {"megc": {"adapter": "megc2019", "root": "megc", "members": {}}}
    assert "is itself a composite" in error_of(make_adapter, "m", {**cfg, "members": bad})
    assert "no frame rate of its own" in error_of(make_adapter, "m", {**cfg, "fps": 30})
    assert "at least one member" in error_of(make_adapter, "m", {**cfg, "members": {}})


def test_shipped_config_is_relative_and_complete():
    from conftest import ROOT

    from mer.data.datasets_cli import dataset_params

    params = dataset_params("man_merged", ROOT / "no-such-params.yaml", ROOT / "conf")
    cfg = params["data"]["man_merged"]
    assert cfg["root"] == "data/raw/man_merged" and params["ingest"]["apex_policy"] == "midpoint"
    assert set(cfg["members"]) == {"casme", "casme2", "smic"}
    assert all(not Path(m["root"]).is_absolute() for m in cfg["members"].values())
    assert params["eval"]["scheme"] == "man_4class"
    a = make_adapter("man_merged", cfg)  # every member config is valid for its adapter
    assert a.members["smic"].fps == 100.0 and a.members["casme"].fps == 60.0
