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
read).  Each row gives up to three onset/offset intervals and no apex.  The clip is the first
interval (OnsetF..OffsetF), the one SMIC's 164-clip list and MEGC2019 use; the later interval
columns are not read, because in several rows they hold formula residue (an "interval" starting
before the clip's first frame, a negative length).

Neither release annotates an apex: the ingest apex policy decides (``midpoint``); the manifest
records ``apex_source``.  Subjects are written 's<N>' (unpadded) in the manifest for both
releases, so a clip keeps its subject whichever release it came from.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

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

RELEASES = ("clips", "long")
MODALITIES = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}   # camera -> frame rate
EMOTION_FOLDERS = ("negative", "positive", "surprise")
# release -> default frame-name template ({n} = camera frame index)
TEMPLATES = {"clips": "image{n:06d}.bmp", "long": "image{n:06d}.jpg"}
# sheet field -> column of SMIC-HS-E_annotation.xlsx
LONG_COLUMNS = {"subject": "Subject", "clip": "Filename", "onset": "OnsetF", "offset": "OffsetF",
                "emotion": "Emotion"}
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
        self._found: dict[tuple[str, str], str] = {}  # (subject, clip) -> folder, clips release

    # ---------------------------------------------------------------------------- layout
    def check_layout(self) -> None:
        self.require_root(f"mer datasets link {self.dataset} /path/to/SMIC")
        base = self.require_folder(self.folder, "folder", "s1, s2, ...", what="folder")
        if not any(subject_number(p.name) is not None for p in base.iterdir() if p.is_dir()):
            raise MerError("no subject folder (s1, s2, ...) found", base,
                           f"set data.{self.dataset}.folder to the folder holding s1, s2, ...")

    def annotations(self) -> list[Annotation]:
        return self._clip_folders() if self.release == "clips" else self._long_sheet()

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
        out = []
        for i, row in enumerate(df[list(LONG_COLUMNS.values())].itertuples(index=False), start=2):
            cells = {field: cell_text(value) for field, value in zip(LONG_COLUMNS, row)}
            if not any(cells.values()):
                continue
            number = subject_number(cells["subject"])
            if number is not None:
                cells["subject"] = f"s{number}"
            out.append(Annotation(**cells, apex="", aus="",
                                  where=f"{self.sheet.name} sheet {self.modality} row {i}"))
        return out

    def frame_dir(self, subject: str, clip: str) -> str:
        if self.release == "clips":  # where the scan found it, else where its name puts it
            found = self._found.get((subject, clip))
            return found or f"{self.folder}/{subject}/micro/{emotion_folder(clip)}/{clip}"
        number = subject_number(subject)
        sdir = f"s{number:02d}" if number is not None else subject
        return f"{self.folder}/{sdir}/{clip}"

    def frame_name(self, subject: str, clip: str, n: int) -> str:
        return self.template.format(n=n)

    def parse_aus(self, text: str) -> list[str]:
        if text.strip():
            raise ValueError(f"SMIC codes no action units, got '{text}'")
        return []

    def clip_id(self, subject: str, clip: str) -> str:
        return safe_id(clip)  # 's1_ne_01' already names its subject


_CODES = {"ne": "negative", "po": "positive", "sur": "surprise"}


def emotion_folder(clip: str) -> str:
    """'negative' for 's1_ne_01': the emotion folder a clip of the clips release lives in."""
    parts = clip.split("_")
    code = parts[1].lower() if len(parts) >= 3 else ""
    return _CODES.get(code, code or "unknown")
