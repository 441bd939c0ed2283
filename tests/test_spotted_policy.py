"""Apex policy ``spotted``: ingest marks clips without an apex, the crop stage spots it from the
aligned frames, and every later stage reads the crop's ``apex_index``."""

from __future__ import annotations

import dataclasses

import numpy as np

from mer.data.ingest import ingest
from mer.data.manifest import Clip
from mer.face.crop import CropParams
from mer.face.stage import _crop_one, _Job
from mer.io import load_npz
from mer.temporal.apex import spot_apex
from test_data_smic import HS, build_clips_tree
from test_face import FACES, need, video_frames, write_jpegs


def test_ingest_marks_missing_apexes_as_spotted(tmp_path):
    # a SMIC-HS clips tree (no apex anywhere): two clips of subject 1, camera frame numbers
    root = build_clips_tree(tmp_path, [(1, "s1_ne_01", 100, 110), (1, "s1_po_01", 300, 312)])
    clips = ingest("smic", {**HS, "root": str(root)}, 1, "spotted")
    assert len(clips) == 2 and {c.apex_source for c in clips} == {"spotted"}
    c = min(clips, key=lambda c: c.onset)
    assert (c.onset, c.apex, c.offset) == (100, 105, 110)     # a placeholder until the crop stage


def test_crop_stage_spots_the_apex_of_spotted_clips_only(tmp_path):
    frames = video_frames(need(FACES / "WolfgangLanger_Pexels.mp4"), list(range(0, 40, 4)))
    (tmp_path / "clip").mkdir()
    paths = write_jpegs(frames, tmp_path / "clip")
    clip = Clip("v_01", "video", "v", "01", "clip", [p.name for p in paths], 1, 1, len(paths),
                "annotated", 1, [], "", "", "", 25.0)
    out = {}
    for source in ("annotated", "spotted"):
        (tmp_path / source).mkdir()
        job = _Job(dataclasses.replace(clip, apex_source=source), tmp_path, tmp_path / source,
                   CropParams())
        assert _crop_one(job)["status"] == "ok"
        out[source] = load_npz(tmp_path / source / "v_01.npz")
    assert int(out["annotated"]["apex_index"]) == 1
    spotted = out["spotted"]
    assert int(spotted["apex_index"]) == spot_apex(spotted["frames"], spotted["landmarks"])
    assert np.array_equal(spotted["frames"], out["annotated"]["frames"])
