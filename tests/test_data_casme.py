"""CASME (first release) adapter on small synthetic section sheets (no real sheet is available).

The sheets follow the release's documented format (see mer/data/casme.py): numeric subjects, one
sheet per section, loosely named columns, eight emotions including the 'comtempt' spelling.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mer.data.adapters import make_adapter
from mer.data.casme import Casme, parse_casme_aus
from mer.data.ingest import ingest
from mer.errors import MerError

# (Subject, Filename, onset, apex, offset, AUs, emotion)
SECTION_A = [
    (1, "EP01_5", 10, 14, 20, "4+L10", "disgust"),
    (1, "EP03_2", 5, 9, 12, "1+2", "surprise"),
    (2, "EP07_1", 30, 33, 41, "14", "Tense"),
    (2, "EP09", 3, 6, 9, "R12", "comtempt"),
    (2, "EP10_2", 1, 2, 6, "?", "repression"),
]
SECTION_B = [
    (8, "EP02_1", 40, 44, 52, "12", "happiness"),
    (8, "EP05_3", 7, 11, 13, "1", "sadness"),
    (12, "EP08_2", 20, 24, 30, "1+2+4", "fear"),
    (12, "EP11", 2, 4, 8, "15+17", "repression"),
]


def tiny_jpeg() -> bytes:
    rng = np.random.default_rng(3)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def write_section(root: Path, folder: str, rows, columns=None, template="img{n}.jpg") -> str:
    """Sheet ``<folder>/<name>.xlsx`` with ``rows`` and their frames; returns the sheet path."""
    columns = columns or ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
                          "Duration", "Action Units", "Emotion"]
    base = root / folder
    base.mkdir(parents=True, exist_ok=True)
    data = [(s, f, on, ap, off, off - on + 1, au, emo) for s, f, on, ap, off, au, emo in rows]
    sheet = base / "coding.xlsx"
    pd.DataFrame(data, columns=columns).to_excel(sheet, index=False)
    master = root / "frame.jpg"
    if not master.exists():
        master.write_bytes(tiny_jpeg())
    for s, f, on, _, off, _, _ in rows:
        clip = base / f"sub{s:02d}" / f
        clip.mkdir(parents=True, exist_ok=True)
        for n in range(on, off + 1):
            os.link(master, clip / template.format(n=n, clip=f))
    return str(sheet.relative_to(root))


@pytest.fixture
def tree(tmp_path):
    a = write_section(tmp_path, "CASME_A/Section A", SECTION_A)
    b = write_section(tmp_path, "CASME_B/Section B", SECTION_B,
                      columns=["subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame",
                               "Duration", "AU", "Estimated Emotion"],
                      template="{clip}-{n}.jpg")
    cfg = {"adapter": "casme", "root": str(tmp_path),
           "sections": [{"sheet": a, "frames": "CASME_A/Section A"},
                        {"sheet": b, "frames": "CASME_B/Section B",
                         "frame_template": "{clip}-{n}.jpg"}]}
    return tmp_path, cfg


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(MerError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_sections_counts_and_schemes(tree):
    _, cfg = tree
    clips = ingest("casme", cfg)
    assert len(clips) == 9 and [c.subject for c in clips[:3]] == ["01", "01", "02"]
    assert len({c.subject for c in clips}) == 4
    assert collections.Counter(c.emotion for c in clips) == {
        "repression": 2, "disgust": 1, "surprise": 1, "tense": 1, "contempt": 1, "happiness": 1,
        "sadness": 1, "fear": 1}
    four = collections.Counter(c.labels["casme_4class"] for c in clips)
    assert four == {"negative": 3, "others": 4, "positive": 1, "surprise": 1}
    assert all(c.labels["casme_all"] == c.emotion for c in clips)
    assert {c.corpus for c in clips} == {"casme"} and {c.fps for c in clips} == {60.0}


def test_layout_per_section(tree):
    root, cfg = tree
    by_id = {c.clip_id: c for c in ingest("casme", cfg)}
    c = by_id["sub01_EP01_5"]
    assert c.frame_dir == "CASME_A/Section A/sub01/EP01_5"
    assert c.frames[0] == "img10.jpg" and c.frames[c.apex_index] == "img14.jpg"
    assert (c.aus, c.emotion_raw) == (["4", "L10"], "disgust")
    c = by_id["sub12_EP08_2"]
    assert c.frame_dir == "CASME_B/Section B/sub12/EP08_2" and c.frames[0] == "EP08_2-20.jpg"
    assert c.frame_paths(root)[-1].is_file()
    assert by_id["sub02_EP10_2"].aus == [] and by_id["sub02_EP09"].emotion == "contempt"


def test_errors(tree):
    root, cfg = tree
    (root / "CASME_A/Section A/sub02/EP07_1/img35.jpg").unlink()
    msg = error_of(ingest, "casme", cfg)
    assert "sub02_EP07_1: " in msg and "1 of 12 onset..offset frames missing: img35.jpg" in msg
    garbage = root / "CASME_B/Section B/sub12/EP08_2/EP08_2-21.jpg"
    garbage.unlink()  # frames are hard links of one file: replace, do not overwrite in place
    garbage.write_bytes(b"not a jpeg at all")
    msg = error_of(ingest, "casme", cfg)
    assert f"sub12_EP08_2: {garbage}: frame cannot be decoded as an image" in msg

    sheet = root / cfg["sections"][0]["sheet"]
    df = pd.read_excel(sheet).rename(columns={"Emotion": "Feeling"})
    df.loc[0, "Action Units"] = "4+X1"
    df.to_excel(root / "bad.xlsx", index=False)
    bad = {**cfg, "sections": [{"sheet": "bad.xlsx", "frames": "CASME_A/Section A"}]}
    msg = error_of(ingest, "casme", bad)
    assert "lacks columns for ['emotion (emotion / estimatedemotion)']" in msg
    df.rename(columns={"Feeling": "Emotion"}).assign(Emotion="joy").to_excel(root / "bad.xlsx",
                                                                             index=False)
    msg = error_of(ingest, "casme", bad)
    assert "sub01_EP01_5: bad.xlsx row 2: unknown emotion 'joy'" in msg
    assert "action unit 'X1' of '4+X1'" in msg

    assert "section folder 'CASME_C' not found" in error_of(
        ingest, "casme", {**cfg, "sections": [{"sheet": "x.xls", "frames": "CASME_C"}]})
    assert "coding sheet not found" in error_of(
        ingest, "casme", {**cfg, "sections": [{"sheet": "x.xls", "frames": "CASME_A/Section A"}]})
    assert "section 0 must be a mapping" in error_of(
        make_adapter, "casme", {**cfg, "sections": [{"sheet": "x.xls"}]})
    assert "is not a file name with {n}" in error_of(
        make_adapter, "casme", {**cfg, "frame_template": "img.jpg"})


def test_defaults_and_au_parser(tmp_path):
    a = make_adapter("casme", {"adapter": "casme", "root": str(tmp_path)})
    assert isinstance(a, Casme) and a.fps == 60.0
    assert [s["frames"] for s in a.sections] == ["CASME_A/Section A", "CASME_B/Section B"]
    assert "corpus folder not found" in error_of(
        ingest, "casme", {"adapter": "casme", "root": str(tmp_path / "none")})
    assert parse_casme_aus(" l2 + 12 ") == ["L2", "12"] and parse_casme_aus("?") == []
    with pytest.raises(ValueError, match="'4 or 5'"):
        parse_casme_aus("4 or 5")
