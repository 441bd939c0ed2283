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
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

from mer.errors import MerError
from mer.synth.emotions import COMBOS, EMOTIONS
from mer.synth.layouts import BadKey, Layout, register_layout
from mer.synth.params import SynthParams
from mer.synth.plan import ClipDraft, ClipSpec

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


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """A gray (H, W) frame as three equal channels (H, W, 3); colour frames unchanged."""
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame


def write_frames(frames: Iterable[np.ndarray], folder: Path, quality: int) -> int:
    """Write (H, W, 3) uint8 BGR frames as img1.jpg, img2.jpg, ...; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for n, frame in enumerate(frames, start=1):
        path = folder / frame_name(n)
        if not cv2.imwrite(str(path), as_bgr(frame), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
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


# --- the layout ------------------------------------------------------------------------------
def _check(params: SynthParams, bad: BadKey) -> None:
    if params.modality:
        raise bad("modality", "CASME II has one camera; modality is for layout 'smic'",
                  "remove it, or set layout: smic")
    if max(params.subjects()) > 99:
        key = "subject_numbers" if params.subject_numbers else "n_subjects"
        raise bad(key, "CASME II folders are subNN (two digits)", "use at most 99")


def _order_clips(params: SynthParams, subject: int,
                 drafts: Sequence[ClipDraft]) -> list[tuple[ClipDraft, str]]:
    """CASME II names a clip after its elicitation video: EPxx_yy, yy counting per video."""
    out, seen = [], {}
    for d in sorted(drafts):  # by episode, then recording order
        seen[d.episode] = seen.get(d.episode, 0) + 1
        out.append((d, f"EP{d.episode:02d}_{seen[d.episode]:02d}"))
    return out


def _write_clip(frames: Iterable[np.ndarray], clip: ClipSpec, params: SynthParams,
                root: Path) -> dict:
    written = write_frames(frames, clip_dir(root, clip), params.jpeg_quality)
    return {"Subject": f"{clip.subject:02d}", "Filename": clip.name, "frames": written,
            "OnsetFrame": clip.onset, "ApexFrame": clip.apex, "OffsetFrame": clip.offset}


def _finish(root: Path, clips: Sequence[ClipSpec], params: SynthParams) -> None:
    write_sheet(Path(root) / SHEET_NAME, clips)


LAYOUT = register_layout(Layout("casme2", EMOTIONS, COMBOS, _check, _order_clips, _write_clip,
                                _finish))
