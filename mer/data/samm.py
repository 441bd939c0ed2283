"""SAMM (Davison et al. 2016), micro-expression release v2: coding sheet and folder conventions.

On disk: ``<root>/<frames>/<Subject>/<Filename>/<Subject>_<NNNNN>.jpg``, e.g.
``SAMM/006/006_1_2/006_05562.jpg`` (frame numbers of the long recording, zero-padded to five
digits), and the coding sheet ``<root>/<sheet>``.  The sheet's quirks, all handled here or
downstream:

* The table starts below a preamble (citation notes, a symbol key: 13 rows in v2).  The header row
  is found by its cells (``Subject`` and ``Filename``), not by a row count, so a release with a
  longer or shorter preamble reads the same.
* Subject is text ('006'); a sheet re-saved by a spreadsheet program may turn it into 6, so
  all-digit subjects are zero-padded back to three digits.
* Emotions are Title-case ('Anger', 'Other'): normalised by the ``samm`` vocabulary.
* Action units are free text written by FACS coders: '4+7', 'R6A+R12', '(R6 or R12)+R15',
  'ref(7B)+43', '10A/B', 'A/L12', 'T18+39', '12+15 ' (trailing space), 'R14+17+soft focus'.
  :func:`parse_samm_aus` reads them (see there); what it cannot read is an error naming the clip.
* Two clips of the v2 sheet have an apex outside onset..offset (028_4_1, 032_3_1): the packaged
  fix table gives them their middle frame (``apex_source = midpoint``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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

# field of Annotation -> column of the coding sheet
COLUMNS = {"subject": "Subject", "clip": "Filename", "onset": "Onset Frame",
           "apex": "Apex Frame", "offset": "Offset Frame", "aus": "Action Units",
           "emotion": "Estimated Emotion"}
_HEADER_SCAN = 40  # rows searched for the header line (v2 has it on row 14)

# One action unit as SAMM codes it: an optional side prefix, the AU number, an optional
# intensity (A-E, or a range such as 'A/B').  L/R (unilateral, the sheet's key) are kept, as in
# CASME II; A (asymmetric: both sides, one stronger, the sheet's key) and the B/T prefixes the
# coders wrote on AU18 move no single side, so they are dropped from the parsed AU (the raw cell
# keeps them); 'A/L12' (asymmetric, stronger on the left) -> L12.
_SAMM_AU = re.compile(r"(?P<side>A/[LR]|[LRABT])?(?P<au>\d+)(?P<level>[A-E](?:/[A-E])?)?")
_REF = re.compile(r"ref\((?P<inner>[^()]*)\)", re.IGNORECASE)
# Non-AU descriptors that SAMM's coders wrote in the AU column; dropped from the parsed list (the
# raw cell keeps them).  Anything else that is not an AU is an error, never skipped silently.
DESCRIPTORS = frozenset({"soft focus"})


def _token(text: str, cell: str) -> str:
    """One AU token ('R6A', 'A/L12', '43E') as the manifest writes it ('R6', 'L12', '43')."""
    m = _SAMM_AU.fullmatch(text.strip().upper())
    if m is None:
        raise ValueError(f"action unit '{text.strip()}' of '{cell}' is not an AU such as 12, "
                         "R12, 12B or A/L12")
    side = m["side"] or ""
    side = side[-1] if side.startswith("A/") else side
    return (side if side in ("L", "R") else "") + str(int(m["au"]))


def parse_samm_aus(cell: str) -> list[str]:
    """The action units of a SAMM AU cell, in order, without duplicates.

    '+' joins AUs.  ``ref(X)`` marks an AU the coder noted for reference (X is kept, as CASME II
    style loaders keep every coded AU).  'X or Y' (optionally in parentheses) gives alternatives
    the coder could not tell apart: all of them are kept, since either moved.  Intensity letters
    are dropped (the raw cell keeps them).
    """
    out: list[str] = []
    if not cell.strip():
        return out
    for part in cell.split("+"):
        part = _REF.sub(lambda m: m["inner"], part).strip()
        if part.startswith("(") and part.endswith(")"):
            part = part[1:-1]
        if not part:
            raise ValueError(f"empty action unit in '{cell}'")
        if part.lower() in DESCRIPTORS:
            continue
        for alternative in re.split(r"\s+or\s+", part, flags=re.IGNORECASE):
            au = _token(alternative, cell)
            if au not in out:
                out.append(au)
    return out


def find_header(rows: pd.DataFrame, required: list[str], where: object) -> int:
    """Index of the first row (of the first ``_HEADER_SCAN``) holding every ``required`` cell."""
    for i in range(min(len(rows), _HEADER_SCAN)):
        cells = {cell_text(v) for v in rows.iloc[i].tolist()}
        if all(name in cells for name in required):
            return i
    raise MerError(f"no header row with the columns {required} in the first {_HEADER_SCAN} rows",
                   where, "point the dataset's sheet at the corpus's coding sheet, or restore the "
                   "column names")


@register_adapter("samm")
class Samm(CorpusAdapter):
    """SAMM's coding sheet and ``<Subject>/<Filename>/<Subject>_<NNNNN>.jpg`` layout."""

    vocabulary = "samm"
    options = {
        "sheet": Option(str, "SAMM_Micro_FACS_Codes_v2.xlsx", "coding sheet, relative to root"),
        "frames": Option(str, "SAMM", "folder under root holding the subject folders 006, ..."),
        "frame_template": Option(str, "{subject}_{n:05d}.jpg",
                                 "frame file name; {subject} = subject, {n} = frame number"),
        "fps": Option(float, 200.0, "frame rate of the recordings"),
    }

    def __init__(self, dataset: str, cfg: Mapping[str, Any]):
        super().__init__(dataset, cfg)
        self.sheet = self.root / self.cfg["sheet"]
        self.frames = self.cfg["frames"]
        self.template = self.check_template(self.cfg["frame_template"], "{subject}_{n:05d}.jpg",
                                            subject="006")

    def check_layout(self) -> None:
        self.require_root(f"ln -s /path/to/SAMM {self.root}")
        self.require_folder(self.frames, "frames", "006, ...")

    def annotations(self) -> list[Annotation]:
        self.require_sheet(self.sheet)
        try:  # text: '006' stays '006'; the header row is located below
            raw = pd.read_excel(self.sheet, sheet_name=0, header=None, dtype=str)
        except Exception as exc:  # openpyxl/xlrd raise many types for a damaged file
            raise MerError(f"cannot read the coding sheet ({exc})", self.sheet,
                           "restore the sheet from your copy of the corpus") from exc
        top = find_header(raw, [COLUMNS["subject"], COLUMNS["clip"]], self.sheet)
        header = [cell_text(v) for v in raw.iloc[top].tolist()]
        if missing := [c for c in COLUMNS.values() if c not in header]:
            raise MerError(f"the coding sheet lacks columns {missing} (found "
                           f"{[h for h in header if h]})", self.sheet,
                           "point data.<dataset>.sheet at SAMM's coding sheet, or restore the "
                           "column names")
        index = [header.index(c) for c in COLUMNS.values()]
        out = []
        for i in range(top + 1, len(raw)):
            cells = {f: cell_text(raw.iat[i, j]) for f, j in zip(COLUMNS, index)}
            if not any(cells.values()):
                continue  # a blank line
            if cells["subject"].isdigit():
                cells["subject"] = cells["subject"].zfill(3)
            out.append(Annotation(**cells, where=f"{self.sheet.name} row {i + 1}"))
        return out

    def frame_dir(self, subject: str, clip: str) -> str:
        return f"{self.frames}/{subject}/{clip}"

    def frame_name(self, subject: str, clip: str, n: int) -> str:
        return self.template.format(subject=subject, n=n)

    def parse_aus(self, text: str) -> list[str]:
        return parse_samm_aus(text)

    def clip_id(self, subject: str, clip: str) -> str:
        # SAMM's filenames already start with the subject ('006_1_2'); keep them as they are
        return safe_id(clip if clip.startswith(f"{subject}_") else f"{subject}_{clip}")
