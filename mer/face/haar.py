"""OpenCV's Viola-Jones Haar cascade as a face detector (``crop.detector: haar``).

Why offer it: the MAN paper (She et al.) detects faces with a Haar cascade, and OpenCV ships the
trained cascades with every wheel (``cv2.data.haarcascades``), so no model file has to be fetched.

Two things make its boxes usable by the 68-point landmarkers, which start from a mean shape
placed in the box (see :class:`mer.face.landmarks.Dlib68Landmarker`):

* **Framing.**  The cascade's square box is framed differently from dlib's HOG box (it reaches
  higher up the forehead).  On the 43 annotated faces of dlib's example photos (whose boxes are
  HOG-framed), the HOG box's centre lies 0.07 Haar widths below the Haar box's centre (median;
  left-right offset under 0.01) and its side is 0.90 Haar widths.  :meth:`HaarDetector.detect`
  returns boxes mapped by these measured numbers, so ``dlib_68`` can follow either detector.
* **Scores.**  ``detectMultiScale3`` reports each box's weight at the cascade's last stage: a
  confidence that ranks boxes like dlib's SVM score does (used only to break size ties).

The image is converted to gray and histogram-equalised before the scan, the usual Viola-Jones
set-up (on the 43 example faces, image doubled, it found 41 with equalisation and 39 without).
With the mapped boxes dlib_68 reproduces the annotated points of 40 of those faces (IoU >= 0.5
with the annotated box; median inter-ocular error 0.016; ``tests/test_haar.py``).
``upsample`` doubles the image that many times before scanning, as for ``dlib_hog``: the
cascade's smallest window is 24 px (``min_size`` is in original-image pixels).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mer.errors import MerError
from mer.face.landmarks import register_detector

CASCADE = "haarcascade_frontalface_default.xml"
# Haar box -> HOG-framed box, measured on dlib's 43 annotated example faces (medians)
HOG_SHIFT_X, HOG_SHIFT_Y, HOG_SCALE = 0.0, 0.07, 0.90


def cascade_path(name: str = CASCADE) -> Path:
    """A cascade file shipped inside the installed OpenCV wheel."""
    path = Path(cv2.data.haarcascades) / name
    if not path.is_file():
        raise MerError(f"OpenCV's Haar cascade {name} is missing", path,
                       "reinstall opencv-contrib-python (its wheel ships cv2/data/*.xml)")
    return path


def to_hog_framing(boxes: np.ndarray) -> np.ndarray:
    """Haar boxes ``(N, 4)`` (left, top, right, bottom, inclusive) -> boxes framed like dlib's."""
    side = boxes[:, 2] - boxes[:, 0] + 1                                 # (N,)
    cx = 0.5 * (boxes[:, 0] + boxes[:, 2]) + HOG_SHIFT_X * side
    cy = 0.5 * (boxes[:, 1] + boxes[:, 3]) + HOG_SHIFT_Y * side
    half = 0.5 * (HOG_SCALE * side - 1)
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)  # (N, 4)


@register_detector("haar")
class HaarDetector:
    """Viola-Jones frontal-face cascade (OpenCV), boxes mapped to dlib's HOG framing.

    ``scale_factor`` (image pyramid step) and ``min_neighbors`` (overlapping hits a face needs)
    are OpenCV's usual values; raising ``min_neighbors`` trades missed faces for fewer false ones.
    """

    def __init__(self, upsample: int = 0, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size: int = 30, cascade: str = CASCADE):
        self.upsample = int(upsample)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        path = cascade_path(cascade)
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise MerError("OpenCV could not load the Haar cascade", path,
                           "reinstall opencv-contrib-python")

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"expected a uint8 (H, W) or (H, W, 3) image, got {image.dtype} {image.shape}")
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)  # (H, W)
        gray = cv2.equalizeHist(gray)
        factor = 2 ** self.upsample
        if factor > 1:
            gray = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
        size = self.min_size * factor
        rects, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(size, size), outputRejectLevels=True)
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)          # (N, 4) x, y, w, h
        # pixel (i) of the enlarged image covers original [(i) / f, (i + 1) / f): map corners back
        boxes = np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2],
                          rects[:, 1] + rects[:, 3]], axis=1) / factor
        boxes[:, 2:] -= 1                                                     # inclusive right/bottom
        return to_hog_framing(boxes), np.asarray(weights, np.float64).reshape(-1)  # (N, 4), (N,)
