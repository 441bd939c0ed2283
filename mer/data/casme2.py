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
  and refused as ``sheet``, with a message naming the coding sheet to use instead.

Objective classes (the MEGC2018 convention: classes I..VII coded from the action units rather than
self-reports) come either from the 2019 sheet's own 'Objective Classes' column or, for the 2014
sheet, from the objective-class sheet named by ``objective_classes``.  Only that sheet's first
worksheet is read: the copies in circulation carry a stray Sheet2 of unlabelled coding-sheet rows,
which is deliberately ignored.  Each clip then carries its class on the ``casme2_objective``
vocabulary, and the manifest gains that vocabulary's label columns (``label_casme2_objective``,
...); without either source it has none.  A clip of the coding sheet the objective sheet lacks is
an error naming the clip.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
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
OBJECTIVE_VOCABULARY = "casme2_objective"  # vocabulary of schemes.yaml for the objective classes

log = logging.getLogger(__name__)


@register_adapter("casme2")
class Casme2(CorpusAdapter):
    """CASME II's coding sheet and ``sub<Subject>/<Filename>/<frame_template>`` layout."""

    vocabulary = "casme2"
    options = {
        "sheet": Option(str, "CASME2-coding-20140508.xlsx", "coding sheet, relative to root"),
        "frames": Option(str, "CASME2_RAW_selected", "frame folder under root (or Cropped)"),
        "frame_template": Option(str, "img{n}.jpg", "frame file name; {n} = frame number"),
        "fps": Option(float, 200.0, "frame rate of the recordings"),
        "objective_classes": Option((str, type(None)), None,
                                    "objective-class sheet (CASME2-ObjectiveClasses.xlsx), "
                                    "relative to root; null = none (the 2019 sheet has its own)"),
    }

    def __init__(self, dataset: str, cfg: Mapping[str, Any]):
        super().__init__(dataset, cfg)
        self.sheet = self.root / self.cfg["sheet"]
        self.frames = self.cfg["frames"]
        self.template = self.check_template(self.cfg["frame_template"],
                                            "img{n}.jpg' (RAW) or 'reg_img{n}.jpg")
        self.revision: str | None = None  # '2014' or '2019', known once the sheet is read
        objective = self.cfg["objective_classes"]
        self.objective_sheet: Path | None = self.root / objective if objective else None

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
        own_objective = self.revision == "2019"
        if own_objective and self.objective_sheet is not None:
            log.warning("%s has its own '%s' column; using %s as data.%s.objective_classes says",
                        self.sheet.name, OBJECTIVE_COLUMN, self.objective_sheet.name,
                        self.dataset)
            own_objective = False
        out = []
        for i, (_, row) in enumerate(df.iterrows(), start=2):
            cells = {field: cell_text(row[column]) for field, column in COLUMNS.items()}
            if not any(cells.values()):
                continue  # a blank line at the end of the sheet
            cells["subject"] = self._subject(cells["subject"])
            extra = (((OBJECTIVE_VOCABULARY, cell_text(row[OBJECTIVE_COLUMN])),)
                     if own_objective else ())
            out.append(Annotation(**cells, where=f"{self.sheet.name} row {i}",
                                  extra_labels=extra))
        if self.objective_sheet is not None:
            out = self._with_objective_classes(out)
        return out

    @staticmethod
    def _subject(text: str) -> str:
        """'1' (a re-saved sheet's number) -> '01', the folder's spelling; other text verbatim."""
        return text.zfill(2) if text.isdigit() else text

    def _with_objective_classes(self, rows: list[Annotation]) -> list[Annotation]:
        """``rows`` with their class from the objective-class sheet; every row must be there."""
        sheet = self.require_sheet(self.objective_sheet, "objective_classes")
        try:  # first worksheet only: the stray Sheet2 of unlabelled rows is not part of it
            df = pd.read_excel(sheet, sheet_name=0, dtype=str)
        except Exception as exc:  # openpyxl/xlrd raise many types for a damaged file
            raise MerError(f"cannot read the objective-class sheet ({exc})", sheet,
                           "restore the sheet from your copy of the corpus") from exc
        df.columns = [str(c).strip() for c in df.columns]
        wanted = ["Subject", "Filename", OBJECTIVE_ONLY]
        if missing := [c for c in wanted if c not in df.columns]:
            found = [c for c in df.columns if not c.startswith("Unnamed")]
            raise MerError(f"the objective-class sheet lacks columns {missing} (found {found})",
                           sheet, f"point data.{self.dataset}.objective_classes at "
                           "CASME2-ObjectiveClasses.xlsx, or restore the column names")
        classes: dict[tuple[str, str], str] = {}
        for i, (subject, clip, cls) in enumerate(df[wanted].itertuples(index=False), start=2):
            key = (self._subject(cell_text(subject)), cell_text(clip))
            if not any(key) and not cell_text(cls):
                continue  # a blank line
            if key in classes:
                raise MerError(f"sub{key[0]} {key[1]} appears twice (again in row {i})", sheet,
                               "remove the duplicate row")
            classes[key] = cell_text(cls)
        if absent := [r for r in rows if (r.subject, r.clip) not in classes]:
            names = ", ".join(f"sub{r.subject} {r.clip} ({r.where})" for r in absent)
            raise MerError(f"{len(absent)} clip(s) of the coding sheet have no objective class: "
                           f"{names}", sheet,
                           "use the objective-class sheet of the same release as the coding "
                           f"sheet, or set data.{self.dataset}.objective_classes: null")
        if unused := set(classes) - {(r.subject, r.clip) for r in rows}:
            log.warning("%s lists %d clip(s) that %s lacks; they are ignored", sheet.name,
                        len(unused), self.sheet.name)
        return [dataclasses.replace(r, extra_labels=(
                    (OBJECTIVE_VOCABULARY, classes[(r.subject, r.clip)]),)) for r in rows]

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

