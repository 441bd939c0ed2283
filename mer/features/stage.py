"""The ``lbptop@<dataset>`` stage: LBP-TOP grid features of every TIM clip."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mer import artifacts
from mer.config import validate
from mer.errors import MerError, about
from mer.features.lbptop import lbp_top
from mer.io import atomic_path, load_npz, save_npz
from mer.parallel import map_clips


@dataclass
class LbpTopParams:
    """``lbptop``: LBP-TOP on the TIM clip of ``length`` frames resized to ``size`` x ``size`` gray."""

    length: int = 16
    size: int = 112
    radii: list[int] = field(default_factory=lambda: [1, 1, 1])  # Rx, Ry, Rt
    grids: list[int] = field(default_factory=lambda: [1, 2, 4, 8])


@dataclass
class _Job:
    clip_id: str
    src: Path
    out: Path
    params: LbpTopParams


def _lbptop_one(job: _Job) -> dict:
    frames = load_npz(job.src)["frames"]                      # (L, S, S, 3) uint8 RGB
    size = job.params.size
    gray = np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (size, size),
                                interpolation=cv2.INTER_AREA) for f in frames])  # (L, size, size)
    with about(f"clip {job.clip_id} ({job.src})"):
        feature = lbp_top(gray, radii=tuple(job.params.radii), grids=tuple(job.params.grids))
    save_npz(job.out / f"{job.clip_id}.npz", feature=feature.astype(np.float32))  # (15045,)
    return {"clip_id": job.clip_id, "status": "ok"}


def run(params: dict, dataset: str) -> Path:
    cfg = validate(params.get("lbptop"), LbpTopParams, "lbptop")
    src = artifacts.artifact_dir(f"tim{cfg.length}", dataset)
    if not (src / "index.csv").exists():
        raise MerError(f"TIM-{cfg.length} clips not found", src,
                       f"add {cfg.length} to tim.lengths and run: dvc repro tim@{dataset}")
    index = artifacts.read_index(src, f"tim@{dataset}")
    out = artifacts.artifact_dir("lbptop", dataset)
    with atomic_path(out, is_dir=True) as tmp:
        jobs = [_Job(c, src / f"{c}.npz", tmp, cfg) for c in artifacts.ok_clips(index)]
        done = {r["clip_id"]: r for r in map_clips(_lbptop_one, jobs, params.get("workers", 0),
                                                    desc=f"lbptop {dataset}")}
        artifacts.write_index(tmp, artifacts.carry_statuses(index, done))
    return out
