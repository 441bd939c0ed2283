"""Per-frame cost of the two 68-point landmarkers, each beside a straightforward reference.

The frame is scikit-image's astronaut (512x512 RGB, a real photograph shipped with the library, so
the benchmark runs without the shared fixtures), with dlib's HOG box of her face (88 px) given, as
the crop stage gives the onset box to every frame.  Detection is not timed.

* ``landmarks_dlib``: our :class:`~mer.face.landmarks.Dlib68Landmarker` against the bare dlib call
  (``predictor(image, rectangle)``, then the points copied out one ``part(i)`` at a time, the usual
  pattern).  Same model, same result: the ratio is our wrapper's overhead, which should stay small.
* ``landmarks_mediapipe``: our ``mediapipe_68`` (crop around the box resized to 256 px, the mesh in
  a helper process, the 68-point table) against mediapipe used directly: one in-process
  ``FaceMesh(static_image_mode=True)`` run on the whole frame, mapped by the same table.  The
  reference is what a direct port would do; ours pays for the pipe to the helper (which makes it
  safe under forked workers) and gains a face seen at its model's resolution.  They agree to a few
  hundredths of the inter-ocular distance, not exactly: the mesh sees the face at another scale.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from benchmarks.bench_kernels import Case
from mer.face.landmarks import dlib_model_path, get_detector, get_landmarker, largest_face
from mer.face.mediapipe_landmarks import mesh_to_ibug


@lru_cache(maxsize=1)
def _frame_and_box() -> tuple[np.ndarray, np.ndarray]:
    import skimage.data

    image = np.ascontiguousarray(skimage.data.astronaut())  # (512, 512, 3) uint8 RGB
    boxes, scores = get_detector("dlib_hog").detect(image)
    return image, boxes[largest_face(boxes, scores)]  # (4,) left, top, right, bottom


def _args() -> tuple:
    return _frame_and_box()


def _dlib_ours(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    return get_landmarker("dlib_68").landmarks(image, box)  # (68, 2)


@lru_cache(maxsize=1)
def _bare_predictor():
    import dlib

    return dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat"))), dlib.rectangle


def _dlib_reference(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    predictor, rectangle = _bare_predictor()
    shape = predictor(image, rectangle(*(round(float(v)) for v in box)))
    points = np.zeros((68, 2), dtype=np.float32)
    for i in range(68):
        points[i] = (shape.part(i).x, shape.part(i).y)
    return points


def _mediapipe_ours(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    return get_landmarker("mediapipe_68").landmarks(image, box)  # (68, 2)


@lru_cache(maxsize=1)
def _in_process_mesh():
    import mediapipe as mp

    return mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)


def _mediapipe_reference(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    faces = _in_process_mesh().process(image).multi_face_landmarks
    assert faces, "mediapipe found no face on the whole frame"
    h, w = image.shape[:2]
    mesh = np.array([(p.x * w - 0.5, p.y * h - 0.5) for p in faces[0].landmark])  # (468, 2)
    return mesh_to_ibug(mesh).astype(np.float32)  # (68, 2)


def _agree_identical(ours: np.ndarray, ref: np.ndarray) -> str:
    diff = float(np.abs(ours - ref).max())
    assert ours.shape == ref.shape == (68, 2) and diff == 0.0, diff
    return f"max |diff| {diff:g} px, 68 points identical"


def _agree_nme(ours: np.ndarray, ref: np.ndarray) -> str:
    per_point = np.linalg.norm(ours - ref, axis=1)  # (68,)
    error = float(per_point.mean() / np.linalg.norm(ref[36] - ref[45]))
    assert ours.shape == ref.shape == (68, 2) and error < 0.05, error
    return f"max |diff| {per_point.max():.2f} px, mean {error:.3f} inter-ocular distances"


CASES = [
    Case("landmarks_dlib", "dlib 68 points in a given 88 px box of a 512x512 frame, vs the bare "
         "dlib call + per-part copy", _args, _dlib_ours, _dlib_reference, _agree_identical,
         min_ratio=0.9),
    Case("landmarks_mediapipe", "mediapipe_68 in a given 88 px box of a 512x512 frame (crop -> "
         "256 px, helper process), vs FaceMesh in-process on the whole frame", _args,
         _mediapipe_ours, _mediapipe_reference, _agree_nme),  # no target: see the report
]
