"""A user's clip as a stream of frames: a video file (OpenCV) or a folder of image files.

Why a stream: a recording of minutes at full resolution does not fit in memory (472 frames of
640x360 RGB are 326 MB), so every pass over the clip reads one frame at a time and keeps only what
it needs.  Frame numbers are 0-based positions in the file (a folder's images in natural order:
``img2.png`` before ``img10.png``); they are what ``--onset/--apex/--offset`` refer to.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mer.errors import MerError
from mer.face.crop import read_rgb
from mer.face.track import read_video

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm",
                            ".pgm", ".jp2"})
_REENCODE = "re-encode it (e.g. ffmpeg -i in.mov -c:v libx264 out.mp4) or pass a folder of frames"


def _natural_key(path: Path) -> list:
    """``frame2`` before ``frame10``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


@dataclass(frozen=True)
class FrameSource:
    """Where frames come from, their rate and count.  ``files`` is set for a frame folder."""

    path: Path
    fps: float
    n_frames: int                 # exact for a folder; the container's count for a video
    files: tuple[Path, ...] = ()

    @property
    def is_folder(self) -> bool:
        return bool(self.files)

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(frame number, (H, W, 3) uint8 RGB)`` for frames ``start`` .. ``stop - 1``, one at a
        time (a video is decoded from its start: seeking by frame is inexact in many codecs)."""
        if self.files:
            for i in range(start, min(len(self.files), stop if stop is not None else len(self.files))):
                yield i, read_rgb(self.files[i], str(self.path))
            return
        reader = read_video(self.path)
        try:
            for index, image in reader:
                if stop is not None and index >= stop:
                    break
                if index >= start:
                    yield index, image
        finally:
            reader.close()        # releases the capture now, not when the generator is collected


def open_source(path: str | Path, fps: float | None = None) -> FrameSource:
    """Check ``path`` (a video file or a folder of images) and read its frame rate and length.

    ``fps`` overrides the file's rate (a folder has none, so it is required there).  Raises one
    :class:`MerError` naming the path for a missing path, a folder without images, a file OpenCV
    cannot decode, or no usable frame rate.
    """
    path = Path(path)
    if fps is not None and not fps > 0:
        raise MerError(f"frame rate {fps} is not positive", path, "pass --fps with frames per second, "
                       "e.g. --fps 30")
    if not path.exists():
        raise MerError("video file or frame folder not found", path, "check the path")
    if path.is_dir():
        files = tuple(sorted((p for p in path.iterdir()
                              if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key))
        if not files:
            raise MerError("the folder holds no image files "
                           f"({', '.join(sorted(IMAGE_SUFFIXES))})", path,
                           "point at a video file, or at a folder of the clip's frames")
        if fps is None:
            raise MerError("a folder of frames has no frame rate", path,
                           "pass --fps with the camera's frames per second, e.g. --fps 30")
        return FrameSource(path, float(fps), len(files), files)
    capture = cv2.VideoCapture(str(path))
    try:
        ok = capture.isOpened() and capture.read()[0]
        rate = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()
    if not ok:
        raise MerError("cannot be read as a video (OpenCV decodes no frame)", path, _REENCODE)
    if fps is None and not rate > 0:
        raise MerError("the video file states no frame rate", path,
                       "pass --fps with the camera's frames per second, e.g. --fps 30")
    return FrameSource(path, float(fps if fps is not None else rate), max(count, 0))
