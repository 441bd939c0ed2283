"""mediapipe's 468-point face mesh as a 68-point iBUG landmarker (``crop.landmarker: mediapipe_68``).

Why a second back-end: dlib's shape predictor is the micro-expression literature's usual choice,
but it returns whole pixels and, starting from a mean shape in the box, jitters from frame to
frame; mediapipe's mesh (a CNN regressing 468 surface points) moves more smoothly.  On the first
second (24 frames) of ``WolfgangLanger_Pexels.mp4``, in one box as the crop stage runs, the mean
second difference of the points (jitter) is 0.009 inter-ocular distances for the mesh against 0.014
for dlib.  Mapping the mesh to the 68-point layout through one fixed table (:data:`MESH_TO_IBUG`)
keeps everything downstream backend-agnostic.

How one call works (stateless: every frame is an independent still image):

1. **A square crop around the box, with a margin** of ``margin`` box sides on each side (default
   0.5: the crop is twice the box).  Why: the box comes from another detector (dlib's HOG box is
   tight: brows to chin), while mediapipe runs its own face detector (BlazeFace) on the crop and
   crops its landmark model's input at 1.5x that detection; both need the whole head with some
   context around it.  On the 43 faces of dlib's example photos margins 0.25-0.75 find every face
   with the same error (0.057 inter-ocular distances); a crop equal to the box (margin 0) loses two
   faces and errs more (0.065), a crop three times the box (1.0) loses one.  The margin also lets
   the mesh follow a head that drifts within the crop stage's fixed onset box.  The crop is square
   because mediapipe maps its landmarks back correctly only for square inputs (it warns about
   non-square ones); pixels beyond the frame are black.  Restricting the mesh to the crop also
   makes it land on the face *in the box*, never on another face of the frame.
2. **Resized to ``size`` pixels (default 256).**  With the default margin the face box spans 128
   px and the landmark model's input region (1.5x mediapipe's own face box) about 192 px, the
   model's input size, so the model sees the face at about 1:1 whatever its size in the frame.
   For the small faces of dlib's photos (37-109 px) this lowers the error from 0.064 (crop at its
   own size) to 0.057 of the inter-ocular distance (128 px: 0.059, 192: 0.058, 384: 0.057); for the
   230 px face of the video it changes nothing (0.042 either way).
3. The mesh of every face in the crop (at most ``max_faces``); the one whose centre is nearest the
   box centre is kept, and it must lie inside the box, or the call raises
   :class:`~mer.face.landmarks.NoFaceError` (so ``crop.skip_no_face`` applies to it as to a missed
   detection).  Its 468 points go back to image coordinates and through the table to 68.

mediapipe runs in a helper process, one per process that uses it.  Why: mediapipe's calculator
graph starts threads, and a process forked after a graph was built in its parent (the crop stage
forks its workers, tests run serial then parallel) crashes on building its own graph
("malloc(): unaligned tcache chunk detected") or hangs on using the inherited one, and a worker
that dies this way hangs the whole pool.  The helper is a fresh interpreter (not a fork), started
on first use in each process, and fed crops through a pipe (about 0.2 MB per frame); no mediapipe
state ever lives in a process that forks.  It exits when its owner closes the pipe or dies.

Tracking mode (``static_image_mode=False``: the next frame's region from the last landmarks) is
not offered: on the first 96 frames of the same video, in the onset box, it smooths the points
only marginally (jitter 0.0146 against 0.0156), and a landmarker instance is shared by every
clip a worker processes, so state carried from one call to the next would make a clip's landmarks
depend on the clip processed before it.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import weakref
from pathlib import Path

import cv2
import numpy as np

from mer.errors import MerError
from mer.face.landmarks import NoFaceError, register_landmarker

N_MESH = 468

# The 68 iBUG 300-W points (0-based) as mesh vertices; a pair is averaged.  Where the choices come
# from: each group's vertices are taken from mediapipe's own named contours of the mesh
# (``mediapipe.python.solutions.face_mesh_connections``: FACEMESH_FACE_OVAL, *_EYEBROW, FACEMESH_NOSE,
# *_EYE, FACEMESH_LIPS) in iBUG order, then checked against dlib's 68 points on 142 frames of the
# two fixture videos (``WolfgangLanger_Pexels.mp4`` every 4th frame, ``single_face.mp4`` every 3rd):
# for each iBUG point the mesh vertex nearest to dlib's point on average.  Where the contour vertex
# and that nearest vertex differ, the departure is named below.  The choices follow the videos;
# dlib's example photos (the accuracy test) were checked too and agree with each departure.  The
# mesh calls the subject's right side "right", which is the image-left side; iBUG numbers from the
# image-left.  The table is mirror-symmetric (each point's mirror partner maps to the mirror
# vertex).  Figures below: mean error against dlib's points in inter-ocular distances, on the
# videos / on dlib's 43 example faces.
MESH_TO_IBUG: tuple[tuple[int, ...], ...] = (
    # jaw 0-16, from the image-left ear level round the chin (8) to the image-right: the least
    # consistent group.  iBUG's jaw is the face's 2-D outline, a silhouette whose place on the 3-D
    # surface moves with head yaw and with the annotator, while mesh vertices are fixed surface
    # points.  Face-oval vertices, except at 2-3 and 13-14 (cheek level, the face's widest part),
    # where the oval's vertices (132, 58 / 288, 361) sit off dlib's outline and the nearest
    # vertices are 177, 215 and their mirrors 435, 401 (point 2: 0.063 against 0.095 for 132;
    # point 3: 0.065 against 0.081 for 58).  Group: 0.066 / 0.090 (all-oval: 0.073 / 0.095).
    (127,), (234,), (177,), (215,), (172,), (136,), (149,), (148,), (152,),
    (377,), (378,), (365,), (397,), (435,), (401,), (454,), (356,),
    # brows 17-21 (image-left, outer to inner) and 22-26 (image-right, inner to outer), 10 points:
    # the mean of the brow's upper-edge vertex (70 63 105 66 107 / 336 296 334 293 300) and the
    # lower-edge vertex below it (46 53 52 65 55 / 285 295 282 283 276), the brow's middle line.
    # Group: 0.045 / 0.056; the upper edge alone 0.046 / 0.057, the lower edge 0.064 / 0.074.
    (70, 46), (63, 53), (105, 52), (66, 65), (107, 55),
    (336, 285), (296, 295), (334, 282), (293, 283), (300, 276),
    # nose 27-35, 9 points: the bridge from between the eyes to the tip (168 197 5 4, the mesh's
    # midline) and the lower edge from the image-left wing to the image-right one: 75 (wing base),
    # 97 (nostril), 2 (below the tip, where the septum meets the lip), 326, 305.  For the two wing
    # points FACEMESH_NOSE's 98/327 are farther from iBUG's than 75/305, nearest on both data
    # sets.  Group: 0.027 / 0.040 (with 98/327: 0.033 / 0.043).
    (168,), (197,), (5,), (4,), (75,), (97,), (2,), (326,), (305,),
    # eyes 36-41 (image-left: outer corner, upper lid x2, inner corner, lower lid x2) and 42-47
    # (image-right: inner corner, upper lid x2, outer corner, lower lid x2), 12 points: the eye
    # contours' corners (33 133 / 362 263) and the lid vertices at a third and two thirds of the
    # way (160 158 153 144 / 385 387 373 380).  Group: 0.026 / 0.043.  The lower-lid vertices
    # beside the outer corners (7 / 249) lie marginally nearer dlib's 36 / 45 (group 0.024 / 0.041);
    # the corners are kept, as the points' definition.
    (33,), (160,), (158,), (133,), (153,), (144,),
    (362,), (385,), (387,), (263,), (373,), (380,),
    # mouth 48-67, 20 points: outer lip from the image-left corner over the top (48-54) and back
    # under the bottom (55-59), then the inner lip likewise (60-67), all on FACEMESH_LIPS, each the
    # contour vertex nearest dlib's point.  Group: 0.038 / 0.047 (lower outer 55/59 on the next
    # vertices 321/91 instead of 405/181: 0.039 / 0.048).
    (61,), (39,), (37,), (0,), (267,), (269,), (291,), (405,), (314,), (17,), (84,), (181,),
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),
)


def _averaging_matrix(table: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """``(68, 468)`` float64 weights: row ``i`` averages the mesh vertices of iBUG point ``i``."""
    weights = np.zeros((len(table), N_MESH), dtype=np.float64)
    for row, vertices in enumerate(table):
        weights[row, list(vertices)] = 1.0 / len(vertices)
    return weights


MESH_TO_IBUG_WEIGHTS = _averaging_matrix(MESH_TO_IBUG)  # (68, 468)


def mesh_to_ibug(mesh: np.ndarray) -> np.ndarray:
    """``(..., 468, 2)`` mesh points -> ``(..., 68, 2)`` iBUG points through :data:`MESH_TO_IBUG`."""
    return np.einsum("kn,...nc->...kc", MESH_TO_IBUG_WEIGHTS, mesh)


def square_crop(image: np.ndarray, box: np.ndarray, margin: float,
                size: int) -> tuple[np.ndarray, int, int, int]:
    """The square ``(size, size, 3)`` uint8 RGB crop centred on ``box`` with ``margin`` box sides
    on every side, black beyond the frame; also its ``side`` in source pixels and its top-left
    source pixel ``x0, y0`` (source pixel centre = ``crop_continuous * side / size - 0.5 + x0``)."""
    left, top, right, bottom = (float(v) for v in box)
    side = max(1, round(max(right - left + 1, bottom - top + 1) * (1 + 2 * margin)))
    x0 = round((left + right) / 2 - (side - 1) / 2)
    y0 = round((top + bottom) / 2 - (side - 1) / 2)
    h, w = image.shape[:2]
    inner = image[max(y0, 0):min(y0 + side, h), max(x0, 0):min(x0 + side, w)]
    if inner.size == 0:
        raise ValueError(f"box {tuple(box)} lies outside the {w}x{h} image")
    if inner.ndim == 2:
        inner = cv2.cvtColor(inner, cv2.COLOR_GRAY2RGB)
    pads = (max(-y0, 0), max(y0 + side - h, 0), max(-x0, 0), max(x0 + side - w, 0))
    if any(pads):
        inner = cv2.copyMakeBorder(inner, *pads, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    crop = cv2.resize(inner, (size, size), interpolation=interpolation)  # (size, size, 3) uint8
    return np.ascontiguousarray(crop), side, x0, y0


@register_landmarker("mediapipe_68")
class MediapipeMesh68Landmarker:
    """mediapipe 0.10.21's face mesh (legacy ``solutions.face_mesh``, model bundled in the wheel,
    offline), static-image mode, mapped to the 68 iBUG points; see the module docstring.

    margin:          crop margin around the box, in box sides per side (0.5: crop = 2x the box).
    size:            side in pixels the crop is resized to before the mesh runs.
    max_faces:       faces the mesh may return per crop; the one nearest the box centre is kept.
    min_confidence:  mediapipe's face-detection score threshold (its default, 0.5).
    """

    def __init__(self, margin: float = 0.5, size: int = 256, max_faces: int = 3,
                 min_confidence: float = 0.5):
        if not 0.0 <= margin <= 2.0:
            raise ValueError(f"margin must be within 0..2 box sides, got {margin}")
        if not 64 <= size <= 1024:
            raise ValueError(f"size must be within 64..1024 pixels, got {size}")
        if not 1 <= max_faces <= 10:
            raise ValueError(f"max_faces must be within 1..10, got {max_faces}")
        if not 0.0 < min_confidence < 1.0:
            raise ValueError(f"min_confidence must be within (0, 1), got {min_confidence}")
        self.margin, self.size = float(margin), int(size)
        self._mesh_options = {"max_num_faces": int(max_faces),
                              "min_detection_confidence": float(min_confidence)}
        self._helper: _MeshHelper | None = None

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"expected a uint8 (H, W) or (H, W, 3) image, got {image.dtype} {image.shape}")
        crop, side, x0, y0 = square_crop(image, box, self.margin, self.size)
        faces = self.mesh(crop)  # (F, 468, 2) float32, normalised to the crop
        where = (f"mediapipe's face mesh, box ({', '.join(f'{v:.0f}' for v in box)}) of a "
                 f"{image.shape[1]}x{image.shape[0]} frame")
        if len(faces) == 0:
            raise NoFaceError("no face found inside the box", where,
                              "check that the frame shows the face (not occluded, blurred or turned "
                              "away); or use the dlib_68 landmarker, which always places its points")
        points = faces.astype(np.float64) * side - 0.5 + np.array([x0, y0])  # (F, 468, 2) image pixels
        left, top, right, bottom = (float(v) for v in box)
        centres = points.mean(axis=1)  # (F, 2)
        nearest = int(np.argmin(np.linalg.norm(centres - [(left + right) / 2, (top + bottom) / 2], axis=1)))
        cx, cy = centres[nearest]
        if not (left <= cx <= right and top <= cy <= bottom):
            raise NoFaceError(f"the face found nearest the box is centred at ({cx:.0f}, {cy:.0f}), "
                              "outside it", where, "the head has left the face box (the crop stage "
                              "keeps the onset frame's box for the whole clip): check the clip")
        return mesh_to_ibug(points[nearest]).astype(np.float32)  # (68, 2)

    def mesh(self, crop: np.ndarray) -> np.ndarray:
        """Raw mesh of an RGB uint8 image: ``(F, 468, 2)`` float32 ``(x, y)`` normalised to its
        width and height (0..1 across the image), one row per face found (``F`` may be 0)."""
        if self._helper is None or not self._helper.owned_here() or not self._helper.alive:
            self._helper = _MeshHelper(self._mesh_options)
        return self._helper.process(crop)

    def close(self) -> None:
        """Stop this process's helper (started again on the next call)."""
        if self._helper is not None and self._helper.owned_here():
            self._helper.close()
        self._helper = None


def _require_mediapipe() -> None:
    if importlib.util.find_spec("mediapipe") is None:
        raise MerError("the package mediapipe (the face mesh of crop.landmarker: mediapipe_68) is not "
                       "installed", fix="pip install mediapipe==0.10.21 (see requirements.txt)")


class _MeshHelper:
    """A helper process owning one mediapipe FaceMesh; requests and replies are pickles on its
    stdin/stdout, its stderr (mediapipe's log lines) goes to an anonymous temporary file that is
    quoted only when the helper fails."""

    def __init__(self, options: dict):
        _require_mediapipe()
        self._pid = os.getpid()
        self.alive = True  # False once it stopped: the next call starts a new one
        self._lock = threading.Lock()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the helper)
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (package_root, os.environ.get("PYTHONPATH")) if p))
        code = f"from mer.face.mediapipe_landmarks import _serve; _serve({options!r})"
        # a new session: Ctrl-C reaches the owner only; the helper then exits on the closed pipe
        self._proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log, env=env,
                                      start_new_session=True)
        self._finalizer = weakref.finalize(self, _stop, self._proc, self._pid)
        try:
            self._reply("starting mediapipe's face mesh")
        except MerError:
            self.close()
            raise

    def owned_here(self) -> bool:
        """False in a forked child: the helper belongs to (and talks only to) the parent."""
        return self._pid == os.getpid()

    def process(self, crop: np.ndarray) -> np.ndarray:
        with self._lock:
            try:
                pickle.dump(crop, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self._proc.stdin.flush()
            except BrokenPipeError:
                raise self._failure("running mediapipe's face mesh") from None
            return self._reply("running mediapipe's face mesh")

    def _reply(self, doing: str):
        try:
            status, value = pickle.load(self._proc.stdout)
        except (EOFError, pickle.UnpicklingError):
            raise self._failure(doing) from None
        if status != "ok":
            raise MerError(f"{doing} failed: {value}", "mediapipe helper process",
                           "check the mediapipe installation: pip install mediapipe==0.10.21")
        return value

    def _failure(self, doing: str) -> MerError:
        self.alive = False
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # alive but answering garbage
            self._proc.kill()
            self._proc.wait()
        self._log.seek(0)
        tail = self._log.read().decode(errors="replace").strip().splitlines()[-5:]
        return MerError(f"{doing}: the helper process stopped (exit status {self._proc.returncode}); "
                        f"its last messages: {' | '.join(tail) or 'none'}", "mediapipe helper process",
                        "check the mediapipe installation: pip install mediapipe==0.10.21")

    def close(self) -> None:
        self._finalizer()


def _stop(proc: subprocess.Popen, owner: int) -> None:
    """Close the helper's pipe (it exits on end of input) and reap it; only its owner may."""
    if os.getpid() != owner:
        return
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _serve(options: dict) -> None:
    """Body of the helper process: answer each pickled crop with ``("ok", (F, 468, 2) float32)``."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints of the native code go to the log, never into the reply stream
    requests = sys.stdin.buffer
    try:
        import mediapipe as mp

        mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=False,
                                               **options)
    except Exception as exc:  # noqa: BLE001 (any failure goes to the owner, which raises MerError)
        pickle.dump(("error", f"{type(exc).__name__}: {exc}"), replies)
        replies.flush()
        return
    pickle.dump(("ok", getattr(mp, "__version__", "?")), replies)
    replies.flush()
    while True:
        try:
            crop = pickle.load(requests)
        except EOFError:
            return
        try:
            found = mesh.process(crop).multi_face_landmarks or []
            faces = np.array([[(p.x, p.y) for p in face.landmark] for face in found],
                             dtype=np.float32).reshape(-1, N_MESH, 2)  # (F, 468, 2)
            reply = ("ok", faces)
        except Exception as exc:  # noqa: BLE001 (reported to the owner, which raises MerError)
            reply = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()
