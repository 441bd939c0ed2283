"""Landmarks over a whole video: any detector + landmarker pair run on every frame.

Used to check a back-end on real footage (tracking must succeed on every frame of a video; a video
without a face must fail with one clear error naming the file and frame) and by ``mer predict``
on a user's clip.  The crop stage does not use it: inside one micro-expression clip it keeps the
onset's box (see :func:`mer.face.crop.crop_clip`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from mer.errors import MerError
from mer.face.landmarks import NoFaceError, get_detector, get_landmarker, largest_face


def read_video(path: str | Path, step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, (H, W, 3) uint8 RGB)`` for frames 0, ``step``, 2 ``step``, ... of a video file."""
    path = Path(path)
    if not path.is_file():
        raise MerError("video file is missing", path, "check the path")
    capture = cv2.VideoCapture(str(path))
    try:
        index = 0
        while True:
            if index % step == 0:
                ok, bgr = capture.read()
                if not ok:
                    break
                yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            elif not capture.grab():
                break
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise MerError("video cannot be decoded (no frame read)", path,
                       "re-encode it, e.g. ffmpeg -i in.mov -c:v libx264 out.mp4")


def track_frames(indexed_frames: Iterable[tuple[int, np.ndarray]], where: str | Path,
                 landmarker: str = "mediapipe_68", detector: str = "dlib_hog",
                 upsample: int = 0) -> np.ndarray:
    """68 landmarks on every frame: ``(T, 68, 2)`` float32 image coordinates.

    ``indexed_frames`` yields ``(frame number, (H, W, 3) uint8 RGB)`` (a list of images: pass
    ``enumerate(images)``); errors name ``where`` (the video) and the frame number.  The face is
    detected on every frame (the largest, as in the crop stage) and the landmarker runs inside
    that frame's box.  Why not one box for the whole video, as the crop stage does per clip: a
    video of seconds has head movement (the woman of ``WolfgangLanger_Pexels.mp4`` moves by a fifth
    of her face box within two seconds), and a landmarker kept in an old box degrades.  A frame
    without a face raises :class:`~mer.face.landmarks.NoFaceError`; so does a landmarker that finds no
    face in the box.
    """
    find = get_detector(detector, upsample=upsample)
    model = get_landmarker(landmarker)
    points = []
    for index, image in indexed_frames:
        at = f"{where} frame {index}"
        boxes, scores = find.detect(image)
        if len(boxes) == 0:
            raise NoFaceError(f"no face found (detector {detector}, upsample {upsample})", at,
                              "check that the video shows a frontal face on every frame; for faces "
                              "under ~80 px use upsample=1")
        try:
            points.append(model.landmarks(image, boxes[largest_face(boxes, scores)]))  # (68, 2)
        except MerError as exc:  # the landmarker does not know the frame: name it, keep the type
            raise type(exc)(exc.what, at if exc.where is None else f"{at}, {exc.where}",
                            exc.fix) from None
    if not points:
        raise MerError("no frames to track", where, "check the video and the frame step")
    return np.stack(points).astype(np.float32)  # (T, 68, 2)


def track_video(path: str | Path, landmarker: str = "mediapipe_68", detector: str = "dlib_hog",
                upsample: int = 0, step: int = 1) -> np.ndarray:
    """68 landmarks on frames 0, ``step``, 2 ``step``, ... of a video file: ``(T, 68, 2)``
    float32 image coordinates; see :func:`track_frames`.  Errors name the file and the frame
    number (0-based, counting every frame of the file)."""
    if step < 1:
        raise ValueError(f"step must be a positive number of frames, got {step}")
    return track_frames(read_video(path, step), Path(path), landmarker, detector, upsample)
