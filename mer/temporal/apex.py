"""Apex spotting: the frame of a clip where the face has moved furthest from its onset.

Why: SMIC and CAS(ME)^3 Part C annotate onset and offset but no apex, and the ``midpoint`` policy
(middle frame) misses it by 7 frames (median) on SynthME.  The ``spotted`` policy estimates the
apex from the frames themselves, cheaply enough to run inside the crop stage on every clip.

The motion score of frame t (frames are aligned face crops, frame 0 = onset, last = offset):

1. gray, area-resized to ``size`` x ``size`` and Gaussian-blurred (``blur`` px at that size): the
   blur turns a displacement of a few pixels into a smooth change of intensity and damps sensor
   noise;
2. **head drift undone**: the crop stage aligns every frame with the onset frame's transform, so a
   slow head drift stays in the crops, and a 1 px drift of a textured face changes more pixels
   than a micro-expression does.  The drift d_t is the mean displacement of rigid landmarks (nose
   bridge, inner eye corners) from the onset; frame t and the onset meet half-way,
   f_t(x + d_t/2) against f_0(x - d_t/2), so both go through the same bilinear interpolation
   (a one-sided shift smooths frame t alone, and that difference grows with the drift).  Without
   landmarks the drift comes from phase correlation against the onset;
3. each frame's mean difference is removed (illumination flicker), and the score is the mean of
   the largest ``top`` fraction of |difference| inside the face (the convex hull of the onset
   landmarks; without landmarks, the box where the crop stage puts the face): an expression moves
   a small part of the face a lot, which a high quantile sees and a whole-face mean dilutes;
4. **blinks**: when the eyes' aspect ratio (from the eye landmarks) varies by more than
   ``blink_change`` of its largest value during the clip, a blink is assumed and both eye regions
   leave the score.  An expression narrows the eyes far less than a blink closes them, so clips
   without a blink keep their eye-region motion (AU6, AU7).

The apex is then the peak of the triangle (0 at onset, 1 at the apex, 0 at offset) that fits the
score best (:func:`triangle_fit`), not the argmax of a smoothed score: see there why.

Measured on the 260 SynthME crops, whose apex is annotated (:func:`evaluate_spotting`): median
absolute error 0 frames, mean 1.1, 90th percentile 2 (midpoint policy: median 7, mean 7.8);
clips without a blink: median 0, mean 0.5; the 40 with a blink: median 2, mean 4.7 (mean over all
clips 2.1 with the blink handling off).  Without landmarks: median 2, mean 7.4.  Alternatives
tried on the same clips: mean |difference| over the whole face without drift removal (median 10,
worse than the midpoint: drift dominates); displacement of the non-rigid landmarks alone, smoothed
(median 2, mean 3.4); this score smoothed over time then argmax (median 1, mean 2.0); TV-L1 flow
magnitude against the onset on 56 px frames (one clip in four: median 1, mean 3.9, ~8 s per clip).
Caveat: ``size``, ``blur``, ``top`` and ``blink_change`` were chosen on these same clips (the
choice held on each half of the subjects), and SynthME's expressions follow a raised-cosine rise
and fall: a raised-cosine template fitted no better than the triangle (mean 1.3 against 1.27 on
the score of that time), so the triangle, which assumes less, was kept.  Real corpora will be
harder (real blinks close fully, real drift is not only translation).

Cost: 11-17 ms for 100 frames of 224 x 224 (``benchmarks/bench_flow.py``, on the shared 2-core
machine while other jobs ran; about 40% of it is the gray conversion and resize of the full
frames), a few percent of what the crop stage spends on those frames' landmarks.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mer.errors import MerError
from mer.io import load_npz

__all__ = [
    "blink_suspected",
    "evaluate_spotting",
    "eye_aspect_ratio",
    "midpoint_index",
    "motion_score",
    "motion_score_reference",
    "shift_frames",
    "spot_apex",
    "triangle_fit",
]

#: 68-point indices that a facial expression barely moves: nose bridge (27-30), inner eye corners
RIGID_POINTS = np.array([27, 28, 29, 30, 39, 42])
#: the six landmarks of each eye, corners first (dlib/iBUG order)
EYES = (np.arange(36, 42), np.arange(42, 48))


def _check(frames: np.ndarray, landmarks: np.ndarray | None) -> None:
    if not (isinstance(frames, np.ndarray) and frames.ndim == 4 and frames.shape[-1] == 3
            and frames.dtype == np.uint8 and len(frames) >= 1):
        shape = getattr(frames, "shape", None)
        raise MerError(f"apex spotting needs (T, H, W, 3) uint8 RGB frames, got {shape}",
                       fix="pass the crop stage's 'frames' array")
    if landmarks is not None and (landmarks.shape != (len(frames), 68, 2)):
        raise MerError(f"apex spotting needs (T, 68, 2) landmarks matching {len(frames)} frames, "
                       f"got {landmarks.shape}", fix="pass the crop stage's 'landmarks' array, or None")


def _small_gray(frames: np.ndarray, size: int) -> np.ndarray:
    """Gray, area-resized frames. (T, H, W, 3) uint8 -> (T, size, size) float32

    When the crop side is a multiple of ``size`` the whole clip goes through OpenCV as one tall
    image: area pooling blocks then never straddle two frames, so this equals the per-frame loop
    (tested) in two calls instead of 2T.
    """
    t, h, w, _ = frames.shape
    gray = cv2.cvtColor(frames.reshape(t * h, w, 3), cv2.COLOR_RGB2GRAY)  # (T*H, W) uint8
    if h % size == 0 and w % size == 0:
        small = cv2.resize(gray, (size, t * size), interpolation=cv2.INTER_AREA)
        return small.reshape(t, size, size).astype(np.float32)
    return np.stack([cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA)
                     for g in gray.reshape(t, h, w)]).astype(np.float32)


def eye_aspect_ratio(landmarks: np.ndarray) -> np.ndarray:
    """Mean eye opening over width of both eyes. (T, 68, 2) -> (T,)"""
    ratios = []
    for eye in EYES:
        p = landmarks[:, eye]                                               # (T, 6, 2)
        opening = (np.linalg.norm(p[:, 1] - p[:, 5], axis=1)
                   + np.linalg.norm(p[:, 2] - p[:, 4], axis=1)) / 2
        ratios.append(opening / np.maximum(np.linalg.norm(p[:, 0] - p[:, 3], axis=1), 1e-6))
    return (ratios[0] + ratios[1]) / 2


def blink_suspected(landmarks: np.ndarray, blink_change: float = 0.2) -> bool:
    """True when the eye aspect ratio varies by more than ``blink_change`` of its largest value."""
    ear = eye_aspect_ratio(landmarks)
    return bool((ear.max() - ear.min()) > blink_change * max(float(ear.max()), 1e-6))


def _face_mask(landmarks: np.ndarray, size: int, scale: np.ndarray, drop_eyes: bool) -> np.ndarray:
    """The onset face (convex hull of its 68 points), optionally without the eyes. (size, size) bool"""
    p = landmarks * scale                                                   # (68, 2) at ``size``
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(p).astype(np.int32)), 1)
    if drop_eyes:
        for eye in EYES:
            centre = p[eye].mean(axis=0)
            width = float(np.linalg.norm(p[eye[0]] - p[eye[3]]))
            # an ellipse twice the eye's width, reaching the lids and the skin the lids pull
            cv2.ellipse(mask, (round(centre[0]), round(centre[1])),
                        (max(1, round(width)), max(1, round(0.7 * width))), 0, 0, 360, 0, -1)
    return mask.astype(bool)


def _central_box(size: int) -> np.ndarray:
    """Where the crop stage puts the face (brows ~17%, chin ~91% of the height, jaw within
    13%..87% of the width): the region scored when no landmarks are given. (size, size) bool"""
    mask = np.zeros((size, size), bool)
    mask[int(0.10 * size):int(0.95 * size), int(0.15 * size):int(0.85 * size)] = True
    return mask


def shift_frames(images: np.ndarray, d: np.ndarray,
                 window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Frame t of ``images`` sampled at x + d[t]: bilinear, borders replicated.

    images: (T, H, W), or one (H, W) image sampled T ways; d: (T, 2) x, y; window: output rows
    [r0, r1) and columns [c0, c1) (default: all).  -> (T, r1 - r0, c1 - c0) float32

    A shift is the same for every pixel of a frame: its integer part selects a window of the
    edge-padded frame and its fraction weighs four such windows.  Frames sharing an integer part
    (drifts are sub-pixel, so there are few) are blended together as one array, without any
    per-pixel index arithmetic.
    """
    t = len(d)
    r0, r1, c0, c1 = window if window is not None else (0, images.shape[-2], 0, images.shape[-1])
    whole = np.floor(d).astype(np.int64)                                    # (T, 2)
    frac = (d - whole).astype(np.float32)                                   # (T, 2)
    pad = int(np.abs(whole).max(initial=0)) + 1
    padded = np.pad(images, ((0, 0),) * (images.ndim - 2) + ((pad, pad), (pad, pad)), mode="edge")
    if padded.ndim == 2:
        padded = padded[None]
    out = np.empty((t, r1 - r0, c1 - c0), np.float32)
    for ix, iy in np.unique(whole, axis=0):
        sel = np.flatnonzero((whole[:, 0] == ix) & (whole[:, 1] == iy))
        src = padded if len(padded) == 1 else padded[sel]
        y, x = pad + iy + r0, pad + ix + c0
        ny, nx = r1 - r0, c1 - c0
        a = src[:, y:y + ny, x:x + nx]
        b = src[:, y:y + ny, x + 1:x + 1 + nx]
        c = src[:, y + 1:y + 1 + ny, x:x + nx]
        e = src[:, y + 1:y + 1 + ny, x + 1:x + 1 + nx]
        fx, fy = frac[sel, 0, None, None], frac[sel, 1, None, None]         # (G, 1, 1)
        top = a + (b - a) * fx
        out[sel] = top + (c + (e - c) * fx - top) * fy
    return out


def _drift(small: np.ndarray, landmarks: np.ndarray | None, scale: np.ndarray) -> np.ndarray:
    """Head displacement of every frame from the onset, in pixels at the small size. (T, 2) x, y"""
    if landmarks is not None:
        return (landmarks[:, RIGID_POINTS] - landmarks[:1, RIGID_POINTS]).mean(axis=1) * scale
    window = cv2.createHanningWindow(small.shape[1:][::-1], cv2.CV_32F)
    return np.array([cv2.phaseCorrelate(small[0], f, window)[0] for f in small])


def motion_score(frames: np.ndarray, landmarks: np.ndarray | None = None, *, size: int = 56,
                 blur: float = 1.5, top: float = 0.05, blink_change: float = 0.2) -> np.ndarray:
    """Motion against the onset of every frame (see the module docstring). (T,) float64"""
    _check(frames, landmarks)
    _, h, w, _ = frames.shape
    small = _small_gray(frames, size)                                       # (T, S, S) float32
    if blur > 0:
        small = np.stack([cv2.GaussianBlur(f, (0, 0), blur, borderType=cv2.BORDER_REPLICATE)
                          for f in small])
    scale = np.array([size / w, size / h])                                  # crop px -> small px
    if landmarks is not None:
        landmarks = landmarks.astype(np.float64)
        mask = _face_mask(landmarks[0], size, scale, blink_suspected(landmarks, blink_change))
    else:
        mask = _central_box(size)
    drift = _drift(small, landmarks, scale)                                 # (T, 2)
    # meet half-way, f_i(x + d_i/2) against f_0(x - d_i/2): both sides then go through the same
    # bilinear smoothing, which a one-sided shift would add to frame i alone
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    window = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)                 # the face's box
    inside = mask[window[0]:window[1], window[2]:window[3]]
    diff = (shift_frames(small, drift / 2, window)[:, inside]
            - shift_frames(small[0], -drift / 2, window)[:, inside])        # (T, n) face pixels
    diff -= diff.mean(axis=1, keepdims=True)            # flicker: a global gain/offset per frame
    diff = np.abs(diff)
    k = min(diff.shape[1] - 1, int(diff.shape[1] * (1 - top)))
    return np.partition(diff, k, axis=1)[:, k:].mean(axis=1).astype(np.float64)  # (T,)


def motion_score_reference(frames: np.ndarray, landmarks: np.ndarray | None = None, *,
                           size: int = 56, blur: float = 1.5, top: float = 0.05,
                           blink_change: float = 0.2) -> np.ndarray:
    """:func:`motion_score` step by step, frame by frame, in float64 numpy/scipy: slow, kept to pin
    the fast path down (tests, ``benchmarks/bench_flow.py``).  Needs the crop side to be a
    multiple of ``size``.  Gray is ITU-R BT.601 luma rounded to integers like OpenCV's; the blur
    is scipy's Gaussian with OpenCV's kernel radius (4 sigma) and replicated borders; the drift
    is undone by scipy's bilinear shift (OpenCV quantises the weights to 1/32 px)."""
    from scipy.ndimage import gaussian_filter, shift

    _check(frames, landmarks)
    t, h, w, _ = frames.shape
    if h % size or w % size:
        raise MerError(f"the reference needs a crop side divisible by {size}, got {h}x{w}")
    fy, fx = h // size, w // size
    luma = np.array([0.299, 0.587, 0.114])
    small = np.empty((t, size, size))
    for i, frame in enumerate(frames):
        gray = np.floor(frame.astype(np.float64) @ luma + 0.5)                      # (H, W)
        pooled = gray.reshape(size, fy, size, fx).mean(axis=(1, 3))                  # area
        pooled = np.floor(pooled + 0.5)                                   # OpenCV keeps uint8
        small[i] = gaussian_filter(pooled, blur, mode="nearest", truncate=4.0) if blur > 0 \
            else pooled
    scale = np.array([size / w, size / h])
    if landmarks is not None:
        landmarks = landmarks.astype(np.float64)
        mask = _face_mask(landmarks[0], size, scale, blink_suspected(landmarks, blink_change))
    else:
        mask = _central_box(size)
    drift = _drift(small.astype(np.float32), landmarks, scale)
    score = np.empty(t)
    for i in range(t):
        half = drift[i] / 2                                     # scipy shifts by -d to sample +d
        diff = (shift(small[i], (-half[1], -half[0]), order=1, mode="nearest")
                - shift(small[0], (half[1], half[0]), order=1, mode="nearest"))       # (S, S)
        values = diff[mask] - diff[mask].mean()
        ranked = np.sort(np.abs(values))
        k = min(len(ranked) - 1, int(len(ranked) * (1 - top)))
        score[i] = ranked[k:].mean()
    return score


def triangle_fit(score: np.ndarray) -> int:
    """The apex a of the triangle (0 at the onset, rising linearly to 1 at a, falling linearly to
    0 at the last frame) that correlates best with ``score`` (T,); ties: the earliest.

    Why a triangle and not "smooth, then argmax": near its peak the motion score is flat (the
    movement slows down, and a displacement larger than the blurred texture saturates the
    difference), so the argmax wanders with noise, and smoothing an asymmetric peak drags it
    towards the slower side (measured: +3 frames for a rise of 9 and a fall of 50).  The triangle
    is the plainest model of what the annotation promises: no motion at onset and offset, one
    peak between; fitting it uses every frame, not only those near the peak.  Least squares with
    a free offset and a positive scale, in closed form with running sums: O(T).
    """
    s = np.asarray(score, dtype=np.float64)
    n = len(s)
    if n < 3:
        return int(np.argmax(s))
    t = np.arange(n, dtype=np.float64)
    a = np.arange(1, n, dtype=np.float64)                      # candidate apexes 1..n-1
    c0 = np.concatenate([[0.0], np.cumsum(s - s.mean())])       # c0[k] = sum_{t<k} s'(t)
    c1 = np.concatenate([[0.0], np.cumsum(t * (s - s.mean()))])
    ai = a.astype(np.int64)
    width = n - 1 - a                                           # frames of the fall
    rise = c1[ai + 1] / a                                       # sum_{t<=a} t/a s'(t)
    fall_sum = (n - 1) * (c0[n] - c0[ai + 1]) - (c1[n] - c1[ai + 1])
    fall = np.divide(fall_sum, width, out=np.zeros_like(a), where=width > 0)
    cov = rise + fall                                           # sum_t p_a(t) s'(t)
    m = width - 1                                               # fall values j/width, j=0..m
    sum_p = (a + 1) / 2 + np.where(width > 0, m / 2, 0.0)
    sum_p2 = (a + 1) * (2 * a + 1) / (6 * a) + np.divide(m * (m + 1) * (2 * m + 1) / 6, width ** 2,
                                                         out=np.zeros_like(a), where=width > 0)
    var = np.maximum(sum_p2 - sum_p ** 2 / n, 1e-12)
    r2 = np.where(cov > 0, cov * cov / var, -1.0)               # the peak must rise, not dip
    return int(np.argmax(r2)) + 1


def spot_apex(frames: np.ndarray, landmarks: np.ndarray | None = None, *, size: int = 56,
              blur: float = 1.5, top: float = 0.05, blink_change: float = 0.2) -> int:
    """Index (0 = onset) of the frame that moved furthest from the onset frame.

    frames: (T, H, W, 3) uint8 RGB aligned face crops, onset first, offset last; landmarks:
    (T, 68, 2) in crop pixels, or None (drift then comes from phase correlation, no face or eye
    masks).  Keywords: ``size`` side of the working frames, ``blur`` Gaussian sigma at that size,
    ``top`` fraction of face pixels averaged, ``blink_change`` eye-aspect variation taken for a
    blink.  The apex is the :func:`triangle_fit` of the motion score.
    """
    score = motion_score(frames, landmarks, size=size, blur=blur, top=top,
                         blink_change=blink_change)
    return triangle_fit(score)


def midpoint_index(n_frames: int) -> int:
    """The ``midpoint`` policy's apex, as an index from the onset (ingest: onset + span // 2)."""
    return (n_frames - 1) // 2


def evaluate_spotting(crop_dir: str | Path, **spot_kwargs) -> dict:
    """Spotted and midpoint apexes against the crops' ``apex_index`` (the annotated apex).

    Reads every ``<crop_dir>/*.npz`` (``frames``, ``landmarks`` optional, ``apex_index``).  Returns
    ``clips`` and, in frames, ``spotted_median``/``spotted_mean`` and
    ``midpoint_median``/``midpoint_mean`` absolute errors, plus ``per_clip``: clip id ->
    (true, spotted, midpoint).
    """
    paths = sorted(Path(crop_dir).glob("*.npz"))
    if not paths:
        raise MerError("no crop artifacts (*.npz) to evaluate", crop_dir,
                       "run: dvc repro crop@<dataset> on a corpus with annotated apexes")
    per_clip: dict[str, tuple[int, int, int]] = {}
    for path in paths:
        data = load_npz(path)
        if "apex_index" not in data or "frames" not in data:
            raise MerError("not a crop artifact (needs 'frames' and 'apex_index')", path,
                           "point evaluate_spotting at data/interim/<dataset>/crop")
        frames = data["frames"]                                             # (T, S, S, 3) uint8
        spotted = spot_apex(frames, data.get("landmarks"), **spot_kwargs)
        true = int(np.asarray(data["apex_index"]).reshape(-1)[0])
        per_clip[path.stem] = (true, spotted, midpoint_index(len(frames)))
    table = np.array(list(per_clip.values()))                               # (n, 3)
    spotted_err = np.abs(table[:, 1] - table[:, 0])
    midpoint_err = np.abs(table[:, 2] - table[:, 0])
    return {"clips": len(table),
            "spotted_median": float(np.median(spotted_err)),
            "spotted_mean": float(np.mean(spotted_err)),
            "midpoint_median": float(np.median(midpoint_err)),
            "midpoint_mean": float(np.mean(midpoint_err)),
            "per_clip": per_clip}
