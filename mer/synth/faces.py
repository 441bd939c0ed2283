"""Source faces and the pseudo-subjects made from them.

Every identity starts from real face pixels (astronaut by default, plus any images listed in
params ``faces``).  dlib finds the source face's 68 landmarks once; a pseudo-subject is then a
landmark-driven geometric morph of that face (jaw width, lower-face length, eye/nose/mouth size,
eye and mouth position), a skin-tone change inside the face, a lighting change over the frame and
a head pose (in-plane rotation, scale, position).  All of it is one backward warp from the source
image into the frame, so the source is resampled once (bicubic) per clip.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from mer.errors import MerError
from mer.synth.actions import (
    BROW_L,
    BROW_R,
    EYE_L,
    EYE_R,
    JAW,
    MOUTH,
    NOSTRILS,
    face_axes,
    face_width,
)
from mer.synth.fields import Field, Layer
from mer.synth.params import SynthParams

ASTRONAUT = "astronaut"  # skimage.data.astronaut(), public domain, shipped with scikit-image

#: detector score above which a second detection counts as a real face (astronaut's mission patch
#: scores about 0.1; real faces in dlib's example photos score 0.8 and more)
SECOND_FACE_SCORE = 0.5

#: reach of the coarse (face-shape, feature-position) and fine (feature-size) morph layers,
#: fractions of the face width: coarse moves whole regions, fine resizes one feature only
MORPH_SIGMA_COARSE = 0.12
MORPH_SIGMA_FINE = 0.035


def shape_predictor_path() -> Path:
    """dlib's 68-point model, as shipped by the face_recognition_models package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MerError("the face_recognition_models package is not installed",
                       fix="pip install -r requirements.txt")
    models = Path(spec.submodule_search_locations[0]) / "models"
    path = models / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise MerError("dlib's 68-point model is missing", where=path,
                       fix="reinstall face_recognition_models")
    return path


@lru_cache(maxsize=1)
def _dlib_models():
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(shape_predictor_path()))


@lru_cache(maxsize=8)
def load_source_image(ref: str) -> np.ndarray:
    """The source picture as (H, W, 3) uint8 BGR (OpenCV's order, used throughout)."""
    if ref == ASTRONAUT:
        from skimage import data

        return np.ascontiguousarray(data.astronaut()[..., ::-1])
    if not Path(ref).is_file():
        raise MerError("face image not found", where=ref,
                       fix="fix the path in params synthesize.faces (relative to the repo root)")
    img = cv2.imread(ref, cv2.IMREAD_COLOR)
    if img is None:
        raise MerError("cannot read the face image", where=ref, fix="use a PNG or JPEG file")
    return img


@dataclass(frozen=True)
class SourceFace:
    """A source picture and its face's 68 dlib landmarks (source pixels, x then y)."""

    ref: str
    landmarks: np.ndarray  # (68, 2) float64


def find_source(ref: str) -> SourceFace:
    """Detect the one face of ``ref`` and its 68 landmarks (upsampling once for small faces)."""
    detector, predictor = _dlib_models()
    rgb = np.ascontiguousarray(load_source_image(ref)[..., ::-1])
    rects, scores, _ = detector.run(rgb, 1, 0.0)
    if len(rects) == 0:
        raise MerError("dlib finds no face in this image", where=ref,
                       fix="use a frontal, well-lit face at least 80 px wide, or drop it from "
                           "params synthesize.faces")
    confident = [r for r, score in zip(rects, scores) if score >= SECOND_FACE_SCORE]
    if len(confident) > 1:
        raise MerError(f"dlib finds {len(confident)} faces in this image; a source must show one",
                       where=ref, fix="crop the image to a single face")
    best = rects[int(np.argmax(scores))]
    shape = predictor(rgb, best)
    pts = np.array([(p.x, p.y) for p in shape.parts()], np.float64)  # (68, 2)
    return SourceFace(ref, pts)


def source_refs(params: SynthParams) -> list[str]:
    return [ASTRONAUT, *params.faces]


# --- identities ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pose:
    """Head pose in the frame: roll (degrees, image-clockwise), face-size factor, centre offset."""

    rotation_deg: float
    scale: float
    offset: tuple[float, float]


@dataclass(frozen=True)
class Identity:
    """What makes a pseudo-subject: which source, which morph, tone, light and pose."""

    source: int
    pose: Pose
    jaw_width: float  # relative change of the jaw width
    face_length: float  # relative change of the face below the nose
    eye_size: float  # relative size changes of single features
    nose_size: float
    mouth_size: float
    eye_height: float  # shifts, fractions of the face width (up positive)
    eye_spacing: float
    mouth_height: float
    brightness: float  # skin gain
    warmth: float  # red up / blue down inside the face
    light_gradient: float  # gain change per face width across the frame
    light_angle: float  # radians, direction the light gets brighter
    exposure: float  # global gain


def draw_identity(params: SynthParams, source: int, rng: np.random.Generator) -> Identity:
    """One pseudo-subject with every trait uniform in its params range."""
    def sym(r: float) -> float:
        return float(rng.uniform(-r, r))

    pose = Pose(sym(params.rotation_deg), 1 + sym(params.scale_range),
                (sym(params.position_px), sym(params.position_px)))
    return Identity(
        source=source, pose=pose,
        jaw_width=sym(params.morph_shape), face_length=sym(params.morph_shape),
        eye_size=sym(params.morph_size), nose_size=sym(params.morph_size),
        mouth_size=sym(params.morph_size), eye_height=sym(params.morph_shift),
        eye_spacing=sym(params.morph_shift / 2), mouth_height=sym(params.morph_shift),
        brightness=1 + sym(params.skin_tone), warmth=sym(params.skin_tone / 2),
        light_gradient=sym(params.illumination), light_angle=float(rng.uniform(0, 2 * math.pi)),
        exposure=1 + sym(params.illumination / 2),
    )


def jitter_pose(pose: Pose, params: SynthParams, rng: np.random.Generator) -> Pose:
    """A clip's pose: the subject's, moved by a fraction ``pose_jitter`` of each range, clamped."""
    j = params.pose_jitter
    rot = pose.rotation_deg + rng.uniform(-j, j) * params.rotation_deg
    scale = pose.scale + rng.uniform(-j, j) * params.scale_range
    off = [o + rng.uniform(-j, j) * params.position_px for o in pose.offset]
    return Pose(float(np.clip(rot, -params.rotation_deg, params.rotation_deg)),
                float(np.clip(scale, 1 - params.scale_range, 1 + params.scale_range)),
                tuple(float(np.clip(o, -params.position_px, params.position_px)) for o in off))


# --- rendering the neutral face ----------------------------------------------------------------
@dataclass
class NeutralFace:
    """A subject's still face in a frame, and where its landmarks are."""

    image: np.ndarray  # (H, W, 3) float32 BGR, 0..255
    landmarks: np.ndarray  # (68, 2) float64, frame pixels


def _morph_offsets(src: np.ndarray, ident: Identity) -> tuple[np.ndarray, np.ndarray]:
    """Coarse and fine landmark offsets of the morph, in source pixels: two (68, 2) arrays."""
    right, up = face_axes(src)
    fw = face_width(src)
    centre = 0.5 * (src.min(0) + src.max(0))
    q = np.stack([(src - centre) @ right, (src - centre) @ up], axis=1)  # (68, 2) face units
    coarse = np.zeros_like(q)
    fine = np.zeros_like(q)
    coarse[JAW, 0] += q[JAW, 0] * ident.jaw_width
    lower = JAW[3:14] + MOUTH
    coarse[lower, 1] += (q[lower, 1] - q[33, 1]) * ident.face_length
    eyes_brows = BROW_R + BROW_L + EYE_R + EYE_L
    coarse[eyes_brows, 1] += ident.eye_height * fw
    coarse[BROW_L + EYE_L, 0] += ident.eye_spacing * fw
    coarse[BROW_R + EYE_R, 0] -= ident.eye_spacing * fw
    coarse[MOUTH, 1] += ident.mouth_height * fw
    for eye in (EYE_R, EYE_L):
        fine[eye] += (q[eye] - q[eye].mean(0)) * ident.eye_size
    fine[NOSTRILS, 0] += (q[NOSTRILS, 0] - q[33, 0]) * ident.nose_size
    fine[MOUTH] += (q[MOUTH] - q[MOUTH].mean(0)) * ident.mouth_size

    def to_image(d: np.ndarray) -> np.ndarray:
        return d[:, :1] * right + d[:, 1:] * up

    return to_image(coarse), to_image(fine)


def _pose_matrix(src: np.ndarray, pose: Pose, params: SynthParams) -> np.ndarray:
    """2x3 similarity taking source pixels to frame pixels (face centred, sized, rolled)."""
    right, _ = face_axes(src)
    k = params.face_width_px * pose.scale / face_width(src)
    # rotate by the wanted roll minus the source's own roll
    phi = math.radians(pose.rotation_deg) - math.atan2(right[1], right[0])
    rot = k * np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
    centre = 0.5 * (src.min(0) + src.max(0))
    w, h = params.frame_size
    target = np.array([w / 2 + pose.offset[0], h / 2 + pose.offset[1]])
    return np.hstack([rot, (target - rot @ centre)[:, None]])


def render_neutral(source: SourceFace, ident: Identity, pose: Pose,
                   params: SynthParams) -> NeutralFace:
    """Warp the source face into a frame as this identity, in this pose (see module docstring)."""
    src = source.landmarks
    coarse, fine = _morph_offsets(src, ident)
    m = _pose_matrix(src, pose, params)
    lin, t = m[:, :2], m[:, 2]
    fw_frame = params.face_width_px * pose.scale
    targets = (src + coarse + fine) @ lin.T + t  # (68, 2) where each landmark should land
    morph = Field((Layer(targets, coarse @ lin.T, MORPH_SIGMA_COARSE * fw_frame),
                   Layer(targets, fine @ lin.T, MORPH_SIGMA_FINE * fw_frame)))

    # The source->frame map is smooth, so it is computed on a grid twice as coarse and
    # upsampled; the coarse samples sit where cv2.resize expects them, so the upsampling is exact
    # at every sample and linear in between (error ~0.03 px for the finest morph layer).
    w, h = params.frame_size
    wc, hc = (w + 1) // 2, (h + 1) // 2
    xs = ((np.arange(wc) + 0.5) * (w / wc) - 0.5).astype(np.float32)
    ys = ((np.arange(hc) + 0.5) * (h / hc) - 0.5).astype(np.float32)
    d = morph.on_grid(xs, ys)  # (hc, wc, 2)
    zx = xs[None, :] - d[..., 0]  # (hc, wc) position before the morph, frame pixels
    zy = ys[:, None] - d[..., 1]
    inv = np.linalg.inv(lin)
    map_x = (inv[0, 0] * (zx - t[0]) + inv[0, 1] * (zy - t[1])).astype(np.float32)
    map_y = (inv[1, 0] * (zx - t[0]) + inv[1, 1] * (zy - t[1])).astype(np.float32)
    map_x = cv2.resize(map_x, (w, h), interpolation=cv2.INTER_LINEAR)  # (H, W)
    map_y = cv2.resize(map_y, (w, h), interpolation=cv2.INTER_LINEAR)
    # replicate the source's border: a mirrored border could show a second face
    img = cv2.remap(load_source_image(source.ref).astype(np.float32), map_x, map_y,
                    cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)  # (H, W, 3) float32
    landmarks = morph.follow(src @ lin.T + t)
    img = _skin_tone(img, landmarks, ident)
    img = _lighting(img, landmarks, ident)
    np.clip(img, 0, 255, out=img)
    return NeutralFace(img, landmarks)


def face_region(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Soft (H, W) float32 mask of the face: jaw line up to a forehead above the brows."""
    _, up = face_axes(landmarks)
    fw = face_width(landmarks)
    forehead = landmarks[17:27] + 0.18 * fw * up
    hull = cv2.convexHull(np.vstack([landmarks[JAW], forehead]).round().astype(np.int32))
    mask = np.zeros(shape, np.float32)
    cv2.fillConvexPoly(mask, hull, 1.0)
    return cv2.GaussianBlur(mask, (0, 0), 0.05 * fw)


def _skin_tone(img: np.ndarray, landmarks: np.ndarray, ident: Identity) -> np.ndarray:
    """Lighter/darker and warmer/cooler skin inside the face, blended out at its edge."""
    mask = face_region(landmarks, img.shape[:2])[..., None]  # (H, W, 1)
    bgr = np.array([1 - ident.warmth, 1.0, 1 + ident.warmth], np.float32)
    gains = ident.brightness * bgr
    return img * (1 + mask * (gains - 1))


def _lighting(img: np.ndarray, landmarks: np.ndarray, ident: Identity) -> np.ndarray:
    """Exposure and a linear light gradient across the frame (a lamp off to one side)."""
    h, w = img.shape[:2]
    fw = face_width(landmarks)
    cx, cy = landmarks.mean(0)
    nx, ny = math.cos(ident.light_angle), math.sin(ident.light_angle)
    ramp = ((np.arange(w, dtype=np.float32)[None, :] - cx) * nx
            + (np.arange(h, dtype=np.float32)[:, None] - cy) * ny) / fw  # (H, W)
    gain = ident.exposure * np.clip(1 + ident.light_gradient * ramp, 0.4, 1.6)
    return img * gain[..., None]
