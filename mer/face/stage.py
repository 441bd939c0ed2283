"""The ``crop@<dataset>`` stage: every clip's aligned face crops and per-frame 68 landmarks.

A clip whose manifest says ``apex_source: spotted`` gets its apex here, from the aligned frames
(:func:`mer.temporal.apex.spot_apex`); every later stage reads the crop's ``apex_index``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer import artifacts
from mer.data.manifest import Clip, read_manifest
from mer.errors import MerError
from mer.face.crop import CropParams, crop_clip
from mer.face.landmarks import NoFaceError
from mer.io import atomic_path, save_npz
from mer.parallel import map_clips
from mer.temporal.apex import spot_apex


@dataclass
class _Job:
    clip: Clip
    root: Path
    out: Path
    params: CropParams


def _crop_one(job: _Job) -> dict:
    try:
        result = crop_clip(job.clip.frame_paths(job.root), job.params, job.clip.clip_id)
    except NoFaceError as exc:
        if job.params.skip_no_face:
            return {"clip_id": job.clip.clip_id, "status": f"skipped: {exc.what}"}
        raise
    apex = job.clip.apex_index
    if job.clip.apex_source == "spotted":   # ingest.apex_policy spotted: the apex from motion
        apex = spot_apex(result["frames"], result["landmarks"])
    save_npz(job.out / f"{job.clip.clip_id}.npz", compress=False,
             frames=result["frames"],                              # (T, S, S, 3) uint8 RGB
             landmarks=result["landmarks"].astype(np.float32),     # (T, 68, 2) crop coords
             transform=result["transform"],                        # (2, 3) original -> crop
             apex_index=np.int64(apex))                            # annotated, midpoint or spotted
    return {"clip_id": job.clip.clip_id, "status": "ok"}


def run(params: dict, dataset: str) -> Path:
    cfg = CropParams.from_dict(params.get("crop"))
    root = Path(artifacts.dataset_config(params, dataset)["root"])
    manifest = artifacts.manifest_path(dataset)
    if not manifest.exists():
        raise MerError("manifest not found", manifest, f"run: dvc repro ingest@{dataset}")
    out = artifacts.artifact_dir("crop", dataset)
    with atomic_path(out, is_dir=True) as tmp:
        jobs = [_Job(c, root, tmp, cfg) for c in read_manifest(manifest)]
        artifacts.write_index(tmp, map_clips(_crop_one, jobs, params.get("workers", 0),
                                             desc=f"crop {dataset}"))
    return out
