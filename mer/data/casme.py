"""CASME (Yan et al. 2013, the first release): two sections, each with its own coding sheet.

No CASME sheet is available to this project, so the reader is built from what public CASME
loaders show of the release, and everything it assumes is a config key:

* Two sections, ``CASME_A/Section A`` (subjects 1-7) and ``CASME_B/Section B`` (subjects 8-19),
  each holding a coding sheet (``Section A.xls``, ``Section B.xls``, first worksheet) and the
  clip folders ``sub01/EP01_5/`` (``sections``: one ``{sheet, frames}`` entry per section).
* The sheets follow CASME II's conventions: columns Subject (a number), Filename, onset, apex and
  offset frames, Action Units ('4+L10', '?'), and the emotion (eight: disgust, surprise, tense,
  contempt, repression, sadness, fear, happiness; 'comtempt' is a known spelling).  Column names
  are matched loosely (case, spaces and underscores ignored; 'OnsetFrame', 'Onset Frame' and
  'Onset' all match), since releases differ; a column that matches none is an error listing the
  names accepted.
* Frame files are ``img<N>.jpg`` in CASME II style (``frame_template``, also per section; public
  loaders also handle ``<Filename>-<N>.jpg`` names, i.e. ``{clip}-{n}.jpg``).
* 60 fps (``fps``).

A clip is ``sub<Subject>_<Filename>`` as in CASME II, under corpus ``casme``.  Label schemes:
``casme_all`` and ``casme_4class`` (the Multiple Aggregation Networks grouping).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mer.data.adapters import (
    Annotation,
    CorpusAdapter,
    Option,
    cell_text,
    register_adapter,
    safe_id,
)
from mer.errors import MerError

# field of Annotation -> accepted header names, compared after _key()
COLUMNS = {
    "subject": ("subject",),
    "clip": ("filename",),
    "onset": ("onsetframe", "onset"),
    "apex": ("apexframe", "apex"),
    "offset": ("offsetframe", "offset"),
    "aus": ("actionunits", "actionunit", "aus", "au"),
    "emotion": ("emotion", "estimatedemotion"),
}
DEFAULT_SECTIONS = [
    {"sheet": "CASME_A/Section A/Section A.xls", "frames": "CASME_A/Section A"},
    {"sheet": "CASME_B/Section B/Section B.xls", "frames": "CASME_B/Section B"},
]
_AU = re.compile(r"[LR]?\d+")


def _key(header: str) -> str:
    """A header compared loosely: 'Onset Frame', 'OnsetFrame', 'onset_frame' -> 'onsetframe'."""
    return re.sub(r"[^a-z0-9]", "", str(header).lower())


def parse_casme_aus(cell: str) -> list[str]:
    """AUs of a CASME cell ('4+L10', 'R2', '?' = unknown, dropped); ValueError for others."""
    out: list[str] = []
    for part in cell.split("+") if cell.strip() else []:
        token = part.strip().upper()
        if token == "?":
            continue
        if not _AU.fullmatch(token):
            raise ValueError(f"action unit '{part.strip()}' of '{cell}' is not N, LN or RN")
        out.append(token)
    return out


@register_adapter("casme")
class Casme(CorpusAdapter):
    """CASME's per-section coding sheets and ``<section>/sub<NN>/<Filename>/`` layout."""

    vocabulary = "casme"
    options = {
        "sections": Option(list, DEFAULT_SECTIONS,
                           "one {sheet, frames[, frame_template]} per section, relative to root"),
        "frame_template": Option(str, "img{n}.jpg", "frame file name; {n} = frame number, "
                                 "{clip} = Filename"),
        "fps": Option(float, 60.0, "frame rate of the recordings"),
    }

    def __init__(self, dataset: str, cfg: Mapping[str, Any]):
        super().__init__(dataset, cfg)
        where = f"params data.{dataset}.sections"
        self.sections: list[dict[str, str]] = []
        for i, sec in enumerate(self.cfg["sections"]):
            if not isinstance(sec, Mapping) or not {"sheet", "frames"} <= set(sec) \
                    or not set(sec) <= {"sheet", "frames", "frame_template"}:
                raise MerError(f"section {i} must be a mapping with sheet, frames and optionally "
                               f"frame_template, got {sec!r}", where,
                               "e.g. {sheet: 'CASME_A/Section A/Section A.xls', "
                               "frames: 'CASME_A/Section A'}")
            template = str(sec.get("frame_template", self.cfg["frame_template"]))
            try:
                ok = template.format(n=1, clip="EP01") != template.format(n=2, clip="EP01")
            except (KeyError, IndexError, ValueError):
                ok = False
            if not ok:
                raise MerError(f"frame_template '{template}' is not a file name with {{n}}", where,
                               "use e.g. 'img{n}.jpg' or '{clip}-{n}.jpg'")
            self.sections.append({"sheet": str(sec["sheet"]), "frames": str(sec["frames"]),
                                  "frame_template": template})
        if not self.sections:
            raise MerError("no sections given", where, "list CASME's section A and B sheets")
        self._section: dict[tuple[str, str], dict[str, str]] = {}

    def check_layout(self) -> None:
        self.require_root(f"ln -s /path/to/CASME {self.root}")
        for sec in self.sections:
            folder = self.root / sec["frames"]
            if not folder.is_dir():
                present = sorted(str(p.relative_to(self.root)) for p in self.root.glob("*/*")
                                 if p.is_dir())
                raise MerError(f"section folder '{sec['frames']}' not found (folders there: "
                               f"{present})", folder,
                               f"set data.{self.dataset}.sections to your copy's sections")

    def _read(self, sheet: Path) -> list[tuple[dict[str, str], str]]:
        if not sheet.is_file():
            raise MerError("coding sheet not found", sheet,
                           f"set the sheet of this section in data.{self.dataset}.sections")
        try:
            df = pd.read_excel(sheet, sheet_name=0, dtype=str)
        except Exception as exc:  # openpyxl/xlrd raise many types for a damaged file
            raise MerError(f"cannot read the coding sheet ({exc})", sheet,
                           "restore the sheet from your copy of the corpus") from exc
        keys = [_key(c) for c in df.columns]
        index, missing = [], []
        for field, names in COLUMNS.items():
            hit = next((keys.index(n) for n in names if n in keys), None)
            if hit is None:
                missing.append(f"{field} ({' / '.join(names)})")
            index.append(hit)
        if missing:
            found = [str(c) for c in df.columns if not str(c).startswith("Unnamed")]
            raise MerError(f"the coding sheet lacks columns for {missing} (found {found})", sheet,
                           "point the section's sheet at CASME's coding sheet, or restore the "
                           "column names")
        rows = []
        for i, row in enumerate(df.itertuples(index=False), start=2):
            cells = {f: cell_text(row[j]) for f, j in zip(COLUMNS, index)}
            if any(cells.values()):
                rows.append((cells, f"{sheet.name} row {i}"))
        return rows

    def annotations(self) -> list[Annotation]:
        out = []
        for sec in self.sections:
            for cells, where in self._read(self.root / sec["sheet"]):
                if cells["subject"].isdigit():
                    cells["subject"] = cells["subject"].zfill(2)  # folder sub01
                self._section[(cells["subject"], cells["clip"])] = sec
                out.append(Annotation(**cells, where=where))
        return out

    def _of(self, subject: str, clip: str) -> dict[str, str]:
        try:
            return self._section[(subject, clip)]
        except KeyError:
            raise MerError(f"clip sub{subject} {clip} is in no section's sheet", self.root,
                           "read the annotations before asking for frames") from None

    def frame_dir(self, subject: str, clip: str) -> str:
        return f"{self._of(subject, clip)['frames']}/sub{subject}/{clip}"

    def frame_name(self, subject: str, clip: str, n: int) -> str:
        return self._of(subject, clip)["frame_template"].format(n=n, clip=clip)

    def parse_aus(self, text: str) -> list[str]:
        return parse_casme_aus(text)

    def clip_id(self, subject: str, clip: str) -> str:
        return safe_id(f"sub{subject}_{clip}")
