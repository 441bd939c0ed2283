"""Writing a corpus the way CASME II ships: the frame tree and the coding sheet.

The tree is ``CASME2_RAW_selected/subNN/EPxx_yy/img<N>.jpg`` (frames 1-based, unpadded) and the
sheet copies the columns and cell types of CASME II's ``CASME2-coding-20140508.xlsx``: Subject as
text ('01'), Filename, an empty column, OnsetFrame, ApexFrame, OffsetFrame (ints), an empty
column, Action Units (an int for a single two-sided AU such as 12, text otherwise: '4+L10'),
Estimated Emotion (lower case).  The same corpus adapter therefore reads SynthME and the real
corpus.

openpyxl stamps the save time into the workbook properties and into every zip entry; both are
pinned here so that the same clips give the same bytes.
"""

from __future__ import annotations

import datetime
import io
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

from mer.errors import MerError
from mer.synth.plan import ClipSpec

RAW_DIR = "CASME2_RAW_selected"
SHEET_NAME = "CASME2-coding-synthme.xlsx"
HEADER: tuple[str | None, ...] = ("Subject", "Filename", None, "OnsetFrame", "ApexFrame",
                                  "OffsetFrame", None, "Action Units", "Estimated Emotion")
#: the fixed time written into the sheet (CASME II's release date), instead of "now"
SHEET_TIME = datetime.datetime(2014, 5, 8, 0, 0, 0)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def subject_dir_name(subject: int) -> str:
    return f"sub{subject:02d}"


def clip_dir(root: Path, clip: ClipSpec) -> Path:
    return Path(root) / RAW_DIR / subject_dir_name(clip.subject) / clip.name


def frame_name(number: int) -> str:
    """CASME II's frame file name: 1-based, unpadded."""
    return f"img{number}.jpg"


def write_frames(frames: Iterable[np.ndarray], folder: Path, quality: int) -> int:
    """Write (H, W, 3) uint8 BGR frames as img1.jpg, img2.jpg, ...; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for n, frame in enumerate(frames, start=1):
        path = folder / frame_name(n)
        if not cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
            raise MerError("cannot write the frame", where=path,
                           fix="check disk space and permissions")
    return n


def au_cell(aus: str) -> int | str:
    """The sheet's Action Units cell: an int when it is one two-sided AU, as CASME II stores it."""
    return int(aus) if aus.isdigit() else aus


def sheet_rows(clips: Sequence[ClipSpec]) -> list[tuple]:
    rows = []
    for c in sorted(clips, key=lambda c: (c.subject, c.name)):
        rows.append((f"{c.subject:02d}", c.name, None, c.onset, c.apex, c.offset, None,
                     au_cell(c.aus), c.emotion))
    return rows


def write_sheet(path: Path, clips: Sequence[ClipSpec]) -> Path:
    """The coding sheet (see module docstring); deterministic bytes."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(list(HEADER))
    for row in sheet_rows(clips):
        ws.append(list(row))
    for cell in ws["A"][1:]:
        cell.number_format = "@"  # Subject is text, as in CASME II
    wb.create_sheet("Sheet2")
    wb.create_sheet("Sheet3")
    wb.properties.creator = "mer.synth (SynthME)"
    wb.properties.created = wb.properties.modified = SHEET_TIME

    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()  # save_workbook() would stamp "now" as modified
    Path(path).write_bytes(_pin_zip_times(raw.getvalue()))
    return Path(path)


def _pin_zip_times(data: bytes) -> bytes:
    """Rewrite a zip with every entry dated 1980-01-01, in the same order."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            pinned = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            pinned.compress_type = zipfile.ZIP_DEFLATED
            pinned.external_attr = 0o644 << 16
            dst.writestr(pinned, src.read(info.filename))
    return out.getvalue()
