"""Rendering one clip: neutral face + AU motion + distractors -> frames.

Kept apart from any on-disk layout: :func:`build_scene` decides everything about a clip (its
neutral frame, its apex displacement field, the temporal profile, the distractors) and
:func:`render_frames` turns a scene into uint8 frames, which a layout writer (CASME II today,
SMIC-like later) stores however its corpus does.

Motion is a *backward* warp of the neutral frame: the pixel y of frame t shows the neutral content
at y - d_t(y), with d_t = profile(t) * D + blink(t) * B + drift(t) * head_mask.  D is the apex AU
field (:mod:`mer.synth.actions`, :mod:`mer.synth.fields`), so no pixel ever moves further than
the clip's amplitude, and nothing moves outside onset..offset except the distractors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np
from scipy.special import ndtri

from mer.synth.actions import au_motion, blink_motion, face_axes, face_width
from mer.synth.faces import Identity, SourceFace, jitter_pose, render_neutral
from mer.synth.fields import Field, Layer
from mer.synth.params import SynthParams
from mer.synth.plan import STREAM_RENDER, ClipSpec

#: reach of the blink's control points, fraction of the face width (eyelids are small)
BLINK_SIGMA = 0.04
#: blink duration range, seconds (a spontaneous blink takes about 100-150 ms)
BLINK_DURATION_S = (0.10, 0.15)
#: head drift and flicker frequency ranges, Hz
DRIFT_HZ = (0.5, 3.0)
FLICKER_HZ = (1.0, 10.0)


def temporal_profile(n_frames: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """(n_frames,) motion strength per frame (1-based numbers): 0 up to onset, raised-cosine
    rise to 1 at the apex, raised-cosine fall to 0 at the offset, 0 after.  Smooth (C1)."""
    n = np.arange(1, n_frames + 1, dtype=np.float64)
    p = np.zeros(n_frames)
    rise = (n > onset) & (n <= apex)
    fall = (n > apex) & (n < offset)
    p[rise] = 0.5 * (1 - np.cos(np.pi * (n[rise] - onset) / (apex - onset)))
    p[fall] = 0.5 * (1 + np.cos(np.pi * (n[fall] - apex) / (offset - apex)))
    return p


@dataclass
class ClipScene:
    """Everything needed to draw a clip's frames, decided up front (deterministic)."""

    neutral: np.ndarray  # (H, W, 3) float32 BGR
    landmarks: np.ndarray  # (68, 2) neutral-frame landmarks, float64
    face_width: float  # pixels
    amplitude_px: float  # the largest apex displacement of the moving points
    motion: Field  # apex AU field (pixels); the dense copy is ``apex_field``
    roi: tuple[slice, slice]  # rows, cols where anything can move
    apex_field: np.ndarray  # (h, w, 2) float32, D on the roi
    blink_field: np.ndarray | None  # (h, w, 2) float32, B on the roi
    head_mask: np.ndarray  # (h, w) float32 in [0, 1], where the head drift applies
    profile: np.ndarray  # (T,) AU strength per frame
    blink: np.ndarray  # (T,) blink strength per frame
    drift: np.ndarray  # (T, 2) head offset per frame, pixels
    gain: np.ndarray  # (T,) illumination gain per frame
    noise_sigma: float
    noise_seed: list[int]


def build_scene(source: SourceFace, ident: Identity, clip: ClipSpec,
                params: SynthParams) -> ClipScene:
    """Decide every pixel-independent thing about a clip, from its own random stream."""
    rng = np.random.default_rng(clip.seed(params.seed, STREAM_RENDER))
    pose = jitter_pose(ident.pose, params, rng)
    face = render_neutral(source, ident, pose, params)
    lm = face.landmarks
    fw = face_width(lm)
    amp_px = clip.amplitude * fw
    points, vectors = au_motion(clip.aus, lm, amp_px)
    motion = Field((Layer(points, vectors, params.au_spread * fw),))

    n = clip.n_frames
    t = np.arange(n) / params.fps
    blink = np.zeros(n)
    blink_layer = None
    has_blink = rng.random() < params.blink_prob  # always drawn: keeps the stream aligned
    length = max(3, int(round(rng.uniform(*BLINK_DURATION_S) * params.fps)))
    start = int(rng.integers(0, max(1, n - length) + 1))
    if has_blink and params.blink_closure > 0:
        k = np.arange(n) - start
        inside = (k >= 0) & (k <= length)
        blink[inside] = np.sin(np.pi * k[inside] / length) ** 2
        bp, bv = blink_motion(lm, params.blink_closure)
        blink_layer = Layer(bp, bv, BLINK_SIGMA * fw)

    drift = np.zeros((n, 2))
    for axis in range(2):
        for _ in range(2):
            f, phase = rng.uniform(*DRIFT_HZ), rng.uniform(0, 2 * math.pi)
            drift[:, axis] += 0.5 * params.drift_px * np.sin(2 * math.pi * f * t + phase)
    f, phase = rng.uniform(*FLICKER_HZ), rng.uniform(0, 2 * math.pi)
    gain = 1 + params.flicker * (0.7 * np.sin(2 * math.pi * f * t + phase)
                                 + 0.3 * rng.uniform(-1, 1, n))

    h, w = face.image.shape[:2]
    roi = _motion_roi(lm, points, params.au_spread * fw, (h, w))
    xs = np.arange(roi[1].start, roi[1].stop, dtype=np.float32)
    ys = np.arange(roi[0].start, roi[0].stop, dtype=np.float32)
    return ClipScene(
        neutral=face.image, landmarks=lm, face_width=fw, amplitude_px=amp_px, motion=motion,
        roi=roi, apex_field=motion.on_grid(xs, ys),
        blink_field=None if blink_layer is None else Field((blink_layer,)).on_grid(xs, ys),
        head_mask=_head_mask(lm, xs, ys),
        profile=temporal_profile(n, clip.onset, clip.apex, clip.offset),
        blink=blink, drift=drift, gain=gain, noise_sigma=params.noise_sigma,
        noise_seed=clip.seed(params.seed, STREAM_RENDER) + [1])


def _head_centre_axes(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    right, up = face_axes(lm)
    fw = face_width(lm)
    centre = 0.5 * (lm.min(0) + lm.max(0)) + 0.1 * fw * up
    return centre, right, up, 0.62 * fw, 0.8 * fw  # semi-axes across and along the face


def _motion_roi(lm: np.ndarray, points: np.ndarray, sigma: float,
                shape: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns covering the head (drift) and every AU control point's reach."""
    centre, right, up, a, b = _head_centre_axes(lm)
    # the ellipse's bounding box with its soft edge (mask < 0.002 there, so the drift does not
    # step by more than ~0.003 px where the roi ends)
    half = 1.4 * np.sqrt((a * right) ** 2 + (b * up) ** 2)
    lo = np.minimum(centre - half, np.vstack([points, lm]).min(0) - 4 * sigma)
    hi = np.maximum(centre + half, np.vstack([points, lm]).max(0) + 4 * sigma)
    h, w = shape
    x0, y0 = max(0, int(math.floor(lo[0]))), max(0, int(math.floor(lo[1])))
    x1, y1 = min(w, int(math.ceil(hi[0])) + 1), min(h, int(math.ceil(hi[1])) + 1)
    return slice(y0, y1), slice(x0, x1)


def _head_mask(lm: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Soft ellipse over the face: 1 inside, a smooth logistic edge, 0 on hair and background.

    The drift moves the face against a still background; at 1-2 px the stretch in between is
    invisible, and a small ellipse keeps the per-frame warp cheap.
    """
    centre, right, up, a, b = _head_centre_axes(lm)
    dx = xs[None, :] - centre[0]
    dy = ys[:, None] - centre[1]
    across = (dx * right[0] + dy * right[1]) / a
    along = (dx * up[0] + dy * up[1]) / b
    r = np.sqrt(across**2 + along**2)
    return (1 / (1 + np.exp((r - 1) / 0.06))).astype(np.float32)  # (h, w)


def _noise_table(sigma: float) -> np.ndarray:
    """(256,) int16: Gaussian quantiles at (k + 0.5) / 256, times sigma, rounded.

    A uniform random byte through this table is a Gaussian sample, quantised to whole gray levels
    as a sensor's output is; random bytes and a table lookup cost a fraction of drawing 0.9 M
    float normals per frame.
    """
    return np.rint(ndtri((np.arange(256) + 0.5) / 256) * sigma).astype(np.int16)


def render_frames(scene: ClipScene) -> Iterator[np.ndarray]:
    """Yield the clip's frames, (H, W, 3) uint8 BGR, in time order.

    Frames are uint8 from the warp on (the neutral face is rounded once), because every later
    step (gain, noise, JPEG) then runs on OpenCV's saturating 8-bit kernels.
    """
    rows, cols = scene.roi
    h, w = rows.stop - rows.start, cols.stop - cols.start
    gx = np.ascontiguousarray(np.broadcast_to(
        np.arange(cols.start, cols.stop, dtype=np.float32)[None, :], (h, w)))  # (h, w)
    gy = np.ascontiguousarray(np.broadcast_to(
        np.arange(rows.start, rows.stop, dtype=np.float32)[:, None], (h, w)))  # (h, w)
    fx, fy = (np.ascontiguousarray(scene.apex_field[..., k]) for k in range(2))  # (h, w) each
    if scene.blink_field is not None:
        bx, by = (np.ascontiguousarray(scene.blink_field[..., k]) for k in range(2))
    rng = np.random.default_rng(scene.noise_seed)
    table = _noise_table(scene.noise_sigma) if scene.noise_sigma > 0 else None
    neutral = np.rint(np.clip(scene.neutral, 0, 255)).astype(np.uint8)  # (H, W, 3)
    shape = neutral.shape
    warped = neutral.copy()  # only the roi ever changes
    for i in range(len(scene.profile)):
        p, b = float(scene.profile[i]), float(scene.blink[i])
        ddx, ddy = float(scene.drift[i, 0]), float(scene.drift[i, 1])
        if p == 0 and b == 0 and ddx == 0 and ddy == 0:
            warped[rows, cols] = neutral[rows, cols]
        else:
            mx = cv2.scaleAdd(scene.head_mask, -ddx, cv2.scaleAdd(fx, -p, gx))
            my = cv2.scaleAdd(scene.head_mask, -ddy, cv2.scaleAdd(fy, -p, gy))
            if b:
                mx = cv2.scaleAdd(bx, -b, mx)
                my = cv2.scaleAdd(by, -b, my)
            # bilinear is enough: the neutral face is an upscaled (smooth) image, and it is
            # three to four times faster than bicubic here
            warped[rows, cols] = cv2.remap(neutral, mx, my, cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_REFLECT101)  # (h, w, 3)
        gain = float(scene.gain[i])
        # convertScaleAbs rounds and saturates (values are never negative here)
        frame = warped if gain == 1 else cv2.convertScaleAbs(warped, alpha=gain)
        if table is not None:
            noise = cv2.LUT(np.frombuffer(rng.bytes(int(np.prod(shape))), np.uint8).reshape(shape),
                            table)  # (H, W, 3) int16
            frame = cv2.add(frame, noise, dtype=cv2.CV_8U)  # saturating
        yield frame.copy() if frame is warped else frame
