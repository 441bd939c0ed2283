"""Crop one clip: detect the face on the onset frame, align by the eyes, crop every frame.

The recipe (issue 2, section 4) and why:

* **Detect once, on the onset frame.**  Micro-expression subjects are asked to keep still, so the
  face box of the onset frame holds the face throughout the clip.  Detecting on every frame would
  cost ~40 ms per frame and make the box jitter by whole HOG cells, noise far larger than the
  motion we want to keep.  When several faces are found the largest box is taken (ties go to the
  higher detection score): the subject is the face nearest the camera.
* **One similarity transform per clip**, computed from the onset frame's eye centres and applied to
  every frame and to every frame's landmarks.  A per-frame alignment would re-register away (and
  add jitter to) the small facial motions the later stages measure; with one transform, whatever
  the face does relative to the onset frame stays in the crops.
* **68 landmarks on every frame, predicted inside the onset box.**  The shape predictor is cheap
  (a few ms) and follows small head drift within the box, so per-frame landmarks track the face.
  Limits: the box is not re-detected, so if the head moves by more than roughly a fifth of the
  box, turns out of plane, or leaves the box, the landmarks degrade (the predictor starts from the
  mean shape in the box); such clips (macro-expressions with head turns, long videos) need a
  tracker or per-frame detection, which a later detector back-end can add.

Output geometry: a square ``size`` crop with the eye centres ``eye_distance * size`` apart, at
height ``eye_y * size`` and centred left-right; the margin around the face follows from these two
numbers.  Measured in eye distances (ED) on the 43 human-annotated faces of dlib's examples, the
brows sit about 0.4 ED above the eye line, the chin 1.9 ED below it (2.1 ED at the 90th
percentile: open mouths), and a frontal jaw contour spans about 1.15 ED either side of the centre.
With the defaults (0.32, 0.30) the brows land near 17% of the side from the top (leaving forehead
for AU1/AU2), the chin near 91% (97% at the 90th percentile) and the jaw within 13%..87%
left-right: the whole face with a small margin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mer.config import check_keys
from mer.errors import MerError, about
from mer.face.align import (BORDERS, canonical_eyes, eye_centres, similarity_from_eyes,
                            transform_points, warp_image)
from mer.face.landmarks import (NoFaceError, detector_names, get_detector, get_landmarker,
                                landmarker_names, largest_face)


@dataclass(frozen=True)
class CropParams:
    """The ``crop`` section of params.yaml.

    detector:      face detector back-end (``dlib_hog``: dlib's HOG + linear SVM).
    landmarker:    68-point landmark back-end (``dlib_68``: dlib's 300-W shape predictor).
    upsample:      times the onset frame is doubled before detection.  0 (default) finds faces of
                   about 80 px and larger, e.g. a ~230 px face in 640x480 in ~40 ms; 1 reaches
                   ~40 px faces at ~4x the cost and with more false positives.
    size:          side of the square output crop in pixels.  224 is what mimicking and MoExt
                   consume; LBP-TOP (112) and MAN (120x140) resize from it later.
    eye_distance:  distance between the two eye centres in the crop, as a fraction of ``size``
                   (smaller = more margin around the face).
    eye_y:         height of the eye centres from the top of the crop, as a fraction of ``size``.
    border:        how pixels outside the source frame are filled: ``replicate`` (default: no
                   artificial edges), ``constant`` (black) or ``reflect``.
    skip_no_face:  read by the crop stage, not here: when true a clip without a face on its onset
                   frame is recorded as skipped instead of failing the stage.
    """

    detector: str = "dlib_hog"
    landmarker: str = "dlib_68"
    upsample: int = 0
    size: int = 224
    eye_distance: float = 0.32
    eye_y: float = 0.30
    border: str = "replicate"
    skip_no_face: bool = False

    @classmethod
    def from_dict(cls, cfg: Mapping | None) -> "CropParams":
        """Build from a params mapping; unknown keys and bad values raise :class:`MerError`."""
        params = cls(**check_keys(cfg, cls, "crop"))
        params.validate()
        return params

    def validate(self) -> None:
        """Check every value; raise one :class:`MerError` naming the key and its valid range."""
        def bad(key: str, rule: str) -> MerError:
            return MerError(f"invalid value {getattr(self, key)!r} for {key}", "params crop", rule)

        if self.detector not in detector_names():
            raise bad("detector", f"use one of: {', '.join(detector_names())}")
        if self.landmarker not in landmarker_names():
            raise bad("landmarker", f"use one of: {', '.join(landmarker_names())}")
        if not _is_int(self.upsample) or not 0 <= self.upsample <= 3:
            raise bad("upsample", "use an integer from 0 to 3")
        if not _is_int(self.size) or not 16 <= self.size <= 4096:
            raise bad("size", "use an integer number of pixels from 16 to 4096")
        if not _is_number(self.eye_distance) or not 0.05 <= self.eye_distance <= 0.9:
            raise bad("eye_distance", "use a fraction of the crop side between 0.05 and 0.9")
        if not _is_number(self.eye_y) or not 0.05 <= self.eye_y <= 0.95:
            raise bad("eye_y", "use a fraction of the crop side between 0.05 and 0.95")
        if self.border not in BORDERS:
            raise bad("border", f"use one of: {', '.join(BORDERS)}")
        if not isinstance(self.skip_no_face, bool):
            raise bad("skip_no_face", "use true or false")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def read_rgb(path: Path, clip_name: str) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (gray frames are expanded to three channels)."""
    path = Path(path)
    if not path.is_file():
        raise MerError("frame file is missing", f"{clip_name} ({path})",
                       "restore the frame, or fix the clip's onset/offset in the annotation sheet")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)  # (H, W, 3) uint8 BGR, or None
    if bgr is None:
        raise MerError("frame file cannot be read as an image", f"{clip_name} ({path})",
                       "replace the corrupt file, or list it in the dataset's fix table")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def find_face(image: np.ndarray, params: CropParams) -> tuple[np.ndarray, np.ndarray] | None:
    """The largest face in ``image``: its box ``(4,)`` float64 (left, top, right, bottom) and its
    landmarks ``(68, 2)`` float32 in image coordinates; ``None`` when no face is found."""
    boxes, scores = get_detector(params.detector, upsample=params.upsample).detect(image)
    if len(boxes) == 0:
        return None
    box = boxes[largest_face(boxes, scores)]  # (4,)
    return box, get_landmarker(params.landmarker).landmarks(image, box)


def crop_clip(frame_paths: list[Path], params: CropParams, clip_name: str) -> dict[str, np.ndarray]:
    """Align and crop the frames of one clip (``frame_paths[0]`` is the onset frame).

    Returns ``frames`` ``(T, S, S, 3)`` uint8 RGB crops, ``landmarks`` ``(T, 68, 2)`` float32 (x, y)
    in crop coordinates, ``transform`` ``(2, 3)`` float64 (original frame -> crop) and ``box``
    ``(4,)`` float64, the onset face box in original coordinates.  Raises :class:`MerError` naming
    the clip and the file when a frame is missing, unreadable or of another size than the onset
    frame, or when no face is found on the onset frame.
    """
    if len(frame_paths) == 0:
        raise MerError("clip has no frames", clip_name, "check the clip's onset and offset frames")
    paths = [Path(p) for p in frame_paths]
    onset = read_rgb(paths[0], clip_name)  # (H, W, 3) uint8
    with about(f"{clip_name} ({paths[0]})"):
        face = find_face(onset, params)
    if face is None:
        raise NoFaceError(
            "no face found on the onset frame", f"{clip_name} ({paths[0]})",
            "check that the frame shows a frontal face; for faces under ~80 px set crop.upsample: 1;"
            " or set crop.skip_no_face: true to record the clip as skipped")
    box, onset_landmarks = face
    matrix = similarity_from_eyes(eye_centres(onset_landmarks),
                                  canonical_eyes(params.size, params.eye_distance, params.eye_y))
    landmarker = get_landmarker(params.landmarker)

    size, n = params.size, len(paths)
    frames = np.empty((n, size, size, 3), dtype=np.uint8)  # (T, S, S, 3)
    landmarks = np.empty((n, 68, 2), dtype=np.float32)  # (T, 68, 2)
    for i, path in enumerate(paths):
        image = onset if i == 0 else read_rgb(path, clip_name)
        if image.shape != onset.shape:
            raise MerError(f"frame size {image.shape[1]}x{image.shape[0]} differs from the onset "
                           f"frame's {onset.shape[1]}x{onset.shape[0]}", f"{clip_name} ({path})",
                           "re-extract the clip's frames at one resolution")
        with about(f"{clip_name} ({path})"):   # a landmarker knows no clip: name the frame
            points = onset_landmarks if i == 0 else landmarker.landmarks(image, box)  # (68, 2)
        landmarks[i] = transform_points(points, matrix)
        frames[i] = warp_image(image, matrix, size, params.border)
    return {"frames": frames, "landmarks": landmarks, "transform": matrix, "box": box}
