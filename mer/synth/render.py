"""Rendering one clip: neutral face + AU motion + distractors -> frames.

Kept apart from any on-disk layout: :func:`build_scene` decides everything about a clip (its
neutral frame, its apex displacement field, the temporal profile, the distractors) and
:func:`render_frames` turns a scene into uint8 frames, which a layout writer (CASME II today,
SMIC-like later) stores however its corpus does.

Motion is a *backward* warp of the neutral frame: the pixel y of frame t shows the neutral content
at y - d_t(y), with d_t = profile(t) * D + blink(t) * B + drift(t) * head_mask.  D is the apex AU
field (:mod:`mer.synth.actions`, :mod:`mer.synth.fields`), so no pixel ever moves further than
the clip's amplitude, and nothing moves outside onset..offset except the distractors.

The camera (params ``gray``, ``gray_weights``, ``blur_sigma``, ``view_yaw_deg``,
``view_pitch_deg``, ``contrast``, ``gamma``, ``brightness``, ``noise_sigma``) is what
distinguishes two recordings of the same scene, such as SMIC's HS, VIS and NIR cameras.  Lens blur
and the monochrome sensor's spectral response are linear, so they are applied once to the neutral
frame (:func:`camera_view`) rather than to every frame: blurring then warping by a smooth
sub-pixel field equals warping then blurring up to the field's curvature, far below a gray level.
A camera off the face's axis sees the face plane in perspective (:func:`view_homography`), applied
to each frame.  The tone curve (:func:`tone_table`) acts on each frame after the flicker gain, and
sensor noise comes last, so a flatter tone curve lowers the signal against the noise as a dimmer,
flatter picture does.  With the defaults every camera step is skipped, and the base corpus's bytes
do not change.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

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
#: camera distance, in face widths, for the perspective of an off-axis view (a face ~15 cm wide
#: filmed from ~1 m)
VIEW_DISTANCE_FW = 6.0
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

    neutral: np.ndarray  # (H, W, 3) float32 BGR, or (H, W) for a gray camera (camera_view)
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
    tone: np.ndarray | None = None  # (256,) uint8 tone curve, None when it is the identity
    view: np.ndarray | None = None  # (3, 3) float64 frontal frame -> camera frame, None: frontal


def camera_view(image: np.ndarray, params: SynthParams) -> np.ndarray:
    """The neutral frame as the camera's optics and sensor see it (see module docstring).

    image: (H, W, 3) float32 BGR.  Returns (H, W, 3) float32, or (H, W) float32 for a gray
    camera (``gray_weights`` normalised to sum 1, so a gray surface keeps its level).
    """
    if params.blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), params.blur_sigma,
                                 borderType=cv2.BORDER_REPLICATE)
    if params.gray:
        w = np.asarray(params.gray_weights, np.float32)
        image = cv2.transform(image, (w / w.sum())[None, :])  # (H, W) float32
    return image


def view_homography(centre: np.ndarray, face_width: float, yaw_deg: float,
                    pitch_deg: float) -> np.ndarray | None:
    """(3, 3) homography from the frontal frame to the frame of a camera looking at the face
    plane (through ``centre``) from ``yaw_deg`` / ``pitch_deg`` off its axis, at
    :data:`VIEW_DISTANCE_FW` face widths; None for a frontal camera.

    A point at offset (x, y) from the centre, on the plane, is rotated with the plane (pitch
    about the horizontal axis, then yaw about the vertical one) and projected from distance D:
    u = D x' / (D + z'), v = D y' / (D + z'), scaled so that the centre keeps its size.  A plane
    seen by a pinhole camera is a homography, so four points fix it exactly.  The far side of the
    frame shrinks a little; :func:`render_frames` fills the strip it leaves by mirroring (a plane
    has no edge to show, and a zoom to hide the strip would change the face size by up to 20 %).
    """
    if yaw_deg == 0 and pitch_deg == 0:
        return None
    d = VIEW_DISTANCE_FW * face_width
    a, b = np.radians(yaw_deg), np.radians(pitch_deg)
    yaw = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    pitch = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * face_width  # (4, 2)
    p = np.c_[square, np.zeros(4)] @ (yaw @ pitch).T  # (4, 3) rotated plane points
    seen = d * p[:, :2] / (d + p[:, 2:3])  # (4, 2) perspective projection
    return cv2.getPerspectiveTransform((square + centre).astype(np.float32),
                                       (seen + centre).astype(np.float32))


def tone_table(params: SynthParams) -> np.ndarray | None:
    """(256,) uint8: v -> 255 ((v/255)^gamma - 0.5) contrast + 127.5 + brightness, rounded and
    clipped; None when contrast, gamma and brightness leave every level as it is."""
    if params.contrast == 1 and params.gamma == 1 and params.brightness == 0:
        return None
    v = np.arange(256) / 255.0
    out = 255.0 * (v**params.gamma - 0.5) * params.contrast + 127.5 + params.brightness
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def build_scene(source: SourceFace, ident: Identity, clip: ClipSpec,
                params: SynthParams) -> ClipScene:
    """Decide every pixel-independent thing about a clip, from its own random stream."""
    rng = np.random.default_rng(clip.seed(params.seed, STREAM_RENDER))
    pose = jitter_pose(ident.pose, params, rng)
    face = render_neutral(source, ident, pose, params)
    neutral = camera_view(face.image, params)
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

    h, w = neutral.shape[:2]
    roi = _motion_roi(lm, points, params.au_spread * fw, (h, w))
    xs = np.arange(roi[1].start, roi[1].stop, dtype=np.float32)
    ys = np.arange(roi[0].start, roi[0].stop, dtype=np.float32)
    return ClipScene(
        neutral=neutral, landmarks=lm, face_width=fw, amplitude_px=amp_px, motion=motion,
        roi=roi, apex_field=motion.on_grid(xs, ys),
        blink_field=None if blink_layer is None else Field((blink_layer,)).on_grid(xs, ys),
        head_mask=_head_mask(lm, xs, ys),
        profile=temporal_profile(n, clip.onset, clip.apex, clip.offset),
        blink=blink, drift=drift, gain=gain, noise_sigma=params.noise_sigma,
        # each camera has its own sensor noise (the modality's letters extend the seed; the
        # base corpus has none, and keeps its seed)
        noise_seed=clip.seed(params.seed, STREAM_RENDER) + [1, *params.modality.encode()],
        tone=tone_table(params),
        view=view_homography(0.5 * (lm.min(0) + lm.max(0)), fw, params.view_yaw_deg,
                             params.view_pitch_deg))


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
    """Yield the clip's frames, (H, W, 3) uint8 BGR (or (H, W) for a gray camera), in time order.

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
    neutral = np.rint(np.clip(scene.neutral, 0, 255)).astype(np.uint8)  # (H, W[, 3])
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
                                           borderMode=cv2.BORDER_REFLECT101)  # (h, w[, 3])
        gain = float(scene.gain[i])
        # convertScaleAbs rounds and saturates (values are never negative here)
        frame = warped if gain == 1 else cv2.convertScaleAbs(warped, alpha=gain)
        if scene.view is not None:
            frame = cv2.warpPerspective(frame, scene.view, frame.shape[1::-1],
                                        flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REFLECT101)  # (H, W[, 3])
        if scene.tone is not None:
            frame = cv2.LUT(frame, scene.tone)  # (H, W[, 3]) uint8
        if table is not None:
            noise = cv2.LUT(np.frombuffer(rng.bytes(int(np.prod(shape))), np.uint8).reshape(shape),
                            table)  # (H, W[, 3]) int16
            frame = cv2.add(frame, noise, dtype=cv2.CV_8U)  # saturating
        yield frame.copy() if frame is warped else frame
