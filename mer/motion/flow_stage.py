"""The ``flow@<dataset>`` stage: TV-L1 flow, strain and magnitude between each clip's key frames.

Inputs: the crop artifacts ``data/interim/<d>/crop/<clip>.npz`` (``frames`` (T, S, S, 3) uint8
RGB, frame 0 the onset, frame T-1 the offset, ``apex_index``) and, with ``flow.apex_from:
magnify``, the magnify artifacts ``data/interim/<d>/magnify/<clip>.npz`` (``frames``, ``keys``,
``index``), whose frame at the apex index replaces the crop's apex.

Output ``data/interim/<d>/flow/<clip>.npz`` (compressed) and ``index.csv``:

=========  =================  ==========================================================
array      shape, dtype       meaning
=========  =================  ==========================================================
u, v       (P, S, S) float16  flow from the pair's first to its second frame, pixels at S
strain     (P, S, S) float16  optical strain of (u, v)
magnitude  (P, S, S) float16  sqrt(u^2 + v^2)
pairs      (P,) unicode       the pair names, e.g. ``onset-apex``, ``offset-apex``
size       () int64           S = ``flow.size``
=========  =================  ==========================================================

Threads: clips run one per worker process with ``cores // workers`` OpenCV threads each (1 when
every core has a worker): OpenCV's own pool on top of one process per core only oversubscribes
the cores (measured with 12 SynthME clips at 112 on the shared 2-core machine: 2 workers x 1
thread 1.12 s per clip, 2 workers x 2 threads 1.23 s, 1 worker x 2 threads 1.15 s).  The count
is set in the parent, before the workers are forked, and never inside a worker: once a process
has run OpenCV's thread pool at its default size, ``cv2.setNumThreads`` in a child forked from
it hangs that child (OpenCV 4.11; tests/test_flow.py guards this), while a child that inherits
the setting runs fine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer import artifacts
from mer.errors import MerError, about
from mer.io import atomic_path, load_npz, save_npz
from mer.motion.flow import FlowParams, cv_threads, flow_features
from mer.parallel import map_clips, resolve_workers


@dataclass
class _Job:
    clip_id: str
    crop: Path
    magnify: Path | None
    out: Path
    params: FlowParams


def key_frames(crop: dict[str, np.ndarray], magnify: dict[str, np.ndarray] | None,
               where: str) -> dict[str, np.ndarray]:
    """Onset, apex and offset frames of one clip; the apex from ``magnify`` when given.

    The magnified apex is the magnify frame whose ``index`` is the crop's apex index, so a
    magnify artifact built from another apex (a stale stage) is an error, not a silent mix.
    """
    frames = crop["frames"]                                                 # (T, S, S, 3) uint8
    apex = int(np.asarray(crop["apex_index"]).reshape(-1)[0])
    if not 0 <= apex < len(frames):
        raise MerError(f"apex index {apex} outside the clip's {len(frames)} frames", where,
                       "rebuild the crop stage: dvc repro crop@<dataset>")
    keyed = {"onset": frames[0], "apex": frames[apex], "offset": frames[-1]}
    if magnify is not None:
        hits = np.flatnonzero(np.asarray(magnify["index"]) == apex)
        if len(hits) == 0:
            raise MerError(f"the magnify artifact has no frame at the apex (index {apex}; it "
                           f"holds {magnify['index'].tolist()})", where,
                           "rebuild it: dvc repro magnify@<dataset>")
        keyed["apex"] = magnify["frames"][hits[0]]                          # (S', S', 3) uint8
    return keyed


def _flow_one(job: _Job) -> dict:
    where = f"clip {job.clip_id} ({job.crop})"
    crop = load_npz(job.crop)
    magnify = load_npz(job.magnify) if job.magnify is not None else None
    with about(where):
        result = flow_features(key_frames(crop, magnify, where), job.params)
    save_npz(job.out / f"{job.clip_id}.npz", compress=True, **result)
    return {"clip_id": job.clip_id, "status": "ok"}


def run(params: dict, dataset: str) -> Path:
    cfg = FlowParams.from_dict(params.get("flow"))
    crop_dir = artifacts.artifact_dir("crop", dataset)
    index = artifacts.read_index(crop_dir, f"crop@{dataset}")
    magnify_dir = None
    if cfg.apex_from == "magnify":
        magnify_dir = artifacts.artifact_dir("magnify", dataset)
        # the magnify stage carries the crop's skips, and adds its own
        index = artifacts.read_index(magnify_dir, f"magnify@{dataset}")
    clips = artifacts.ok_clips(index)
    workers = min(resolve_workers(params.get("workers", 0)), max(len(clips), 1))
    threads = max(1, resolve_workers(0) // workers)
    out = artifacts.artifact_dir("flow", dataset)
    with atomic_path(out, is_dir=True) as tmp:
        jobs = [_Job(c, crop_dir / f"{c}.npz",
                     magnify_dir / f"{c}.npz" if magnify_dir is not None else None,
                     tmp, cfg) for c in clips]
        with cv_threads(threads):                       # inherited by the forked workers
            done = {r["clip_id"]: r for r in map_clips(_flow_one, jobs, workers,
                                                        desc=f"flow {dataset}")}
        artifacts.write_index(tmp, artifacts.carry_statuses(index, done))
    return out
