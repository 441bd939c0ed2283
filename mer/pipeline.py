"""Stage bodies: what each DVC stage does, called by ``stages/*.py`` and by ``mer <stage>``.

Each function reads its params section, works clip by clip in worker processes
(:func:`mer.parallel.map_clips`), writes one ``.npz`` per clip plus an ``index.csv`` into a
temporary directory, and renames it into place only when every clip is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mer import artifacts
from mer.config import IngestParams, LbpTopParams, TimParams, validate
from mer.data.manifest import Clip, read_manifest, write_manifest
from mer.errors import MerError
from mer.io import atomic_path, load_npz, save_npz
from mer.parallel import map_clips


def _dataset_cfg(params: dict, dataset: str) -> dict:
    data = params.get("data") or {}
    if dataset not in data:
        raise MerError(f"dataset '{dataset}' has no 'data.{dataset}' block", "params.yaml",
                       f"add conf/dataset/{dataset}.yaml or pick a dataset with -S dataset=...")
    return data[dataset]


def _write_index(directory: Path, rows: list[dict]) -> None:
    pd.DataFrame(rows, columns=["clip_id", "status"]).to_csv(
        directory / "index.csv", index=False, lineterminator="\n")


# --------------------------------------------------------------------------- synthesize
def synthesize(params: dict) -> Path:
    """Build SynthME under ``data/raw/synthme`` (the ``synthesize`` stage)."""
    from mer.synth import SynthParams, synthesize as build
    out = artifacts.RAW / "synthme"
    build(SynthParams.from_dict(params.get("synthesize") or {}), out, params.get("workers", 0))
    return out


# --------------------------------------------------------------------------- ingest
def ingest(params: dict, dataset: str) -> Path:
    """Read, validate and describe a corpus: writes ``data/interim/<dataset>/manifest.csv``."""
    from mer.data.ingest import ingest as read_corpus
    ing = validate(params.get("ingest"), IngestParams, "ingest")
    clips = read_corpus(dataset, _dataset_cfg(params, dataset), params.get("workers", 0),
                        ing.apex_policy)
    return write_manifest(clips, artifacts.manifest_path(dataset))


# --------------------------------------------------------------------------- crop
@dataclass
class _CropJob:
    clip: Clip
    root: Path
    out: Path
    crop: object
    skip_no_face: bool


def _crop_one(job: _CropJob) -> dict:
    from mer.face.crop import crop_clip
    try:
        result = crop_clip(job.clip.frame_paths(job.root), job.crop, job.clip.clip_id)
    except MerError as exc:
        if job.skip_no_face and "face" in exc.what:
            return {"clip_id": job.clip.clip_id, "status": f"skipped: {exc.what}"}
        raise
    save_npz(job.out / f"{job.clip.clip_id}.npz", frames=result["frames"],
             landmarks=result["landmarks"].astype(np.float32), transform=result["transform"],
             apex_index=np.int64(job.clip.apex_index))
    return {"clip_id": job.clip.clip_id, "status": "ok"}


def crop(params: dict, dataset: str) -> Path:
    """Detect, align and crop every clip (``crop@<dataset>``): frames + 68 landmarks per frame."""
    from mer.face.crop import CropParams
    cfg = CropParams.from_dict(params.get("crop") or {})
    root = Path(_dataset_cfg(params, dataset)["root"])
    clips = read_manifest(artifacts.manifest_path(dataset))
    out = artifacts.artifact_dir("crop", dataset)
    with atomic_path(out, is_dir=True) as tmp:
        jobs = [_CropJob(c, root, tmp, cfg, cfg.skip_no_face) for c in clips]
        rows = map_clips(_crop_one, jobs, params.get("workers", 0), desc=f"crop {dataset}")
        _write_index(tmp, rows)
    return out


# --------------------------------------------------------------------------- tim
@dataclass
class _TimJob:
    clip_id: str
    src: Path
    outs: dict[int, Path]
    size: int


def _tim_one(job: _TimJob) -> dict:
    from mer.temporal.tim import tim
    data = load_npz(job.src)
    frames = data["frames"]                                   # (T, S, S, 3) uint8
    if frames.shape[1] != job.size:
        frames = np.stack([cv2.resize(f, (job.size, job.size), interpolation=cv2.INTER_AREA)
                           for f in frames])                  # (T, size, size, 3)
    n = len(frames)
    for length, directory in job.outs.items():
        # apex position carried over to the interpolated time axis (first/last frames are kept)
        apex = int(round(int(data["apex_index"]) * (length - 1) / max(n - 1, 1)))
        save_npz(directory / f"{job.clip_id}.npz", frames=tim(frames, length),
                 apex_index=np.int64(apex))
    return {"clip_id": job.clip_id, "status": "ok"}


def tim_stage(params: dict, dataset: str) -> Path:
    """Temporal interpolation of every cropped clip to each of ``tim.lengths`` frames."""
    cfg = validate(params.get("tim"), TimParams, "tim")
    src_dir = artifacts.artifact_dir("crop", dataset)
    index = pd.read_csv(src_dir / "index.csv", dtype=str, keep_default_na=False)
    out = artifacts.artifact_dir("tim", dataset)
    with atomic_path(out, is_dir=True) as tmp:  # all lengths land together, or none
        tmps = [tmp / str(n) for n in cfg.lengths]
        for t in tmps:
            t.mkdir()
        ok = index[index["status"] == "ok"]["clip_id"].tolist()
        jobs = [_TimJob(c, src_dir / f"{c}.npz", dict(zip(cfg.lengths, tmps)), cfg.size) for c in ok]
        done = {r["clip_id"]: r for r in map_clips(_tim_one, jobs, params.get("workers", 0),
                                                    desc=f"tim {dataset}")}
        for t in tmps:
            _write_index(t, [done.get(c, {"clip_id": c, "status": s})
                             for c, s in zip(index["clip_id"], index["status"])])
    return out


# --------------------------------------------------------------------------- lbptop
@dataclass
class _LbpJob:
    clip_id: str
    src: Path
    out: Path
    cfg: LbpTopParams


def _lbptop_one(job: _LbpJob) -> dict:
    from mer.features.lbptop import lbp_top
    frames = load_npz(job.src)["frames"]                      # (L, S, S, 3) uint8 RGB
    size = job.cfg.size
    gray = np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (size, size),
                                interpolation=cv2.INTER_AREA) for f in frames])  # (L, size, size)
    feature = lbp_top(gray, radii=tuple(job.cfg.radii), grids=tuple(job.cfg.grids))
    save_npz(job.out / f"{job.clip_id}.npz", feature=feature.astype(np.float32))
    return {"clip_id": job.clip_id, "status": "ok"}


def lbptop(params: dict, dataset: str) -> Path:
    """LBP-TOP grid features of every TIM clip (``lbptop@<dataset>``)."""
    cfg = validate(params.get("lbptop"), LbpTopParams, "lbptop")
    src_dir = artifacts.artifact_dir(f"tim{cfg.length}", dataset)
    if not (src_dir / "index.csv").exists():
        raise MerError(f"TIM-{cfg.length} clips not found", src_dir,
                       f"add {cfg.length} to tim.lengths and run: dvc repro tim@{dataset}")
    index = pd.read_csv(src_dir / "index.csv", dtype=str, keep_default_na=False)
    out = artifacts.artifact_dir("lbptop", dataset)
    with atomic_path(out, is_dir=True) as tmp:
        ok = index[index["status"] == "ok"]["clip_id"].tolist()
        jobs = [_LbpJob(c, src_dir / f"{c}.npz", tmp, cfg) for c in ok]
        done = {r["clip_id"]: r for r in map_clips(_lbptop_one, jobs, params.get("workers", 0),
                                                    desc=f"lbptop {dataset}")}
        _write_index(tmp, [done.get(c, {"clip_id": c, "status": s})
                           for c, s in zip(index["clip_id"], index["status"])])
    return out
