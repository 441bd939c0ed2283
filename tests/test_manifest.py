"""Manifest round trip: what ingest writes is exactly what every later stage reads back."""

from __future__ import annotations

import csv

import pytest

from mer.data.manifest import Clip, read_manifest, write_manifest


def clip(**overrides) -> Clip:
    base = dict(
        clip_id="sub01_EP02_01f", corpus="casme2", subject="01", clip="EP02_01f",
        frame_dir="CASME2_RAW_selected/sub01/EP02_01f",
        frames=[f"img{n}.jpg" for n in range(46, 87)], onset=46, apex=59, offset=86,
        apex_source="annotated", apex_index=13, aus=["12"], aus_raw="12",
        emotion_raw="happiness", emotion="happiness", fps=200.0,
        labels={"casme2_5class": "happiness", "casme2_3class": "positive", "casme2_all": "happiness"},
        fixes=[])
    base.update(overrides)
    return Clip(**base)


@pytest.fixture
def clips() -> list[Clip]:
    return [
        clip(),
        # text ids that look like numbers, a dropped label, a fix, '?' AUs kept raw only
        clip(clip_id="sub04_EP12_01f", subject="04", clip="EP12_01f", onset=261, apex=291,
             offset=321, apex_index=30, apex_source="midpoint", aus=[], aus_raw="?",
             frames=[f"img{n}.jpg" for n in range(261, 322)], emotion_raw="sadness",
             emotion="sadness", labels={"casme2_5class": "", "casme2_3class": "", "casme2_all": "sadness"},
             fixes=["casme2-001", "local-7"]),
        # values pandas would turn into numbers or NaN if it were allowed to guess
        clip(clip_id="006_1_2", corpus="samm", subject="006", clip="006_1_2", aus=["L4", "R10"],
             aus_raw="NA", emotion_raw=" Happiness ", frames=["006_05562.jpg", "a,b \"q\".jpg"],
             onset=5562, apex=5562, offset=5563, apex_index=0, fps=200.0),
    ]


def test_round_trip_is_exact(clips, tmp_path):
    path = write_manifest(clips, tmp_path / "manifest.csv")
    back = read_manifest(path)
    assert back == clips
    assert [c.subject for c in back] == ["01", "04", "006"]
    assert back[1].fixes == ["casme2-001", "local-7"] and back[1].aus == []
    assert back[1].labels["casme2_5class"] == ""
    assert back[2].aus_raw == "NA" and back[2].emotion_raw == " Happiness "
    assert back[2].frames[1] == 'a,b "q".jpg'
    assert all(isinstance(c.onset, int) and isinstance(c.fps, float) for c in back)


def test_file_layout(clips, tmp_path):
    path = write_manifest(clips, tmp_path / "manifest.csv")
    rows = list(csv.DictReader(path.open(newline="")))
    assert len(rows) == 3
    assert rows[0]["subject"] == "01" and rows[2]["subject"] == "006"  # text on disk too
    assert rows[0]["frames"].startswith('["img46.jpg", "img47.jpg"')   # JSON lists
    assert {"label_casme2_5class", "label_casme2_3class", "label_casme2_all"} <= set(rows[0])
    assert path.read_bytes() == write_manifest(clips, tmp_path / "again.csv").read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind
