"""CAS(ME)^3 (Li et al., TPAMI 2023): Part A micro-expressions, Part A macro-expressions, Part C.

Part A on disk: ``<root>/<frames>/<Subject>/<video>/color/<N>.jpg`` (``spNO.1/a/color/355.jpg``;
unpadded frame numbers of the recording, 0 occurs) beside ``depth/<N>.png``.  Several expressions
come from one recording, so a clip is named ``<video>_<onset>`` ('a_355', the onset as the sheet
writes it), the name the ME-clip packaging of the corpus also uses; the clip id is
``<Subject>_<video>_<onset>``.

One registry name, ``casme3``, with one reader per sheet chosen by the config key ``part``:

* ``part: A`` (default): the ME sheet ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`` (860 rows).  Quirks:
  every cell is stored as text; emotions 'happy', 'sad' and 'Others' beside 'others' (the
  ``casme3`` vocabulary); one video letter is upper case ('J' for spNO.14, lower case on disk);
  five bad rows.  Four of them (apex before onset, onset after offset, two offsets of 0) are
  corrected by the packaged fix table from the official combined sheet ``CAS(ME)3_part_A_v2.xls``
  of the same release, whose Micro-expression rows agree on every other cell.  The fifth, spNO.216
  e with onset = apex = 0, is left as annotated: it is ordered (0 <= 0 <= 25) and both official
  sheets agree, so there is nothing to correct it from; a copy without frame 0 reports it as a
  missing frame.
* ``part: A_macro``: the combined sheet ``CAS(ME)3_part_A_v2.xls`` ('AU+Emotion' sheet; legacy
  .xls, read with xlrd).  It has no emotion column; the 'Expression type' cell stands in for it
  (vocabulary ``casme3_expression``) and ``expression_types`` selects the rows (default: macro).
  MoExt pre-trains on these clips with the N-th frame of a macro-expression as its apex (N = 5,
  ``macro_apex_frame``), because a macro apex moves far more than a micro one: the manifest then
  records ``apex_source = frame5`` (``macro_apex_frame: 0`` keeps the annotated apex).
* ``part: C``: Part C, ``CAS(ME)3_part_C_ME.xlsx`` (mock crime): columns sub, count, onset, offset,
  au, emotion (already grouped: negative, positive, surprise, others); AUs separated by commas
  (full-width '，' too, trailing commas, '13?'); no apex, so the apex policy decides.  Its folder
  layout has not been seen in public code: ``frame_dir`` and ``frame_template`` are templates.

The official list of damaged Part A frames (``error_info_damaged_image_partA.txt``: lines such as
'spNO.3 J 498.jpg  the image cannot open') is applied by the Part A adapters: a listed frame
inside a clip is replaced by the nearest intact frame before it in the recording (after it when
none precedes), so the clip keeps its length and timing and its frame list shows the repeated
name; each clip so affected is logged.  No clip of the v2 sheets touches a listed frame (spNO.3 j
and spNO.4 j have no annotated expression), so the rule only guards other releases and copies.
"""

from __future__ import annotations

import functools
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
from mer.data.schemes import get_vocabulary
from mer.errors import MerError

log = logging.getLogger(__name__)

_AU = re.compile(r"(?P<side>[LRBT])?(?P<au>\d+)")
_DAMAGED_LINE = re.compile(r"(?P<subject>\S+)\s+(?P<video>\S+)\s+(?P<n>\d+)\.\w+\b.*")


def parse_casme3_aus(cell: str, separators: str = "+") -> list[str]:
    """AUs of a CAS(ME)^3 cell ('R2+R1', 'T28+14'; Part C: 'R4,5', '14,L24,', '4，11', '13?').

    L/R (one side of the face) are kept as in CASME II; B and T, which the coders write on AU18-28
    and which name no single side, are dropped (the raw cell keeps them).  Empty items (a trailing
    separator) are skipped; a '?' after an AU marks the coder's doubt and is dropped with the raw
    cell keeping it.  Anything else is a ValueError naming the item.
    """
    out: list[str] = []
    for part in re.split(f"[{re.escape(separators)}]", cell):
        token = part.strip().upper().rstrip("?").strip()
        if not token:
            continue
        m = _AU.fullmatch(token)
        if m is None:
            raise ValueError(f"action unit '{part.strip()}' of '{cell}' is not N, LN or RN")
        au = (m["side"] if m["side"] in ("L", "R") else "") + str(int(m["au"]))
        if au not in out:
            out.append(au)
    return out


def read_damaged_list(path: Path) -> dict[tuple[str, str], frozenset[int]]:
    """The official damaged-frame list: (subject, video in lower case) -> frame numbers."""
    damaged: dict[tuple[str, str], set[int]] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise MerError(f"cannot read the damaged-frame list ({exc.strerror})", path,
                       "restore it from your copy of the corpus") from exc
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        m = _DAMAGED_LINE.fullmatch(line.strip())
        if m is None:
            raise MerError(f"line {i} is not '<subject> <video> <frame>.jpg ...': {line!r}",
                           f"{path}:{i}", "restore the list from your copy of the corpus")
        damaged.setdefault((m["subject"], m["video"].lower()), set()).add(int(m["n"]))
    return {key: frozenset(v) for key, v in damaged.items()}


def read_table(path: Path, columns: Mapping[str, str], dataset: str, what: str,
               sheet: int | str = 0) -> tuple[pd.DataFrame, list[int]]:
    """A sheet as text cells and the positions of ``columns`` (values: header names)."""
    try:
        df = pd.read_excel(path, sheet_name=sheet, dtype=str)
    except Exception as exc:  # openpyxl/xlrd raise many types for a damaged file
        raise MerError(f"cannot read the {what} ({exc})", path,
                       "restore the sheet from your copy of the corpus") from exc
    header = [str(c).strip() for c in df.columns]
    if missing := [c for c in columns.values() if c not in header]:
        found = [c for c in header if not c.startswith("Unnamed")]
        raise MerError(f"the {what} lacks columns {missing} (found {found})", path,
                       f"point data.{dataset}.sheet at the {what}, or restore the column names")
    return df, [header.index(c) for c in columns.values()]


PART = Option(str, "A", "which sheet: A (Part A micro-expressions), A_macro (Part A combined "
              ".xls, macro-expressions by default) or C (Part C)")


@register_adapter("casme3")
class Casme3(CorpusAdapter):
    """CAS(ME)^3: picks the reader of the sheet that ``part`` names.

    One registry name (the module's) for three sheets whose columns and options differ: creating
    ``Casme3(dataset, cfg)`` returns the reader of ``cfg['part']``, which checks its own options.
    """

    options = {"part": PART}

    def __new__(cls, dataset: str, cfg: Mapping[str, Any]):
        if cls is not Casme3:
            return super().__new__(cls)
        part = cfg.get("part", "A") if isinstance(cfg, Mapping) else "A"
        if part not in PARTS:
            raise MerError(f"unknown CAS(ME)^3 part '{part}'", f"params data.{dataset}.part",
                           f"use one of {', '.join(PARTS)}")
        return super().__new__(PARTS[part])


class _PartA(Casme3):
    """Shared by the Part A readers: the frame layout and the damaged-frame list."""

    COLUMNS: dict[str, str] = {}
    WHAT = ""
    options = {
        "part": PART,
        "frames": Option(str, "data/part_A_split/part_A",
                         "folder under root holding spNO.1, spNO.2, ..."),
        "frame_template": Option(str, "{n}.jpg", "frame file name; {n} = frame number"),
        "modality": Option(str, "color", "sub-folder of a recording: color (or depth)"),
        "damaged_frames": Option((str, type(None)), "error_info_damaged_image_partA.txt",
                                 "official list of damaged frames, relative to root; null when "
                                 "your copy has none"),
        "fps": Option(float, 30.0, "frame rate of the recordings"),
    }

    def __init__(self, dataset: str, cfg: Mapping[str, Any]):
        super().__init__(dataset, cfg)
        self.sheet = self.root / self.cfg["sheet"]
        self.frames = self.cfg["frames"]
        self.template = self.check_template(self.cfg["frame_template"], "{n}.jpg")
        listed = self.cfg["damaged_frames"]
        self.damaged_path = self.root / listed if listed else None

    def check_layout(self) -> None:
        self.require_root(f"ln -s /path/to/part_A {self.root} (CAS(ME)^3 part_A)")
        self.require_folder(self.frames, "frames", "spNO.1")
        if self.damaged_path is not None and not self.damaged_path.is_file():
            raise MerError("official damaged-frame list not found", self.damaged_path,
                           f"set data.{self.dataset}.damaged_frames to its path (relative to "
                           "root), or to null if your copy has no such list")

    @functools.cached_property  # read once per adapter: frame_name asks for every frame
    def damaged(self) -> dict[tuple[str, str], frozenset[int]]:
        return read_damaged_list(self.damaged_path) if self.damaged_path is not None else {}

    def _sheet_rows(self, fields: dict[str, str]) -> list[tuple[dict[str, str], str]]:
        """(cells, where) per non-blank row; ``fields`` maps our names to the sheet's headers."""
        if not self.sheet.is_file():
            found = sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*.xls*")
                           if len(p.relative_to(self.root).parts) <= 3) if self.root.is_dir() else []
            raise MerError(f"{self.WHAT} not found", self.sheet,
                           f"set data.{self.dataset}.sheet (relative to root; spreadsheets "
                           f"found: {found})")
        df, index = read_table(self.sheet, fields, self.dataset, self.WHAT)
        rows = []
        for i, row in enumerate(df.itertuples(index=False), start=2):
            cells = {f: cell_text(row[j]) for f, j in zip(fields, index)}
            if any(cells.values()):
                rows.append((cells, f"{self.sheet.name} row {i}"))
        return rows

    def _annotation(self, cells: dict[str, str], where: str, apex_source: str = "") -> Annotation:
        video = cells["video"].lower()  # 'J' in the sheet, 'j' on disk
        clip = f"{video}_{cells['onset']}"
        hit = self.damaged.get((cells["subject"], video))
        if hit and cells["onset"].isdigit() and cells["offset"].isdigit():
            n = sum(int(cells["onset"]) <= f <= int(cells["offset"]) for f in hit)
            if n:
                log.warning("%s %s (%s): %d frame(s) are on the official damaged-frame list; "
                            "each is replaced by the nearest intact frame", cells["subject"], clip,
                            where, n)
        return Annotation(subject=cells["subject"], clip=clip, onset=cells["onset"],
                          apex=cells["apex"], offset=cells["offset"], aus=cells["aus"],
                          emotion=cells["emotion"], where=where, apex_source=apex_source)

    def frame_dir(self, subject: str, clip: str) -> str:
        video = clip.rsplit("_", 1)[0]
        return f"{self.frames}/{subject}/{video}/{self.cfg['modality']}"

    def frame_name(self, subject: str, clip: str, n: int) -> str:
        bad = self.damaged.get((subject, clip.rsplit("_", 1)[0]))
        if bad and n in bad:  # nearest intact frame before n, else after it
            before = next((m for m in range(n - 1, -1, -1) if m not in bad), None)
            n = before if before is not None else next(m for m in range(n + 1, n + len(bad) + 2)
                                                       if m not in bad)
        return self.template.format(n=n)

    def parse_aus(self, text: str) -> list[str]:
        return parse_casme3_aus(text, "+")


class Casme3A(_PartA):
    """CAS(ME)^3 Part A micro-expressions: the ME label sheet."""

    vocabulary = "casme3"
    WHAT = "CAS(ME)^3 Part A ME sheet"
    COLUMNS = {"subject": "Subject", "video": "Filename", "onset": "Onset", "apex": "Apex",
               "offset": "Offset", "aus": "AU", "emotion": "emotion"}
    options = {**_PartA.options,
               "sheet": Option(str, "annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
                               "ME label sheet, relative to root")}

    def annotations(self) -> list[Annotation]:
        return [self._annotation(cells, where) for cells, where in self._sheet_rows(self.COLUMNS)]


class Casme3AMacro(_PartA):
    """CAS(ME)^3 Part A clips of the combined .xls, macro-expressions by default."""

    vocabulary = "casme3_expression"
    WHAT = "CAS(ME)^3 Part A combined sheet (.xls)"
    COLUMNS = {"subject": "Subject", "video": "Filename", "onset": "Onset", "apex": "Apex",
               "offset": "Offset", "aus": "AU", "emotion": "Expression type"}
    options = {**_PartA.options,
               "sheet": Option(str, "annotation/CAS(ME)3_part_A_v2.xls",
                               "combined macro/micro sheet, relative to root"),
               "expression_types": Option(list, ["macro-expression"],
                                          "'Expression type' values to read"),
               "macro_apex_frame": Option(int, 5, "the N-th frame (1-based) of a macro clip "
                                          "stands in for its apex (MoExt); 0: annotated apex")}

    def __init__(self, dataset: str, cfg: Mapping[str, Any]):
        super().__init__(dataset, cfg)
        self.nth = self.cfg["macro_apex_frame"]
        if self.nth < 0:
            raise MerError(f"macro_apex_frame must be >= 0, got {self.nth}",
                           f"params data.{dataset}.macro_apex_frame", "use 5 (MoExt) or 0")
        vocab = get_vocabulary(self.vocabulary)
        self.types = []
        for t in self.cfg["expression_types"]:
            name = vocab.normalise(str(t))
            if name is None:
                raise MerError(f"unknown expression type '{t}'",
                               f"params data.{dataset}.expression_types",
                               f"use some of {list(vocab.emotions)}")
            self.types.append(name)
        self.vocab = vocab

    def annotations(self) -> list[Annotation]:
        out = []
        for cells, where in self._sheet_rows(self.COLUMNS):
            kind = self.vocab.normalise(cells["emotion"])
            if kind is not None and kind not in self.types:
                continue  # a row of a type not asked for (unknown types reach the checks)
            source = ""
            if kind == "macro-expression" and self.nth and cells["onset"].isdigit():
                cells = {**cells, "apex": str(int(cells["onset"]) + self.nth - 1)}
                source = f"frame{self.nth}"
            out.append(self._annotation(cells, where, source))
        return out


class Casme3C(Casme3):
    """CAS(ME)^3 Part C (mock crime): its ME sheet; the folder layout is configurable."""

    vocabulary = "casme3_c"
    COLUMNS = {"subject": "sub", "count": "count", "onset": "onset", "offset": "offset",
               "aus": "au", "emotion": "emotion"}
    options = {
        "part": PART,
        "sheet": Option(str, "CAS(ME)3_part_C_ME.xlsx", "Part C ME sheet, relative to root"),
        "frame_dir": Option(str, "{subject}/color",
                            "folder of a subject's frames under root; {subject} = sheet's sub"),
        "frame_template": Option(str, "{n}.jpg", "frame file name; {n} = frame number"),
        "fps": Option(float, 30.0, "frame rate of the recordings"),
    }

    def __init__(self, dataset: str, cfg: Mapping[str, Any]):
        super().__init__(dataset, cfg)
        self.sheet = self.root / self.cfg["sheet"]
        try:
            ok = (self.cfg["frame_template"].format(n=1) != self.cfg["frame_template"].format(n=2)
                  and bool(self.cfg["frame_dir"].format(subject="1")))
            why = ""
        except (KeyError, IndexError, ValueError) as exc:
            ok, why = False, f" ({exc!r})"
        if not ok:
            raise MerError(f"frame_dir/frame_template are not templates with {{subject}}/{{n}}{why}",
                           f"params data.{dataset}", "use e.g. '{subject}/color' and '{n}.jpg'")

    def check_layout(self) -> None:
        self.require_root(f"ln -s /path/to/part_C {self.root} (CAS(ME)^3 part_C)")

    def annotations(self) -> list[Annotation]:
        if not self.sheet.is_file():
            raise MerError("Part C ME sheet not found", self.sheet,
                           f"set data.{self.dataset}.sheet to its path relative to root")
        df, index = read_table(self.sheet, self.COLUMNS, self.dataset, "CAS(ME)^3 Part C sheet")
        out = []
        for i, row in enumerate(df.itertuples(index=False), start=2):
            c = {f: cell_text(row[j]) for f, j in zip(self.COLUMNS, index)}
            if any(c.values()):
                out.append(Annotation(subject=c["subject"], clip=c["count"], onset=c["onset"],
                                      apex="", offset=c["offset"], aus=c["aus"],
                                      emotion=c["emotion"], where=f"{self.sheet.name} row {i}"))
        return out

    def frame_dir(self, subject: str, clip: str) -> str:
        return self.cfg["frame_dir"].format(subject=subject)

    def frame_name(self, subject: str, clip: str, n: int) -> str:
        return self.cfg["frame_template"].format(n=n)

    def parse_aus(self, text: str) -> list[str]:
        return parse_casme3_aus(text, ",，")

    def clip_id(self, subject: str, clip: str) -> str:
        return safe_id(f"sub{subject}_{clip}")


PARTS: dict[str, type[Casme3]] = {"A": Casme3A, "A_macro": Casme3AMacro, "C": Casme3C}
