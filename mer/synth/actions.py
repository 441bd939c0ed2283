"""Facial action units as control-point displacements around the 68 dlib landmarks.

Each AU moves a few control points: dlib landmarks plus a handful of *virtual* points on skin that
dlib does not mark (forehead, cheeks, nasolabial folds, dimples, chin, glabella), placed from the
landmarks.  The directions follow FACS (Ekman & Friesen): AU12 pulls the lip corners up and out,
AU4 lowers the brows and draws them together, AU17 pushes the chin boss and lower lip up, and so on.

Directions are written in face units for the subject's LEFT side (image right) and the midline,
as (out, up): ``out`` points away from the face midline, ``up`` towards the forehead.  The right
side is the mirror image.  A one-sided variant ('L12', 'R4') moves only that side, and the midline
points at half strength, as CASME II codes asymmetric movements.  L/R are the subject's sides, as
in FACS: 'L' is the side that appears on the image's right.

The displacement vectors of a combination are summed per point and scaled so that the largest one
equals the clip's amplitude (see :func:`au_motion`); :mod:`mer.synth.fields` turns them into a
dense field that never exceeds it.
"""

from __future__ import annotations

import numpy as np

from mer.synth.emotions import au_number, split_aus

# --- dlib's 68-point layout --------------------------------------------------------------------
JAW = list(range(17))
BROW_R, BROW_L = list(range(17, 22)), list(range(22, 27))
NOSE_BRIDGE, NOSTRILS = list(range(27, 31)), list(range(31, 36))
EYE_R, EYE_L = list(range(36, 42)), list(range(42, 48))
MOUTH = list(range(48, 68))

# virtual control points (indices after the 68 landmarks)
FOREHEAD_MID, FOREHEAD_L, FOREHEAD_R = 68, 69, 70
CHEEK_L, CHEEK_R = 71, 72
NASOLABIAL_L, NASOLABIAL_R = 73, 74
DIMPLE_L, DIMPLE_R = 75, 76
CHIN, GLABELLA = 77, 78
N_CONTROL = 79

_PAIRS = ([(i, 16 - i) for i in range(8)]
          + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35), (32, 34),
             (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
             (48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65),
             (FOREHEAD_R, FOREHEAD_L), (CHEEK_R, CHEEK_L), (NASOLABIAL_R, NASOLABIAL_L),
             (DIMPLE_R, DIMPLE_L)])
#: control point -> its mirror image (midline points map to themselves)
MIRROR = np.arange(N_CONTROL)
for _r, _l in _PAIRS:
    MIRROR[_r], MIRROR[_l] = _l, _r
MIDLINE = frozenset(int(i) for i in np.flatnonzero(MIRROR == np.arange(N_CONTROL)))
LEFT = frozenset(_l for _, _l in _PAIRS)

#: AU -> {left-side or midline control point: (out, up)}; FACS semantics, unit-free
AU_TABLE: dict[int, dict[int, tuple[float, float]]] = {
    1: {22: (0, 1), 23: (0, .7), 24: (0, .35), FOREHEAD_MID: (0, .6), FOREHEAD_L: (0, .3)},
    2: {26: (0, 1), 25: (.05, .85), 24: (0, .5), FOREHEAD_L: (0, .5)},
    4: {22: (-.6, -.8), 23: (-.45, -.7), 24: (-.25, -.5), 25: (0, -.3), GLABELLA: (0, -.4),
        FOREHEAD_MID: (0, -.3)},
    5: {43: (0, 1), 44: (0, 1), 42: (0, .3), 45: (0, .3)},
    6: {CHEEK_L: (.1, 1), 46: (0, .45), 47: (0, .35), 45: (.1, .3), NASOLABIAL_L: (0, .3)},
    7: {46: (0, 1), 47: (0, 1), 43: (0, -.35), 44: (0, -.35), 45: (-.2, 0), 42: (.1, 0)},
    9: {35: (0, 1), 34: (0, .8), 33: (0, .6), 27: (0, -.3), 22: (0, -.35), NASOLABIAL_L: (0, .6),
        51: (0, .3), 52: (0, .3)},
    10: {51: (0, 1), 52: (0, 1), 53: (.1, .7), 62: (0, .8), 63: (0, .8), NASOLABIAL_L: (.1, .5)},
    12: {54: (.8, .6), 53: (.35, .35), 55: (.45, .4), 64: (.6, .45), CHEEK_L: (.1, .35),
         DIMPLE_L: (.55, .45)},
    14: {54: (.45, .1), 64: (.4, .05), 55: (.2, 0), DIMPLE_L: (-.8, 0)},
    15: {54: (.1, -1), 55: (.05, -.6), 64: (.05, -.6), 56: (0, -.3), DIMPLE_L: (0, -.5)},
    17: {CHIN: (0, 1), 57: (0, .7), 56: (0, .6), 66: (0, .5), 65: (0, .45), 8: (0, .4), 9: (0, .3)},
    18: {54: (-1, 0), 53: (-.5, 0), 55: (-.5, 0), 64: (-.7, 0), 52: (-.3, .1), 56: (-.3, -.1)},
    20: {54: (1, -.2), 55: (.55, -.1), 53: (.5, 0), 64: (.7, -.1), DIMPLE_L: (.6, -.1)},
    24: {51: (0, -.6), 62: (0, -.8), 52: (0, -.5), 63: (0, -.7), 57: (0, .6), 66: (0, .8),
         56: (0, .5), 65: (0, .7)},
    25: {57: (0, -1), 66: (0, -1), 56: (0, -.8), 65: (0, -.8), 62: (0, .25), 63: (0, .2),
         CHIN: (0, -.5)},
}
#: a blink (AU45), used as a distractor: upper lids down, lower lids slightly up; scaled by the
#: eye's opening rather than by the clip amplitude
BLINK = {43: (0, -1), 44: (0, -1), 42: (0, -.25), 45: (0, -.25), 46: (0, .15), 47: (0, .15)}

SUPPORTED_AUS = frozenset(AU_TABLE)


def face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (image coordinates) of the face's right-ward and up-ward directions.

    ``right`` runs from the subject's right eye to the left eye (image left to right for a
    frontal face); ``up`` is perpendicular, towards the forehead (negative image y when upright).
    """
    right = landmarks[EYE_L].mean(0) - landmarks[EYE_R].mean(0)
    right = right / np.linalg.norm(right)
    up = np.array([right[1], -right[0]])
    return right, up


def face_width(landmarks: np.ndarray) -> float:
    """Jaw width (dlib points 0 and 16), the unit of every amplitude."""
    return float(np.linalg.norm(landmarks[16] - landmarks[0]))


def control_points(landmarks: np.ndarray) -> np.ndarray:
    """The 68 landmarks plus the virtual skin points: (79, 2) float64."""
    p = np.asarray(landmarks, np.float64)
    right, up = face_axes(p)
    fw = face_width(p)
    brow_mid = 0.5 * (p[21] + p[22])
    extra = {
        FOREHEAD_MID: brow_mid + 0.14 * fw * up,
        FOREHEAD_L: p[24] + 0.11 * fw * up,
        FOREHEAD_R: p[19] + 0.11 * fw * up,
        CHEEK_L: 0.5 * (p[46] + p[54]) + 0.06 * fw * right,
        CHEEK_R: 0.5 * (p[41] + p[48]) - 0.06 * fw * right,
        NASOLABIAL_L: 0.5 * (p[35] + p[54]),
        NASOLABIAL_R: 0.5 * (p[31] + p[48]),
        DIMPLE_L: p[54] + 0.07 * fw * right,
        DIMPLE_R: p[48] - 0.07 * fw * right,
        CHIN: 0.5 * (p[57] + p[8]),
        GLABELLA: (p[21] + p[22] + p[27]) / 3,
    }
    out = np.empty((N_CONTROL, 2))
    out[:68] = p
    for i, xy in extra.items():
        out[i] = xy
    return out


def parse_token(token: str) -> tuple[int, str]:
    """'L10' -> (10, 'L'); '12' -> (12, 'B') (both sides)."""
    side = token[0].upper() if token[:1].upper() in ("L", "R") else "B"
    au = au_number(token)
    if au not in SUPPORTED_AUS:
        raise ValueError(f"AU{au} is not modelled (supported: {sorted(SUPPORTED_AUS)})")
    return au, side


def _side_vectors(table: dict[int, tuple[float, float]], side: str) -> np.ndarray:
    """(79, 2) (out, up) per control point for one AU table applied to ``side`` ('L','R','B')."""
    vec = np.zeros((N_CONTROL, 2))
    for point, (out, up) in table.items():
        if point in MIDLINE:
            vec[point] += (0.0, up) if side == "B" else (0.0, 0.5 * up)
            continue
        if side in ("B", "L"):
            vec[point] += (out, up)
        if side in ("B", "R"):
            vec[MIRROR[point]] += (out, up)
    return vec


def _to_image(vec_face: np.ndarray, right: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(out, up) face units -> image (dx, dy); ``out`` flips sign on the subject's right side."""
    sign = np.ones(N_CONTROL)
    sign[[i for i in range(N_CONTROL) if i not in LEFT and i not in MIDLINE]] = -1.0
    return (vec_face[:, 0:1] * sign[:, None]) * right + vec_face[:, 1:2] * up


def au_motion(aus: str, landmarks: np.ndarray,
              amplitude_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Control points and apex displacements (pixels) of an AU combination such as '4+L10'.

    The per-point vectors of all AUs are summed, then scaled together so that the longest is
    exactly ``amplitude_px``; the relative pattern of the combination is kept.  Returns only the
    moving points: points (K, 2), vectors (K, 2).
    """
    right, up = face_axes(landmarks)
    vec = np.zeros((N_CONTROL, 2))
    for token in split_aus(aus):
        au, side = parse_token(token)
        vec += _side_vectors(AU_TABLE[au], side)
    img = _to_image(vec, right, up)
    norms = np.linalg.norm(img, axis=1)
    moving = norms > 1e-9
    if not moving.any():
        raise ValueError(f"AU combination {aus!r} moves nothing")
    img *= amplitude_px / norms.max()
    return control_points(landmarks)[moving], img[moving]


def blink_motion(landmarks: np.ndarray, closure: float) -> tuple[np.ndarray, np.ndarray]:
    """Control points and displacements (pixels) of a blink closing ``closure`` of each eye."""
    right, up = face_axes(landmarks)
    vec = _to_image(_side_vectors(BLINK, "B"), right, up)
    # scale each eye by its own opening (upper lid to lower lid)
    for upper, lower in (([37, 38], [41, 40]), ([43, 44], [47, 46])):
        opening = float(np.linalg.norm(landmarks[upper] - landmarks[lower], axis=1).mean())
        eye = EYE_R if upper[0] < 42 else EYE_L
        vec[eye] *= closure * opening
    moving = np.linalg.norm(vec, axis=1) > 1e-9
    return control_points(landmarks)[moving], vec[moving]
