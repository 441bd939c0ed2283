"""The ``tim@<dataset>`` stage: every cropped clip interpolated to each of ``tim.lengths`` frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mer import artifacts
from mer.config import validate
from mer.errors import about
from mer.io import atomic_path, load_npz, save_npz
from mer.parallel import map_clips
from mer.temporal.tim import tim


@dataclass
class TimParams:
    """``tim``: the lengths every clip is interpolated to (16 feeds LBP-TOP, 64 the CNNs).

    Clips are stored at ``size`` x ``size`` RGB: a 64-frame clip at the crop's 224 px would cost
    ~10 MB per clip, and no method that reads TIM clips uses more than 140 px.
    """

    lengths: list[int] = field(default_factory=lambda: [16, 64])
    size: int = 128


@dataclass
class _Job:
    clip_id: str
    src: Path
    outs: dict[int, Path]
    size: int


def _tim_one(job: _Job) -> dict:
    data = load_npz(job.src)
    frames = data["frames"]                                   # (T, S, S, 3) uint8
    if frames.shape[1] != job.size:
        frames = np.stack([cv2.resize(f, (job.size, job.size), interpolation=cv2.INTER_AREA)
                           for f in frames])                  # (T, size, size, 3)
    n = len(frames)
    for length, directory in job.outs.items():
        # the apex carried over to the new time axis (TIM keeps the first and last frames)
        apex = int(round(int(data["apex_index"]) * (length - 1) / max(n - 1, 1)))
        with about(f"clip {job.clip_id} ({job.src})"):
            clip = tim(frames, length)                        # (length, size, size, 3) uint8
        save_npz(directory / f"{job.clip_id}.npz", compress=False, frames=clip,
                 apex_index=np.int64(apex))
    return {"clip_id": job.clip_id, "status": "ok"}


def run(params: dict, dataset: str) -> Path:
    cfg = validate(params.get("tim"), TimParams, "tim")
    src = artifacts.artifact_dir("crop", dataset)
    index = artifacts.read_index(src, f"crop@{dataset}")
    out = artifacts.artifact_dir("tim", dataset)
    with atomic_path(out, is_dir=True) as tmp:   # every length lands together, or none
        dirs = {n: tmp / str(n) for n in cfg.lengths}
        for d in dirs.values():
            d.mkdir()
        jobs = [_Job(c, src / f"{c}.npz", dirs, cfg.size) for c in artifacts.ok_clips(index)]
        done = {r["clip_id"]: r for r in map_clips(_tim_one, jobs, params.get("workers", 0),
                                                    desc=f"tim {dataset}")}
        for d in dirs.values():
            artifacts.write_index(d, artifacts.carry_statuses(index, done))
    return out
