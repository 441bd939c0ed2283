"""The ``graph@<dataset>`` stage: landmarks of each clip's magnified onset, apex and offset frames,
as the nodes of a landmark graph (:mod:`mer.features.graph`), DeRe-GRL's input.

Why landmarks are detected again on the *magnified* frames: the crop stage's landmarks follow the
real, tiny motion; magnification (``magnify@<dataset>``) enlarges it, and the landmarks placed on
the magnified frames carry that larger, more separable motion (DeRe-GRL magnifies by 3 for this).

Where the landmarker looks: the shape predictor needs a face box of the framing it was trained
with (dlib's HOG detector).  Re-detecting on each magnified frame would make the box jump by whole
HOG cells between frames, a jitter larger than the motion of interest, so one box per clip is
derived from the onset's 68 crop landmarks (:func:`landmarker_box`) and used on all three frames.

Augmentation (``box_scales``), as in DeRe-GRL ("the cropped face images with different sizes have
different landmarks, we regard this difference as noise to augment data"): the box is scaled about
its centre by each factor, and the predictor, started from its mean shape in a differently sized
box, lands on slightly different points: one noisy version of the clip per factor.  How a method
must use them: **training only**.  A training clip contributes all its versions (as extra samples
or one drawn per epoch); a test clip is represented by version 0 alone (scale 1.0, the
un-augmented landmarks).  Averaging predictions over versions at test time is test-time
augmentation, a different protocol that must be named as such.  All versions of a clip live in one
file, so they can never straddle a train/test split.

Inputs: ``magnify/<clip>.npz`` (``frames`` (K, S, S, 3) uint8 RGB, ``index`` (K,) positions in the
crop clip; key frames or every frame) and ``crop/<clip>.npz`` (``landmarks`` (T, 68, 2) in crop
pixels, ``apex_index``; frame 0 is the onset, T-1 the offset).  The onset, apex and offset are
found by their crop positions, so both magnify modes work; a magnified size other than the crop's
is handled by rescaling the onset landmarks.  Output ``graph/<clip>.npz``: ``nodes``
(S_aug, 3, N, 2) float32 normalised coordinates (:func:`mer.features.graph.node_features`),
``raw`` the same points in magnified-frame pixels, ``keys`` ('onset', 'apex', 'offset'), ``index``
(3,) their crop positions and ``box_scales`` (S_aug,), version 0 being scale 1.0.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mer import artifacts
from mer.config import validate
from mer.errors import MerError, about
from mer.face.landmarks import get_landmarker, landmarker_names
from mer.features.graph import NORMALISATIONS, Graph, layout_names, node_features
from mer.io import atomic_path, load_npz, save_npz
from mer.parallel import map_clips

KEYS = ("onset", "apex", "offset")

# dlib's HOG box against the bounding box of the 68 points dlib predicts inside it, measured on 58
# faces (46 detections in dlib's 9 example photos and astronaut.png, 12 frames of
# WolfgangLanger_Pexels.mp4; upsample 1): the box is square, its side 1.06 x the landmark box's width
# (median; 10th-90th percentile 0.96-1.16), its centre level with the landmark box's centre
# left-right (median offset -0.04 of the width, spread by head yaw; 0 for frontal faces) and 0.10 of
# the landmark box's height above it (median -0.107; the box reaches higher on the forehead than
# the brows and stops near the chin).  Predicting inside this box instead of the detector's moves
# the points by a median of 0.019 inter-ocular distances, the predictor's own box sensitivity; the
# two boxes overlap with a median IoU of 0.77 on those photos, 0.86 on astronaut.png's aligned crop.
BOX_SIDE_PER_WIDTH = 1.06
BOX_RISE_PER_HEIGHT = 0.10


@dataclass
class GraphParams:
    """``graph``: the landmark graph of the magnified key frames.

    layout:      node set and edges (:data:`mer.features.graph.LAYOUTS`): ``dere31`` (DeRe-GRL's
                 31 points: eyebrows, nose, outer lip) or ``ibug68``.
    landmarker:  68-point landmark back-end (registry name, as ``crop.landmarker``).
    box_scales:  landmark-box scale factors, one noisy version of each clip per factor; must start
                 with 1.0, the version methods test on (others are for training only).  DeRe-GRL's
                 augmentation is e.g. [1.0, 0.9, 1.1].
    normalise:   node coordinates relative to the ``onset`` frame's eyes (default: keeps all motion,
                 head drift included) or to each ``frame``'s own eyes (removes head drift).
    upscale:     frames are enlarged this many times (bilinear) before the landmarker runs and its
                 points scaled back.  Why: dlib returns whole pixels, so on a 224 px crop (eyes ~72
                 px apart) landmarks move in steps of 1/70 eye distance, as coarse as the motion
                 itself.  Measured on astronaut.png's crop shifted by 0..2 px in 0.25 px steps, the
                 mean error of each point's recovered shift is 0.45 px at 1, 0.30 at 2 and 0.17 at 4,
                 for 4, 5 and 7 ms per frame.
    """

    layout: str = "dere31"
    landmarker: str = "dlib_68"
    box_scales: list[float] = field(default_factory=lambda: [1.0])
    normalise: str = "onset"
    upscale: int = 4

    def check(self) -> None:
        """Raise one :class:`MerError` naming the bad key and its valid values."""
        def bad(key: str, rule: str) -> MerError:
            return MerError(f"invalid value {getattr(self, key)!r} for graph.{key}", "params.yaml", rule)

        if self.layout not in layout_names():
            raise bad("layout", f"use one of: {', '.join(layout_names())}")
        if self.landmarker not in landmarker_names():
            raise bad("landmarker", f"use one of: {', '.join(landmarker_names())}")
        if self.normalise not in NORMALISATIONS:
            raise bad("normalise", f"use one of: {', '.join(NORMALISATIONS)}")
        scales = self.box_scales
        if not scales or scales[0] != 1.0:
            raise bad("box_scales", "start the list with 1.0 (the un-augmented version, used for testing)")
        if len(set(scales)) != len(scales) or not all(0.5 <= s <= 2.0 for s in scales):
            raise bad("box_scales", "use distinct factors between 0.5 and 2.0, e.g. [1.0, 0.9, 1.1]")
        if not 1 <= self.upscale <= 8:
            raise bad("upscale", "use an integer from 1 (off) to 8")


def landmarker_box(landmarks: np.ndarray) -> np.ndarray:
    """The dlib-framed face box ``(4,)`` float64 (left, top, right, bottom) for 68 landmarks
    ``(68, 2)`` of a frontal face: the box dlib's detector would have given (constants above)."""
    pts = np.asarray(landmarks, dtype=np.float64)  # (68, 2)
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    half = BOX_SIDE_PER_WIDTH * (x1 - x0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - BOX_RISE_PER_HEIGHT * (y1 - y0)
    return np.array([cx - half, cy - half, cx + half, cy + half])


def scale_box(box: np.ndarray, factor: float) -> np.ndarray:
    """``box`` (left, top, right, bottom) scaled by ``factor`` about its centre."""
    centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2 * factor  # (2,), (2,)
    return np.concatenate([centre - half, centre + half])


def key_landmarks(frames: np.ndarray, onset_landmarks: np.ndarray, box_scales: list[float],
                  landmarker: str, upscale: int = 1) -> np.ndarray:
    """68 landmarks ``(S_aug, F, 68, 2)`` float32 on each of ``frames`` ``(F, S, S, 3)`` uint8 RGB,
    predicted in the box framed on ``onset_landmarks`` ``(68, 2)`` (same pixel grid as the frames)
    and scaled by each of ``box_scales``; frames are enlarged ``upscale`` times for the landmarker
    (pixel centres on integers: ``x_big = (x + 0.5) * upscale - 0.5``)."""
    model = get_landmarker(landmarker)
    if upscale != 1:
        frames = [cv2.resize(f, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
                  for f in frames]  # F x (S*up, S*up, 3) uint8
    box = landmarker_box(onset_landmarks)  # (4,)
    out = np.empty((len(box_scales), len(frames), 68, 2), dtype=np.float64)  # (S_aug, F, 68, 2)
    for s, factor in enumerate(box_scales):
        scaled = (scale_box(box, factor) + 0.5) * upscale - 0.5
        for f, frame in enumerate(frames):
            out[s, f] = model.landmarks(frame, scaled)
    return ((out + 0.5) / upscale - 0.5).astype(np.float32)


def _npy_shape(path: Path, name: str) -> tuple[int, ...]:
    """Shape of array ``name`` in an ``.npz`` read from its header, without loading the array."""
    with zipfile.ZipFile(path) as zf, zf.open(f"{name}.npy") as member:
        major, _ = np.lib.format.read_magic(member)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        return tuple(read(member)[0])


@dataclass
class _Job:
    clip_id: str
    magnified: Path
    crop: Path
    out: Path
    params: GraphParams


def _graph_one(job: _Job) -> dict:
    where = f"clip {job.clip_id} ({job.magnified})"
    if not job.crop.exists():
        raise MerError("the clip's crop artifact is missing", where,
                       "rerun the crop stage, then the magnify stage, before this one")
    mag = load_npz(job.magnified)
    with np.load(job.crop, allow_pickle=False) as crop:
        crop_landmarks = crop["landmarks"]                    # (T, 68, 2) float32, crop pixels
        apex = int(crop["apex_index"].item())             # stored as (1,) or ()
    crop_size = _npy_shape(job.crop, "frames")[1]
    frames, index = mag["frames"], mag["index"]               # (K, S, S, 3) uint8, (K,) int64
    wanted = [0, apex, len(crop_landmarks) - 1]               # onset, apex, offset in the crop clip
    rows = []
    for key, position in zip(KEYS, wanted):
        hits = np.flatnonzero(index == position)
        if len(hits) == 0:
            raise MerError(f"the magnified clip lacks the {key} frame (crop frame {position})", where,
                           "magnify the key frames (magnify.frames: keys) and rerun the magnify stage")
        rows.append(int(hits[0]))
    key_frames = frames[rows]                                 # (3, S, S, 3) uint8 RGB
    # crop pixel grid -> magnified pixel grid (pixel centres on integers, as in mer.face.align)
    ratio = frames.shape[1] / crop_size
    onset = (crop_landmarks[0].astype(np.float64) + 0.5) * ratio - 0.5  # (68, 2)

    graph = Graph(job.params.layout)
    with about(where):
        landmarks = key_landmarks(key_frames, onset, job.params.box_scales, job.params.landmarker,
                                  job.params.upscale)         # (S_aug, 3, 68, 2) float32
        nodes = node_features(landmarks, graph, job.params.normalise)  # (S_aug, 3, N, 2) float32
    save_npz(job.out / f"{job.clip_id}.npz",
             nodes=nodes,                                                   # (S_aug, 3, N, 2)
             raw=landmarks[:, :, graph.landmark_indices].astype(np.float32),  # (S_aug, 3, N, 2) px
             keys=np.array(KEYS),                                           # (3,) unicode
             index=np.array(wanted, dtype=np.int64),                        # (3,) crop positions
             box_scales=np.array(job.params.box_scales, dtype=np.float32))  # (S_aug,)
    return {"clip_id": job.clip_id, "status": "ok"}


def run(params: dict, dataset: str) -> Path:
    cfg = validate(params.get("graph"), GraphParams, "graph")
    cfg.check()
    src = artifacts.artifact_dir("magnify", dataset)
    index = artifacts.read_index(src, f"magnify@{dataset}")
    crop = artifacts.artifact_dir("crop", dataset)
    out = artifacts.artifact_dir("graph", dataset)
    with atomic_path(out, is_dir=True) as tmp:
        jobs = [_Job(c, src / f"{c}.npz", crop / f"{c}.npz", tmp, cfg) for c in artifacts.ok_clips(index)]
        done = {r["clip_id"]: r for r in map_clips(_graph_one, jobs, params.get("workers", 0),
                                                    desc=f"graph {dataset}")}
        artifacts.write_index(tmp, artifacts.carry_statuses(index, done))
    return out
