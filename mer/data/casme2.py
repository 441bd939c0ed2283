"""CASME II (and SynthME, which copies its layout): coding sheet and folder conventions.

On disk: ``<root>/<frames>/sub<Subject>/<Filename>/img<N>.jpg`` with 1-based unpadded frame
numbers (``frames`` is ``CASME2_RAW_selected``, or ``Cropped`` with ``reg_img{n}.jpg``), and the
coding sheet ``<root>/<sheet>``.  The sheet's quirks, all handled here or downstream:

* Subject is text ('01'); the folder is ``sub01``.  A sheet re-saved by a spreadsheet program can
  turn it into the number 1, so all-digit subjects are zero-padded back to two digits.
* ApexFrame is '/' for sub04 EP12_01f (no apex annotated): kept as text, decided by the fix table
  and the apex policy in :mod:`mer.data.ingest`.
* Action Units mix numbers (12) and strings ('4+L10', 'R2', '?'); '?' (unknown AU) is dropped.
* Filenames are irregular (EP01_2, EP06_02_01, EP09f): used verbatim as folder names.
* Two empty, unnamed columns: ignored, as is any column this adapter does not use.
* Releases: the 2014 sheet, and the 2019 revision (an 'Objective Classes' column, some emotion
  labels revised) read the same way; ``revision`` says which was read.  The separate
  objective-class sheet (``CASME2-ObjectiveClasses.xlsx``: no frames, no emotions) is recognised
  and refused with a message naming the coding sheet to use instead.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import pandas as pd

from mer.data.adapters import (Annotation, CorpusAdapter, Option, cell_text, register_adapter,
                               safe_id)
from mer.errors import MerError

# field of Annotation -> column of the coding sheet
COLUMNS = {"subject": "Subject", "clip": "Filename", "onset": "OnsetFrame", "apex": "ApexFrame",
           "offset": "OffsetFrame", "aus": "Action Units", "emotion": "Estimated Emotion"}
_AU = re.compile(r"[LR]?\d+")  # an action unit, optionally on the left/right side only
_UNKNOWN_AU = "?"
OBJECTIVE_COLUMN = "Objective Classes"   # column of the 2019 revision of the coding sheet
OBJECTIVE_ONLY = "Objective Class"       # the separate objective-class sheet's column


@register_adapter("casme2")
class Casme2(CorpusAdapter):
    """CASME II's coding sheet and ``sub<Subject>/<Filename>/<frame_template>`` layout."""

    vocabulary = "casme2"
    options = {
        "sheet": Option(str, "CASME2-coding-20140508.xlsx", "coding sheet, relative to root"),
        "frames": Option(str, "CASME2_RAW_selected", "frame folder under root (or Cropped)"),
        "frame_template": Option(str, "img{n}.jpg", "frame file name; {n} = frame number"),
        "fps": Option(float, 200.0, "frame rate of the recordings"),
    }

    def __init__(self, dataset: str, cfg: Mapping[str, Any]):
        super().__init__(dataset, cfg)
        self.sheet = self.root / self.cfg["sheet"]
        self.frames = self.cfg["frames"]
        self.template = self.check_template(self.cfg["frame_template"],
                                            "img{n}.jpg' (RAW) or 'reg_img{n}.jpg")
        self.revision: str | None = None  # '2014' or '2019', known once the sheet is read

    def check_layout(self) -> None:
        self.require_root(f"ln -s /path/to/CASME2 {self.root}")
        self.require_folder(self.frames, "frames", "sub01, ...")

    def annotations(self) -> list[Annotation]:
        self.require_sheet(self.sheet)
        try:
            df = pd.read_excel(self.sheet, sheet_name=0, dtype=str)  # text: '01' stays '01'
        except Exception as exc:  # openpyxl/xlrd raise many types for a damaged file
            raise MerError(f"cannot read the coding sheet ({exc})", self.sheet,
                           "restore the sheet from your copy of the corpus") from exc
        df.columns = [str(c).strip() for c in df.columns]
        if OBJECTIVE_ONLY in df.columns and "OnsetFrame" not in df.columns:
            raise MerError("this is CASME II's objective-class sheet (Subject, Filename, "
                           "Objective Class), not its coding sheet", self.sheet,
                           f"set data.{self.dataset}.sheet to the coding sheet "
                           "(CASME2-coding-20140508.xlsx, or the 2019 revision)")
        # the 2019 revision adds an 'Objective Classes' column (and revises some labels)
        self.revision = "2019" if OBJECTIVE_COLUMN in df.columns else "2014"
        if missing := [c for c in COLUMNS.values() if c not in df.columns]:
            found = [c for c in df.columns if not c.startswith("Unnamed")]
            raise MerError(f"the coding sheet lacks columns {missing} (found {found})", self.sheet,
                           "point data.<dataset>.sheet at CASME II's coding sheet, or restore "
                           "the column names")
        out = []
        for i, row in enumerate(df[list(COLUMNS.values())].itertuples(index=False), start=2):
            cells = {field: cell_text(value) for field, value in zip(COLUMNS, row)}
            if not any(cells.values()):
                continue  # a blank line at the end of the sheet
            if cells["subject"].isdigit():
                cells["subject"] = cells["subject"].zfill(2)
            out.append(Annotation(**cells, where=f"{self.sheet.name} row {i}"))
        return out

    def frame_dir(self, subject: str, clip: str) -> str:
        return f"{self.frames}/sub{subject}/{clip}"

    def frame_name(self, subject: str, clip: str, n: int) -> str:
        return self.template.format(n=n)

    def parse_aus(self, text: str) -> list[str]:
        aus: list[str] = []
        if not text.strip():
            return aus  # no action unit coded
        for part in text.split("+"):
            token = part.strip().upper()
            if token == _UNKNOWN_AU:
                continue
            if not _AU.fullmatch(token):
                raise ValueError(f"action unit '{part.strip()}' of '{text}' is not N, LN or RN")
            aus.append(token)
        return aus

    def clip_id(self, subject: str, clip: str) -> str:
        return safe_id(f"sub{subject}_{clip}")

