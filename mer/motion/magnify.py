"""The ``magnify@<dataset>`` stage: every cropped clip's key frames (or all frames) motion-magnified.

Convention: the **onset is the reference** and is returned unchanged; every other frame is
magnified relative to it.  EVM magnifies the whole clip (its temporal filter needs every frame) and
the requested frames are taken from the result; MagNet runs in static two-frame mode on the pairs
(onset, apex), (onset, offset) or (onset, frame i).

Input: the crop artifacts ``data/interim/<d>/crop/<clip>.npz`` (``frames`` ``(T, 224, 224, 3)``
uint8 RGB, frame 0 the onset, frame T-1 the offset, ``apex_index``) and the clip's frame rate from
the manifest.  Output ``data/interim/<d>/magnify/<clip>.npz``:

=========  =======================  =========================================================
array      shape, dtype             meaning
=========  =======================  =========================================================
frames     (K, S, S, 3) uint8       RGB, S = ``magnify.size``
keys       (K,) unicode             ``onset``, ``apex``, ``offset`` (frames: keys) or
                                    ``f000``, ``f001``, ... (frames: clip)
index      (K,) int64               each frame's position in the crop clip
alpha      (1,) float64             the amplification used (``save_npz`` stores scalars as
                                    one-element arrays: read it with ``.item()``)
=========  =======================  =========================================================
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from mer import artifacts
from mer.config import validate
from mer.data.manifest import read_manifest
from mer.errors import MerError, about
from mer.io import atomic_path, load_npz, save_npz
from mer.motion.evm import FILTERS, evm
from mer.parallel import map_clips, resolve_workers

FRAME_SETS = ("keys", "clip")


@dataclass
class MagnifyParams:
    """``magnify``: how the crops are magnified.

    method:         ``evm`` (Eulerian, Wu et al. 2012; no weights needed) or ``magnet``
                    (learning-based, Oh et al. 2018; needs ``weights``).
    alpha:          amplification.  3 follows DeRe-GRL (MagNet on landmarks); the
                    annotation-mimicking paper uses 6.  MagNet: 0 reproduces the frame; the
                    measured motion grows ~2-3x at 3, ~3-4.5x at 5, ~4-8x at 10 (see
                    mer.motion.magnet.magnify_pairs).  EVM: the motion inside the temporal band
                    grows by up to 1 + alpha (less on levels finer than evm_lambda_c).
    frames:         ``keys`` (onset, apex, offset) or ``clip`` (every frame).
    size:           side of the output frames; crops of another size are resized first.
    weights:        path of the MagNet checkpoint (``magnet_epoch12_loss7.28e-02.pth``); empty by
                    default: a preset or the user sets it (never commit the file).
    evm_band:       EVM temporal pass-band [low, high] in Hz (micro-expressions: ~1-15 Hz).
    evm_filter:     ``ideal`` (FFT, zero phase) or ``butterworth`` (first order, causal).
    evm_levels:     Laplacian pyramid levels (fewer when frames are small).
    evm_lambda_c:   spatial cut-off wavelength in px: finer levels get less amplification
                    (0 = off).
    evm_chroma_attenuation: factor on the amplification of the chroma (YIQ I, Q) channels.
    """

    method: str = "evm"
    alpha: float = 3.0
    frames: str = "keys"
    size: int = 224
    weights: str = ""
    evm_band: list[float] = field(default_factory=lambda: [0.5, 15.0])
    evm_filter: str = "ideal"
    evm_levels: int = 6
    evm_lambda_c: float = 16.0
    evm_chroma_attenuation: float = 0.1

    def check(self) -> None:
        """Values the schema's types cannot catch; one MerError naming the key and the fix."""
        def bad(key: str, rule: str) -> MerError:
            return MerError(f"invalid value {getattr(self, key)!r} for magnify.{key}",
                            "params.yaml", rule)

        if self.method not in MAGNIFIERS:
            raise bad("method", f"use one of: {', '.join(MAGNIFIERS)}")
        if self.frames not in FRAME_SETS:
            raise bad("frames", f"use one of: {', '.join(FRAME_SETS)}")
        if not self.alpha >= 0:
            raise bad("alpha", "use a number >= 0")
        if not 16 <= self.size <= 4096:
            raise bad("size", "use a side in pixels from 16 to 4096")
        if len(self.evm_band) != 2 or not 0 < self.evm_band[0] < self.evm_band[1]:
            raise bad("evm_band", "give [low, high] in Hz with 0 < low < high")
        if self.evm_filter not in FILTERS:
            raise bad("evm_filter", f"use one of: {', '.join(FILTERS)}")
        if self.evm_levels < 1:
            raise bad("evm_levels", "use at least 1 level")
        if self.evm_lambda_c < 0:
            raise bad("evm_lambda_c", "use a wavelength >= 0 px (0 switches the cut-off off)")
        if not 0 <= self.evm_chroma_attenuation <= 1:
            raise bad("evm_chroma_attenuation", "use a factor between 0 and 1")


# A magnifier: (frames (T, S, S, 3) uint8, positions (K,) all > 0, fps, params) -> (K, S, S, 3)
# uint8, the frames at those positions magnified relative to frame 0.
Magnifier = Callable[[np.ndarray, np.ndarray, float, MagnifyParams], np.ndarray]
MAGNIFIERS: dict[str, Magnifier] = {}
# per method, run once in the parent before clips are farmed out (e.g. check the weights)
PREPARE: dict[str, Callable[[MagnifyParams], None]] = {}


def register(name: str, prepare: Callable[[MagnifyParams], None] | None = None):
    def add(fn: Magnifier) -> Magnifier:
        MAGNIFIERS[name] = fn
        if prepare is not None:
            PREPARE[name] = prepare
        return fn
    return add


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


@register("evm")
def magnify_evm(frames: np.ndarray, positions: np.ndarray, fps: float,
                cfg: MagnifyParams) -> np.ndarray:
    """Eulerian magnification of the whole clip; the frames at ``positions`` are returned."""
    out = evm(frames, fps, cfg.alpha, band=tuple(cfg.evm_band), levels=cfg.evm_levels,
              lambda_c=cfg.evm_lambda_c, chroma_attenuation=cfg.evm_chroma_attenuation,
              kind=cfg.evm_filter)                                    # (T, S, S, 3) float32
    return _to_uint8(out[positions])


def _magnet_device() -> str:
    from mer.motion.magnet import default_device
    return str(default_device())


def _check_weights(cfg: MagnifyParams) -> None:
    """Fail before any clip is processed when the weights are missing or not MagNet's."""
    from mer.motion.magnet import load_magnet
    load_magnet(cfg.weights, "cpu")


@register("magnet", prepare=_check_weights)
def magnify_magnet(frames: np.ndarray, positions: np.ndarray, fps: float,
                   cfg: MagnifyParams) -> np.ndarray:
    """MagNet static mode: each frame at ``positions`` magnified against the onset."""
    from mer.motion.magnet import cached_magnet, magnify_pairs
    model = cached_magnet(str(cfg.weights), _magnet_device())
    return magnify_pairs(model, frames[0], frames[positions], cfg.alpha)


def frame_selection(n_frames: int, apex_index: int, which: str) -> tuple[list[str], np.ndarray]:
    """Names and ``(K,)`` int64 positions of the frames to output (the onset always first)."""
    if which == "keys":
        return ["onset", "apex", "offset"], np.array([0, apex_index, n_frames - 1], dtype=np.int64)
    width = max(3, len(str(n_frames - 1)))
    return [f"f{i:0{width}d}" for i in range(n_frames)], np.arange(n_frames, dtype=np.int64)


def magnify_clip(frames: np.ndarray, apex_index: int, fps: float,
                 cfg: MagnifyParams) -> dict[str, np.ndarray]:
    """One clip's output arrays (see the module docstring); ``frames`` ``(T, H, W, 3)`` uint8."""
    n = len(frames)
    if not 0 <= apex_index < n:
        raise MerError(f"apex index {apex_index} outside the clip's {n} frames",
                       fix="re-run the crop stage (the crop artifact is inconsistent)")
    if frames.shape[1:3] != (cfg.size, cfg.size):
        interp = cv2.INTER_AREA if frames.shape[1] > cfg.size else cv2.INTER_LINEAR
        frames = np.stack([cv2.resize(f, (cfg.size, cfg.size), interpolation=interp)
                           for f in frames])                          # (T, S, S, 3)
    keys, index = frame_selection(n, apex_index, cfg.frames)
    out = np.repeat(frames[:1], len(index), axis=0)                   # (K, S, S, 3): the onset
    moving = index > 0                                                # everything but the onset
    if moving.any():
        out[moving] = MAGNIFIERS[cfg.method](frames, index[moving], fps, cfg)
    return {"frames": out, "keys": np.array(keys), "index": index,
            "alpha": np.float64(cfg.alpha)}


@dataclass
class _Job:
    clip_id: str
    src: Path
    out: Path
    fps: float
    cfg: MagnifyParams
    parallel: bool        # several worker processes share the cores


def _thread_limits(job: _Job) -> contextlib.AbstractContextManager:
    """One BLAS/OpenMP (and so torch) thread per process where that is faster.

    MagNet always: on a busy 2-core machine, 6 clips took 6-9 s with one torch thread (serially
    or in two processes) but 12-29 s with torch's own two threads, which spin against other work.
    EVM only when processes run in parallel (serially its matrix products may use every core).
    """
    if job.cfg.method == "magnet" or job.parallel:
        return threadpool_limits(1)
    return contextlib.nullcontext()


def _magnify_one(job: _Job) -> dict:
    data = load_npz(job.src)
    with _thread_limits(job), about(f"clip {job.clip_id} ({job.src})"):
        result = magnify_clip(data["frames"], int(data["apex_index"].item()), job.fps, job.cfg)
    save_npz(job.out / f"{job.clip_id}.npz", compress=False, **result)
    return {"clip_id": job.clip_id, "status": "ok"}


def run(params: dict, dataset: str) -> Path:
    cfg = validate(params.get("magnify"), MagnifyParams, "magnify")
    cfg.check()
    src = artifacts.artifact_dir("crop", dataset)
    index = artifacts.read_index(src, f"crop@{dataset}")
    manifest = artifacts.manifest_path(dataset)
    if not manifest.exists():
        raise MerError("manifest not found", manifest, f"run: dvc repro ingest@{dataset}")
    fps = {c.clip_id: c.fps for c in read_manifest(manifest)}
    if cfg.method in PREPARE:
        PREPARE[cfg.method](cfg)
    clips = artifacts.ok_clips(index)
    missing = [c for c in clips if c not in fps]
    if missing:
        raise MerError(f"{len(missing)} cropped clips are not in the manifest (e.g. {missing[0]})",
                       manifest, f"re-run: dvc repro crop@{dataset}")
    workers = min(resolve_workers(params.get("workers", 0)), max(len(clips), 1))
    out = artifacts.artifact_dir("magnify", dataset)
    with atomic_path(out, is_dir=True) as tmp:
        jobs = [_Job(c, src / f"{c}.npz", tmp, fps[c], cfg, workers > 1) for c in clips]
        done = {r["clip_id"]: r for r in map_clips(_magnify_one, jobs, workers,
                                                    desc=f"magnify {dataset}")}
        artifacts.write_index(tmp, artifacts.carry_statuses(index, done))
    return out
