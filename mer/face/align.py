"""Eye-based similarity alignment: one transform per clip, applied to every frame and landmark.

Why a similarity (rotation + uniform scale + shift) from the two eye centres: the eyes are the
most stable landmarks under facial expression (brows, mouth and jaw move; eye centres barely do),
so aligning on them removes in-plane head rotation, distance to the camera and position without
distorting the expression itself.  A full affine or a per-landmark warp would bend the very
deformation micro-expression methods try to measure.

Coordinates: pixel centres sit on integers (OpenCV's and dlib's convention), so a point
transformed with :func:`transform_points` lands on the same spot in the image warped with
:func:`warp_image` by the same matrix.  Canonical positions are given as fractions of the crop
side ``S`` in the continuous frame where the crop spans ``[0, S]`` (pixel ``i`` covers
``[i, i + 1]``); the fraction ``f`` is pixel coordinate ``f * S - 0.5``, which keeps the two eyes
mirror-symmetric about the crop's vertical centre line.
"""

from __future__ import annotations

import cv2
import numpy as np

LEFT_EYE = slice(36, 42)   # image-left eye (the subject's right eye), 0-based iBUG indices
RIGHT_EYE = slice(42, 48)  # image-right eye (the subject's left eye)

BORDERS = {"replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT,
           "reflect": cv2.BORDER_REFLECT_101}


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """Mean of landmarks 36-41 and of 42-47: ``(2, 2)`` float64, rows image-left then image-right."""
    pts = np.asarray(landmarks, dtype=np.float64)  # (68, 2)
    return np.stack([pts[LEFT_EYE].mean(axis=0), pts[RIGHT_EYE].mean(axis=0)])


def canonical_eyes(size: int, eye_distance: float, eye_y: float) -> np.ndarray:
    """Where the eye centres go in a ``size`` x ``size`` crop: ``(2, 2)`` float64 pixel coordinates.

    ``eye_distance`` is the distance between the eye centres and ``eye_y`` their height from the top,
    both as fractions of ``size``; the eyes sit symmetrically about the vertical centre line.
    """
    xs = (0.5 + np.array([-0.5, 0.5]) * eye_distance) * size - 0.5  # (2,)
    y = eye_y * size - 0.5
    return np.stack([xs, np.full(2, y)], axis=1)


def similarity_from_eyes(src_eyes: np.ndarray, dst_eyes: np.ndarray) -> np.ndarray:
    """The similarity ``(2, 3)`` float64 matrix mapping the two ``src_eyes`` exactly onto ``dst_eyes``.

    Two point pairs fix a similarity uniquely; in complex numbers it is ``q = a * p + t`` with
    ``a = (q1 - q0) / (p1 - p0)`` (scale and rotation) and ``t = q0 - a * p0``.
    """
    p = np.asarray(src_eyes, dtype=np.float64) @ np.array([1.0, 1j])  # (2,) complex
    q = np.asarray(dst_eyes, dtype=np.float64) @ np.array([1.0, 1j])  # (2,) complex
    if p[1] == p[0]:
        raise ValueError("the two source eye centres coincide; no alignment is defined")
    a = (q[1] - q[0]) / (p[1] - p[0])
    t = q[0] - a * p[0]
    return np.array([[a.real, -a.imag, t.real], [a.imag, a.real, t.imag]], dtype=np.float64)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine matrix to points ``(..., 2)``; returns float64 of the same shape."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def warp_image(image: np.ndarray, matrix: np.ndarray, size: int, border: str = "replicate") -> np.ndarray:
    """Resample ``image`` ``(H, W[, 3])`` uint8 into a ``(size, size[, 3])`` uint8 crop.

    Bilinear interpolation; outside the source image the ``border`` rule fills the crop
    (``replicate`` by default, so no artificial black edge enters texture or motion features).
    """
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=BORDERS[border], borderValue=0)


def eye_line_angle(landmarks: np.ndarray) -> float:
    """Angle in degrees of the line from the image-left to the image-right eye centre (0 = level)."""
    (x0, y0), (x1, y1) = eye_centres(landmarks)
    return float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))
