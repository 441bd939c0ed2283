"""MAN's 120 x 140 face, its 12 x 14 grid of 10-pixel cells, and the three regions of interest.

The paper (She et al., Sec. III-A/B) resizes each detected face to 120 (wide) x 140 (high) pixels,
divides it into 12 x 14 cells of 10 x 10 pixels and cuts "eye + eyebrow" (left and right) and
"mouth" regions from that grid (its Fig. 3; the exact cells are not printed).  Our clips are
already aligned by the eyes (:mod:`mer.face.crop`): a square crop of side S with the eye centres
``eye_distance * S`` apart at height ``eye_y * S``.  So the face is a fixed window of that crop,
measured in eye distances (ED) from the midpoint between the eyes:

* one ED is 4.5 cells (45 pixels at the paper's 10-pixel cells) and the eye line runs along the
  4.2 cells from the top (y = 42): the face spans 1.33 ED either side of the centre line, 0.93 ED
  above the eye line and 2.18 ED below it, with the 6 : 7 aspect of 120 x 140, so resizing does not stretch
  the face.  The eyes sit at x = 37.5 and 82.5.
* Why these margins: on dlib's 43 annotated faces the brows sit ~0.4 ED above the eye line, the
  chin ~1.9 ED below it, the jaw ~1.15 ED either side (see :mod:`mer.face.crop`).  A tighter
  window (2.4 ED wide) lost the outer end of a brow on turned heads of the real video fixture;
  this one keeps forehead above raised brows (AU1, AU2) and the chin.  With the crop defaults
  (0.32, 0.30) the window is x in [0.073, 0.927] S, y in [0.001, 0.997] S: inside the crop.

The regions (rows and columns of 10-pixel cells, inclusive, 0-based; "left" = image-left, the
subject's right eye, as iBUG landmarks 36-41 and brow 17-21):

=================  =========  ========  =============  ===========================================
region             columns    rows      pixels (w x h)  why
=================  =========  ========  =============  ===========================================
left_eye           0 .. 6     0 .. 5    70 x 60        brow (AU1, 2, 4) to lower lid (AU7)
right_eye          5 .. 11    0 .. 5    70 x 60        mirror image; both share the glabella (AU4)
mouth              2 .. 9     6 .. 11   80 x 60        lip corners (AU12, 14, 15), lips (AU10, 25)
=================  =========  ========  =============  ===========================================

Measured on the real video fixture (WolfgangLanger_Pexels.mp4 in 1/3-second clips aligned by the
crop recipe; a woman showing surprise, smiles and frowns, turning her head a little): brow and
eye points span x = 12 .. 63 (image-left) and 61 .. 116 (image-right), y = 14 .. 52; mouth points
x = 32 .. 94, y = 72 .. 106.  ``tests/test_man.py`` checks that every brow, eye and mouth
landmark of every aligned frame lies in its region.  A ``cell`` other than 10 scales the whole layout (the quick profile's 5-pixel cells
give a 60 x 70 face); the regions stay the same cells.
"""

from __future__ import annotations

import cv2
import numpy as np

GRID_COLS, GRID_ROWS = 12, 14          # the paper's grid: 12 x 14 cells
PAPER_CELL = 10                        # pixels per cell in the paper (120 x 140 face)
ED_CELLS = 4.5                         # one eye distance = 4.5 cells (45 px at 10-pixel cells)
EYE_ROW = 4.2                          # the eye line, in cells from the top (y = 42 at 10 px)

# region -> (first column, last column, first row, last row), inclusive cell indices
ROIS: dict[str, tuple[int, int, int, int]] = {
    "left_eye": (0, 6, 0, 5),
    "right_eye": (5, 11, 0, 5),
    "mouth": (2, 9, 6, 11),
}
# iBUG landmark indices each region must contain (brow + eye of one side; the whole mouth)
ROI_LANDMARKS: dict[str, np.ndarray] = {
    "left_eye": np.r_[17:22, 36:42],
    "right_eye": np.r_[22:27, 42:48],
    "mouth": np.arange(48, 68),
}
BRANCHES = ("face", "left_eye", "right_eye", "mouth")   # the paper's four branches (eq. 2 order)


def face_size(cell: int = PAPER_CELL) -> tuple[int, int]:
    """``(width, height)`` of the face in pixels: 12 and 14 cells of ``cell`` pixels."""
    return GRID_COLS * cell, GRID_ROWS * cell


def roi_size(name: str, cell: int = PAPER_CELL) -> tuple[int, int]:
    """``(height, width)`` in pixels of branch ``name`` (``face`` or a region)."""
    if name == "face":
        return GRID_ROWS * cell, GRID_COLS * cell
    c0, c1, r0, r1 = ROIS[name]
    return (r1 - r0 + 1) * cell, (c1 - c0 + 1) * cell


def face_window(crop_size: int, eye_distance: float, eye_y: float) -> tuple[float, float, float, float]:
    """The face window in crop pixels, continuous coordinates (pixel i covers [i, i + 1]):
    ``(left, top, width, height)``."""
    cell = eye_distance * crop_size / ED_CELLS           # crop pixels per grid cell
    width, height = GRID_COLS * cell, GRID_ROWS * cell
    return 0.5 * crop_size - 0.5 * width, eye_y * crop_size - EYE_ROW * cell, width, height


def crop_to_face_matrix(crop_size: int, eye_distance: float, eye_y: float,
                        cell: int = PAPER_CELL) -> np.ndarray:
    """The ``(2, 3)`` affine map from crop pixel coordinates to face pixel coordinates.

    Pixel centres sit on integers in both images (as in :mod:`mer.face.align`), so a landmark
    mapped with :func:`to_face_points` lands on the same spot in the face from :func:`faces_from_crops`.
    """
    left, top, width, height = face_window(crop_size, eye_distance, eye_y)
    fw, fh = face_size(cell)
    sx, sy = fw / width, fh / height                     # equal: the window has the face's aspect
    return np.array([[sx, 0.0, sx * (0.5 - left) - 0.5],
                     [0.0, sy, sy * (0.5 - top) - 0.5]])


def to_face_points(points: np.ndarray, crop_size: int, eye_distance: float, eye_y: float,
                   cell: int = PAPER_CELL) -> np.ndarray:
    """Crop-pixel points ``(..., 2)`` (x, y) -> face-pixel points, float64."""
    m = crop_to_face_matrix(crop_size, eye_distance, eye_y, cell)
    return np.asarray(points, np.float64) @ m[:, :2].T + m[:, 2]


def faces_from_crops(frames: np.ndarray, eye_distance: float, eye_y: float,
                     cell: int = PAPER_CELL) -> np.ndarray:
    """Aligned square crops ``(T, S, S, 3)`` uint8 -> faces ``(T, 14 cell, 12 cell, 3)`` uint8.

    Bilinear warp at the paper's 10-pixel cells; smaller cells are then area-averaged from that
    face (a bilinear warp straight to a 60 x 70 face would alias the skin texture).
    """
    t, s = frames.shape[0], frames.shape[1]
    if frames.ndim != 4 or frames.shape[2] != s:
        raise ValueError(f"expected square crops (T, S, S, C), got {frames.shape}")
    big = max(cell, PAPER_CELL)
    m = crop_to_face_matrix(s, eye_distance, eye_y, big)
    size = face_size(big)
    out = np.empty((t, GRID_ROWS * cell, GRID_COLS * cell, frames.shape[3]), np.uint8)  # (T, h, w, 3)
    for i in range(t):
        face = cv2.warpAffine(frames[i], m, size, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)      # (14 big, 12 big, 3)
        if big != cell:
            face = cv2.resize(face, face_size(cell), interpolation=cv2.INTER_AREA)
        out[i] = face
    return out


def roi_slices(name: str, cell: int) -> tuple[slice, slice]:
    """(rows, columns) pixel slices of branch ``name`` in a face of ``cell``-pixel cells."""
    if name == "face":
        return slice(0, GRID_ROWS * cell), slice(0, GRID_COLS * cell)
    c0, c1, r0, r1 = ROIS[name]
    return slice(r0 * cell, (r1 + 1) * cell), slice(c0 * cell, (c1 + 1) * cell)


def cut_roi(faces: np.ndarray, name: str, cell: int) -> np.ndarray:
    """Branch ``name`` of faces ``(..., 14 cell, 12 cell, C)``: the face itself or a region's cells."""
    rows, cols = roi_slices(name, cell)
    return faces[..., rows, cols, :]


def cut_rois(faces: np.ndarray, cell: int, names: tuple[str, ...] = BRANCHES) -> dict[str, np.ndarray]:
    """Every branch's input from faces ``(T, 14 cell, 12 cell, C)``: name -> ``(T, h, w, C)`` views."""
    if faces.shape[-3:-1] != (GRID_ROWS * cell, GRID_COLS * cell):
        raise ValueError(f"faces of {faces.shape[-3:-1]} px do not match cells of {cell} px")
    return {name: cut_roi(faces, name, cell) for name in names}


def roi_contains(points: np.ndarray, name: str, cell: int = PAPER_CELL) -> np.ndarray:
    """Whether face-pixel points ``(..., 2)`` fall inside region ``name``'s pixels: ``(...)`` bool."""
    c0, c1, r0, r1 = ROIS[name]
    x, y = points[..., 0], points[..., 1]
    # pixel j covers [j - 0.5, j + 0.5] in centre-on-integer coordinates
    return ((x >= c0 * cell - 0.5) & (x <= (c1 + 1) * cell - 0.5)
            & (y >= r0 * cell - 0.5) & (y <= (r1 + 1) * cell - 0.5))
