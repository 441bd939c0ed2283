"""Validation of a corpus copy: every onset..offset frame present and decodable.

Speed against thoroughness (measured here on a 640x480 face JPEG, quality 90: full colour decode
with ``cv2.imread`` 1.7 ms, :func:`frame_defect` 0.9 ms, a header parse ~0.01 ms; the 17,138
onset..offset frames of CASME II thus take about 15 s on one core):

* A header check (size from the SOF marker) misses the commonest damage, a truncated file from an
  interrupted copy or download.  So every frame is decoded.
* libjpeg treats a truncated scan as a *warning*: it pads the missing rows with grey and
  ``cv2.imread`` returns an image (``cv2.imdecode`` of 4.11 happens to reject it; we rely on
  neither).  So a JPEG must also end with its end-of-image marker (FF D9); inside the
  entropy-coded data FF is always followed by 00 or a restart marker, so FF D9 near the end means
  the file is complete.
* Decoding at 1/8 scale (``IMREAD_REDUCED_GRAYSCALE_8``) still runs libjpeg's entropy decoder
  over every byte of the scan, which is where damage surfaces as an error, but skips the
  full-size inverse DCT and colour conversion: about half the cost of a full decode.
* All frames of a clip must decode to the same size (a frame from another recording is a defect).

Not caught: damage inside the scan that libjpeg tolerates with a "Corrupt JPEG data" warning and
decodes into wrong pixels; catching that needs a second, independent decoder per frame.  Clips run
in parallel (:func:`mer.parallel.map_clips`), one work item per clip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mer.errors import MerError

_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"
_JPEG_TAIL = 32          # bytes at the end of a JPEG searched for EOI (some writers pad after it)
_MAX_LISTED = 5          # names listed per clip before "and N more"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one clip: where (file, or sheet and row), what, and what to do."""

    clip_id: str
    where: str
    what: str
    fix: str

    def line(self) -> str:
        return f"{self.clip_id}: {self.where}: {self.what}. Fix: {self.fix}"


@dataclass(frozen=True)
class FrameCheck:
    """Work item: the frames of one clip (absolute folder, file names in time order)."""

    clip_id: str
    directory: str
    names: tuple[str, ...]


def frame_defect(path: Path) -> tuple[str | None, tuple[int, ...]]:
    """(what is wrong with an image file or None, its decoded (reduced) shape)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror})", ()
    if not data:
        return "is empty (0 bytes)", ()
    if data[:2] == _SOI and _EOI not in data[-_JPEG_TAIL:]:
        return "is truncated (the JPEG has no end-of-image marker)", ()
    level = cv2.getLogLevel()
    cv2.setLogLevel(0)  # our message replaces OpenCV's own log line for an undecodable file
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    finally:
        cv2.setLogLevel(level)
    if img is None or img.size == 0:
        return "cannot be decoded as an image", ()
    return None, img.shape  # (H/8, W/8) uint8


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def check_frames(job: FrameCheck) -> list[Problem]:
    """Problems with one clip's frames (missing folder, missing, unreadable or odd-sized files)."""
    folder = Path(job.directory)
    if not folder.is_dir():
        return [Problem(job.clip_id, str(folder), "clip folder not found",
                        "restore the folder from your copy of the corpus, or check the dataset's "
                        "root, frame folder and the sheet's subject/filename")]
    present = {entry.name for entry in os.scandir(folder)}
    missing = [n for n in job.names if n not in present]
    problems = []
    if missing:
        problems.append(Problem(
            job.clip_id, str(folder / missing[0]),
            f"{len(missing)} of {len(job.names)} onset..offset frames missing: {_names(missing)}",
            "restore the frames from your copy of the corpus, or correct onset/offset with a "
            "fix-table row (source and reason)"))
    bad: list[tuple[str, str]] = []
    first: tuple[str, tuple[int, ...]] | None = None
    for name in job.names:
        if name in missing:
            continue
        defect, shape = frame_defect(folder / name)
        if defect is None and first is not None and shape != first[1]:
            defect = f"has a different size from {first[0]}"
        if defect is not None:
            bad.append((name, defect))
        elif first is None:
            first = (name, shape)
    for name, defect in bad[:_MAX_LISTED]:
        problems.append(Problem(job.clip_id, str(folder / name), f"frame {defect}",
                                "replace the file with an intact copy from your corpus"))
    if len(bad) > _MAX_LISTED:
        problems.append(Problem(job.clip_id, str(folder), f"{len(bad) - _MAX_LISTED} more "
                                "frames are damaged", "replace them from your copy of the corpus"))
    return problems


def raise_problems(dataset: str, where: str | Path, problems: list[Problem],
                   order: list[str]) -> None:
    """One MerError listing every problem, grouped by clip in ``order`` (sheet order)."""
    if not problems:
        return
    rank = {cid: i for i, cid in enumerate(order)}
    problems = sorted(problems, key=lambda p: rank.get(p.clip_id, len(rank)))  # stable
    n_clips = len({p.clip_id for p in problems})
    lines = "\n".join(f"  - {p.line()}" for p in problems)
    raise MerError(f"{len(problems)} problem(s) in {n_clips} clip(s) of dataset '{dataset}':\n"
                   f"{lines}\n", where,
                   "apply each line's fix, then re-run ingest.  Annotation corrections go in the "
                   "fix table (mer/data/fixes.csv, or a table listed in "
                   f"data.{dataset}.extra_fixes) with their source and reason.")
