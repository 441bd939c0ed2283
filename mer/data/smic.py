"""SMIC (Li, Pfister, Huang, Zhao, Pietikäinen 2013): its HS, VIS and NIR sub-corpora, in either of
the two forms its owners ship.

``release: clips`` (``SMIC_all_raw`` / ``SMIC_all_cropped``): one folder per micro-expression,
``<root>/<folder>/s<N>/micro/<negative|positive|surprise>/s<N>_<ne|po|sur>_<k>/image<idx>.bmp``
(``reg_image<idx>.bmp`` in the cropped release).  There is no coding sheet: the folders *are* the
annotation.  The emotion is the folder above the clip; onset and offset are the first and last
frame found, because every frame of such a folder belongs to the micro-expression.  Frame numbers
are the camera's running index (``image017581039.bmp``), not 1..N, so the frame list is built from
what is on disk; a gap inside it is reported as a missing frame.  ``non_micro/`` is not read.

``release: long`` (SMIC-E, the extended release used by MEGC2019): longer clips around each
micro-expression, ``<root>/<folder>/s<NN>/s<N>_<emo>_<k>/image<idx>.jpg`` -- the subject folder is
zero-padded ('s03') while the clip name is not ('s3_ne_03') -- and ``SMIC-HS-E_annotation.xlsx``
(one work sheet per modality, 'HS' and 'VIS') whose cells are formulas (their cached values are
read).  Each row gives up to three onset/offset intervals (OnsetF/OffsetF, Onset2F/Offset2F,
Onset3F/Offset3F) inside one long clip (FirstF..LastF; the VIS sheet has FirstF and TotalVL).
With ``intervals: all`` (default) every valid interval is a clip: the first keeps the row's name
(``s20_ne_06``), the k-th is ``<name>_<k>`` (``s20_ne_06_2``) and reads the same frame folder.
Several later intervals are micro-expressions that SMIC-HS names on their own (SMIC-E's
``s3_ne_02_2`` is SMIC-HS's ``s3_ne_03``, ``s4_ne_04_2``/``_3`` are ``s4_ne_05``/``s4_ne_06``,
``s9_sur_01_2`` is ``s9_sur_02``).  ``intervals: first`` keeps only the first interval of each row
(157 HS clips, the pre-2026 behaviour).  A later interval is *skipped, with a warning naming the
sheet row*, when it is formula residue rather than an annotation:

* a cell that is not a frame number, or onset after offset;
* an interval not inside the row's long clip FirstF..LastF (e.g. HS ``s20_ne_06``'s third
  "interval" 17549887..17668743 starts 118856 frames before the clip; five HS rows have one);
* an interval equal to an earlier one of the same row (HS ``s9_sur_01``'s third = its second).

Without the FirstF/LastF (or TotalVL) columns the range test is not made and such an interval's
frames are checked on disk like any other clip's.  The first interval is never skipped: a bad one
is an ingest error, as before.  On the real HS sheet this gives 157 + 8 + 1 = 166 clips (6
intervals skipped); on VIS 71 + 5 = 76 (none skipped).

Neither release annotates an apex: the ingest apex policy decides (``midpoint``); the manifest
records ``apex_source``.  ``apex_sheet`` names an optional table of estimated apexes,
``smic_apex.xlsx`` as it circulates in public SMIC code (third party, not from the SMIC authors:
164 SMIC-HS clips, columns data, subject, clip, label (MEGC2019 coding), onset_frame, apex_frame,
offset_frame and frame paths under ``smic/HS_long/SMIC_HS_E/``; camera frame indices; how the
apexes were estimated is not documented; its 7 rows without offset_frame are the SMIC-HS clips
that the SMIC-E sheet has as later intervals or lacks).  A row gives the apex of the clip of the
same subject and name (``apex_source: estimated``); a later SMIC-E interval, which has no name of
its own, takes the row of its subject whose onset_frame equals its onset.  An apex outside the
clip's onset..offset is an ingest error naming both sheets' rows (correct it with a fix-table row,
field ``apex``); rows that match no clip are logged as a warning.  Clips without a row keep the
apex policy.  The table is for the HS camera (HS frame indices).

Subjects are written 's<N>' (unpadded) in the manifest for both releases, so a clip keeps its
subject whichever release it came from.
"""

from __future__ import annotations

import dataclasses
import logging
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

log = logging.getLogger(__name__)

RELEASES = ("clips", "long")
MODALITIES = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}   # camera -> frame rate
EMOTION_FOLDERS = ("negative", "positive", "surprise")
# release -> default frame-name template ({n} = camera frame index)
TEMPLATES = {"clips": "image{n:06d}.bmp", "long": "image{n:06d}.jpg"}
# sheet field -> column of SMIC-HS-E_annotation.xlsx
LONG_COLUMNS = {"subject": "Subject", "clip": "Filename", "onset": "OnsetF", "offset": "OffsetF",
                "emotion": "Emotion"}
# later intervals of a SMIC-E row: (onset column, offset column), interval number 2, 3
LATER_INTERVALS = (("Onset2F", "Offset2F"), ("Onset3F", "Offset3F"))
INTERVAL_CHOICES = ("all", "first")
# columns of the estimated-apex table (smic_apex.xlsx)
APEX_COLUMNS = ("subject", "clip", "onset_frame", "apex_frame")
APEX_SOURCE = "estimated"  # the manifest's apex_source of an apex taken from apex_sheet
_SUBJECT = re.compile(r"s(\d+)")


def subject_number(text: str) -> int | None:
    """3 for 's3', 's03', '3' or '3.0'; None for anything else."""
    text = text.strip().lower()
    match = _SUBJECT.fullmatch(text)
    digits = match.group(1) if match else text
    try:
        value = float(digits)
    except ValueError:
        return None
    return int(value) if value.is_integer() and value >= 0 else None


def _natural(text: str) -> list:
    """Sort key: 's2' before 's10', 's1_ne_2' before 's1_ne_10'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def template_pattern(template: str) -> re.Pattern[str]:
    """A regex matching the file names ``template`` produces, the frame number as group 1."""
    parts = re.split(r"\{n(?::[^}]*)?\}", template)
    if len(parts) != 2:
        raise ValueError(f"'{template}' must contain {{n}} exactly once")
    return re.compile(re.escape(parts[0]) + r"(\d+)" + re.escape(parts[1]))


@register_adapter("smic")
class Smic(CorpusAdapter):
    """SMIC HS/VIS/NIR, as segmented clips (``release: clips``) or SMIC-E long clips."""

    vocabulary = "smic"
    options = {
        "release": Option(str, "clips", "'clips' (SMIC_all_raw/_cropped: one folder per "
                                        "micro-expression) or 'long' (SMIC-E with its sheet)"),
        "modality": Option(str, "HS", "camera: HS (100 fps), VIS or NIR (25 fps)"),
        "folder": Option((str, type(None)), None,
                         "folder under root holding s1, s2, ... (default: the modality for "
                         "clips, e.g. 'HS'; 'SMIC_<modality>_E' for long)"),
        "frame_template": Option((str, type(None)), None,
                                 "frame file name, {n} = camera frame index (default "
                                 "'image{n:06d}.bmp' for clips, 'image{n:06d}.jpg' for long; "
                                 "'reg_image{n:06d}.bmp' in SMIC_all_cropped)"),
        "sheet": Option(str, "SMIC-HS-E_annotation.xlsx",
                        "SMIC-E annotation workbook, relative to root (long release only)"),
        "intervals": Option(str, "all",
                            "SMIC-E rows: 'all' (each valid interval a clip, '<name>_<k>' for "
                            "the k-th) or 'first' (the first interval only: 157 HS clips)"),
        "apex_sheet": Option((str, type(None)), None,
                             "optional table of estimated apexes (smic_apex.xlsx, HS frame "
                             "indices), relative to root; its apexes get apex_source "
                             "'estimated'"),
        "fps": Option((float, type(None)), None, "frame rate (default: 100 HS, 25 VIS/NIR)"),
    }

    @classmethod
    def _resolve(cls, dataset: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
        out = super()._resolve(dataset, cfg)
        where = f"params data.{dataset}"
        out["modality"] = str(out["modality"]).upper()
        if out["modality"] not in MODALITIES:
            raise MerError(f"unknown SMIC modality '{out['modality']}'", f"{where}.modality",
                           f"use one of {', '.join(MODALITIES)}")
        if out["release"] not in RELEASES:
            raise MerError(f"unknown SMIC release '{out['release']}'", f"{where}.release",
                           f"use one of {', '.join(RELEASES)}")
        if out["intervals"] not in INTERVAL_CHOICES:
            raise MerError(f"unknown intervals value '{out['intervals']}'", f"{where}.intervals",
                           f"use one of {', '.join(INTERVAL_CHOICES)}")
        if out["fps"] is None:
            out["fps"] = MODALITIES[out["modality"]]
        if out["folder"] is None:
            out["folder"] = (out["modality"] if out["release"] == "clips"
                             else f"SMIC_{out['modality']}_E")
        if out["frame_template"] is None:
            out["frame_template"] = TEMPLATES[out["release"]]
        try:
            template_pattern(out["frame_template"])
            ok = out["frame_template"].format(n=1) != out["frame_template"].format(n=2)
        except (KeyError, IndexError, ValueError):
            ok = False
        if not ok:
            raise MerError(f"frame_template '{out['frame_template']}' is not a file name with "
                           "{n}", f"{where}.frame_template",
                           "use e.g. 'image{n:06d}.bmp' or 'reg_image{n:06d}.bmp'")
        return out

    def __init__(self, dataset: str, cfg: Mapping[str, Any]):
        super().__init__(dataset, cfg)
        self.release: str = self.cfg["release"]
        self.modality: str = self.cfg["modality"]
        self.folder: str = self.cfg["folder"]
        self.template: str = self.cfg["frame_template"]
        self.pattern = template_pattern(self.template)
        self.sheet = self.root / self.cfg["sheet"]
        self.apex_sheet: Path | None = (self.root / self.cfg["apex_sheet"]
                                        if self.cfg["apex_sheet"] else None)
        self._found: dict[tuple[str, str], str] = {}  # (subject, clip) -> folder, clips release
        self._folder: dict[tuple[str, str], str] = {}  # (subject, '<name>_<k>') -> name, long
        self.skipped: list[str] = []  # later SMIC-E intervals skipped as formula residue

    # ---------------------------------------------------------------------------- layout
    def check_layout(self) -> None:
        self.require_root(f"mer datasets link {self.dataset} /path/to/SMIC")
        base = self.require_folder(self.folder, "folder", "s1, s2, ...", what="folder")
        if not any(subject_number(p.name) is not None for p in base.iterdir() if p.is_dir()):
            raise MerError("no subject folder (s1, s2, ...) found", base,
                           f"set data.{self.dataset}.folder to the folder holding s1, s2, ...")

    def annotations(self) -> list[Annotation]:
        out = self._clip_folders() if self.release == "clips" else self._long_sheet()
        return self._with_estimated_apexes(out) if self.apex_sheet is not None else out

    def _clip_folders(self) -> list[Annotation]:
        """One record per clip folder of ``s*/micro/<emotion>/``: the folders are the annotation."""
        base = self.root / self.folder
        out = []
        subjects = [p for p in base.iterdir() if p.is_dir() and subject_number(p.name) is not None]
        for sdir in sorted(subjects, key=lambda p: _natural(p.name)):
            subject = f"s{subject_number(sdir.name)}"
            micro = sdir / "micro"
            if not micro.is_dir():
                raise MerError("subject folder without 'micro/'", sdir,
                               "restore the folder from your copy of SMIC")
            for emotion_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
                for cdir in sorted((p for p in emotion_dir.iterdir() if p.is_dir()),
                                   key=lambda p: _natural(p.name)):
                    numbers = [int(m.group(1)) for f in cdir.iterdir()
                               if (m := self.pattern.fullmatch(f.name))
                               and self.template.format(n=int(m.group(1))) == f.name]
                    where = str(cdir.relative_to(self.root))
                    self._found[(subject, cdir.name)] = where
                    if not numbers:
                        where += f" (no frame named like '{self.template.format(n=1)}')"
                    out.append(Annotation(
                        subject=subject, clip=cdir.name,
                        onset=str(min(numbers)) if numbers else "",
                        apex="", offset=str(max(numbers)) if numbers else "", aus="",
                        emotion=emotion_dir.name, where=where))
        return out

    def _long_sheet(self) -> list[Annotation]:
        """Rows of the modality's work sheet of the SMIC-E annotation workbook."""
        if not self.sheet.is_file():
            sheets = sorted(p.name for p in self.root.glob("*.xls*"))
            raise MerError("SMIC-E annotation sheet not found", self.sheet,
                           f"set data.{self.dataset}.sheet (spreadsheets in {self.root}: {sheets})")
        try:
            book = pd.read_excel(self.sheet, sheet_name=None, dtype=str)  # cached formula values
        except Exception as exc:  # openpyxl raises many types for a damaged file
            raise MerError(f"cannot read the annotation sheet ({exc})", self.sheet,
                           "restore the sheet from your copy of SMIC-E") from exc
        if self.modality not in book:
            raise MerError(f"no work sheet '{self.modality}' (found {sorted(book)})", self.sheet,
                           f"set data.{self.dataset}.modality to a sheet of the workbook")
        df = book[self.modality]
        df.columns = [str(c).strip() for c in df.columns]
        if missing := [c for c in LONG_COLUMNS.values() if c not in df.columns]:
            found = [c for c in df.columns if not c.startswith("Unnamed")]
            raise MerError(f"work sheet '{self.modality}' lacks columns {missing} (found {found})",
                           self.sheet, "point data.<dataset>.sheet at SMIC-HS-E_annotation.xlsx, "
                           "or restore the column names")
        later = [pair for pair in LATER_INTERVALS if set(pair) <= set(df.columns)]
        if self.cfg["intervals"] == "first":
            later = []
        out: list[Annotation] = []
        self.skipped = []
        for i, (_, row) in enumerate(df.iterrows(), start=2):
            cells = {field: cell_text(row[col]) for field, col in LONG_COLUMNS.items()}
            if not any(cells.values()):
                continue
            number = subject_number(cells["subject"])
            if number is not None:
                cells["subject"] = f"s{number}"
            where = f"{self.sheet.name} sheet {self.modality} row {i}"
            out.append(Annotation(**cells, apex="", aus="", where=where))
            seen = [(cells["onset"], cells["offset"])]
            span = _long_clip_span(row)
            for k, (on_col, off_col) in enumerate(later, start=2):
                onset, offset = cell_text(row[on_col]), cell_text(row[off_col])
                if not onset and not offset:
                    continue
                why = _residue(onset, offset, span, seen)
                seen.append((onset, offset))
                if why:
                    self.skipped.append(f"{where} ({cells['clip']}): {on_col}..{off_col} "
                                        f"{onset or '(empty)'}..{offset or '(empty)'} {why}")
                    continue
                name = f"{cells['clip']}_{k}"
                self._folder[(cells["subject"], name)] = cells["clip"]
                out.append(Annotation(**{**cells, "clip": name, "onset": onset,
                                         "offset": offset}, apex="", aus="",
                                      where=f"{where} {on_col}..{off_col}"))
        for text in self.skipped:
            log.warning("SMIC-E interval skipped: %s", text)
        if self.skipped:
            log.warning("SMIC-E: %d later interval(s) of %s skipped as formula residue (rule: "
                        "mer/data/smic.py)", len(self.skipped), self.sheet.name)
        return out

    def _with_estimated_apexes(self, anns: list[Annotation]) -> list[Annotation]:
        """``anns`` with the apexes of ``apex_sheet`` (apex_source 'estimated'), see module doc."""
        rows = read_apex_sheet(self.apex_sheet, f"data.{self.dataset}.apex_sheet")
        by_name = {(r["subject"], r["clip"]): r for r in rows}
        by_onset: dict[tuple[str, str], list[dict[str, str]]] = {}
        for r in rows:
            by_onset.setdefault((r["subject"], r["onset"]), []).append(r)
        names = {(a.subject, a.clip) for a in anns}
        used: set[str] = set()
        out = []
        for ann in anns:
            row = by_name.get((ann.subject, ann.clip))
            if row is None and (ann.subject, ann.clip) in self._folder:  # later SMIC-E interval
                candidates = [r for r in by_onset.get((ann.subject, str(_number(ann.onset))), [])
                              if (r["subject"], r["clip"]) not in names]
                row = candidates[0] if len(candidates) == 1 else None
            if row is None:
                out.append(ann)
                continue
            used.add(row["where"])
            out.append(dataclasses.replace(ann, apex=row["apex"], apex_source=APEX_SOURCE,
                                           where=f"{ann.where}; apex from {row['where']}"))
        unused = [f"{r['clip']} ({r['where']})" for r in rows if r["where"] not in used]
        if unused:
            log.warning("%s: %d row(s) match no clip of %s and were not used: %s",
                        self.apex_sheet.name, len(unused), self.dataset, ", ".join(unused))
        return out

    def frame_dir(self, subject: str, clip: str) -> str:
        if self.release == "clips":  # where the scan found it, else where its name puts it
            found = self._found.get((subject, clip))
            return found or f"{self.folder}/{subject}/micro/{emotion_folder(clip)}/{clip}"
        number = subject_number(subject)
        sdir = f"s{number:02d}" if number is not None else subject
        return f"{self.folder}/{sdir}/{self._folder.get((subject, clip), clip)}"

    def frame_name(self, subject: str, clip: str, n: int) -> str:
        return self.template.format(n=n)

    def parse_aus(self, text: str) -> list[str]:
        if text.strip():
            raise ValueError(f"SMIC codes no action units, got '{text}'")
        return []

    def clip_id(self, subject: str, clip: str) -> str:
        return safe_id(clip)  # 's1_ne_01' already names its subject


def _long_clip_span(row: pd.Series) -> tuple[int, int] | None:
    """FirstF..LastF of a SMIC-E row (LastF = FirstF + TotalVL - 1 on the VIS sheet), or None."""
    first = _number(cell_text(row.get("FirstF")))
    last = _number(cell_text(row.get("LastF")))
    if last is None and first is not None:
        total = _number(cell_text(row.get("TotalVL")))
        last = first + total - 1 if total is not None else None
    return (first, last) if first is not None and last is not None else None


def _residue(onset: str, offset: str, span: tuple[int, int] | None,
             seen: list[tuple[str, str]]) -> str:
    """Why a later SMIC-E interval is formula residue, or '' when it is a valid interval."""
    a, b = _number(onset), _number(offset)
    if a is None or b is None:
        return "is not a pair of frame numbers"
    if a > b:
        return "has onset after offset"
    if span is not None and not (span[0] <= a and b <= span[1]):
        return f"lies outside the long clip FirstF..LastF {span[0]}..{span[1]}"
    if (a, b) in [(_number(x), _number(y)) for x, y in seen]:
        return "repeats an earlier interval of the row"
    return ""


def _number(text: str) -> int | None:
    """A frame-number cell as int ('17668815', '17668815.0'), else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def read_apex_sheet(path: Path, key: str) -> list[dict[str, str]]:
    """Rows of an estimated-apex table: subject ('s<N>'), clip, onset, apex (text), where.

    A missing file or column, a row without a frame-number apex or onset, or a clip listed twice
    is one MerError naming the file (and row): an apex table is used whole or not at all.
    """
    if not path.is_file():
        raise MerError("apex sheet not found", path, f"set {key} to smic_apex.xlsx's path "
                       "(relative to the corpus root), or to null")
    try:
        df = pd.read_excel(path, dtype=str)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        raise MerError(f"cannot read the apex sheet ({exc})", path,
                       "restore the file, or set it to null") from exc
    df.columns = [str(c).strip() for c in df.columns]
    if missing := [c for c in APEX_COLUMNS if c not in df.columns]:
        raise MerError(f"apex sheet lacks columns {missing} (found {list(df.columns)})", path,
                       f"use a table with columns {', '.join(APEX_COLUMNS)}")
    rows, problems, seen = [], [], set()
    for i, r in enumerate(df[list(APEX_COLUMNS)].itertuples(index=False), start=2):
        subject, clip, onset, apex = (cell_text(v) for v in r)
        if not any((subject, clip, onset, apex)):
            continue
        number = subject_number(subject)
        if number is None or not clip or _number(onset) is None or _number(apex) is None:
            problems.append(f"row {i} ({subject!r}, {clip!r}): subject, clip, onset_frame and "
                            f"apex_frame must all be given (apex_frame '{apex}')")
            continue
        if (number, clip) in seen:
            problems.append(f"row {i}: clip {clip} listed twice")
        seen.add((number, clip))
        rows.append({"subject": f"s{number}", "clip": clip, "onset": str(_number(onset)),
                     "apex": str(_number(apex)), "where": f"{path.name} row {i}"})
    if problems:
        raise MerError("apex sheet has bad rows: " + "; ".join(problems), path,
                       "correct the rows, or set the key to null")
    return rows


_CODES = {"ne": "negative", "po": "positive", "sur": "surprise"}


def emotion_folder(clip: str) -> str:
    """'negative' for 's1_ne_01': the emotion folder a clip of the clips release lives in."""
    parts = clip.split("_")
    code = parts[1].lower() if len(parts) >= 3 else ""
    return _CODES.get(code, code or "unknown")
