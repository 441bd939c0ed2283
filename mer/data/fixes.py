"""The fix table: documented corrections of annotation errors, applied as data.

Why a table: a silent edit in code ("if clip == 'EP12_01f': apex = 291") cannot be reviewed,
cited or switched off.  Each row here names the corpus, subject and clip, the field, the value the
sheet has (``old``) and the value to use (``new``), where the correction comes from (``source``)
and why (``reason``); the manifest's ``fixes`` column lists the ids applied to each clip.

A row applies only while the sheet still holds ``old`` (compared as trimmed text), so a revised
sheet that already corrects the value is not "fixed" twice.  A row whose clip is missing from the
sheet, or whose ``old`` no longer matches, is logged as a warning, not applied.

Fields: ``onset``, ``apex``, ``offset`` (a frame number), ``emotion``, ``aus`` (a cell value).
``apex`` may also be ``midpoint``: the clip's apex becomes its middle frame and the manifest says
``apex_source = midpoint`` (for a clip that has no annotated apex and no published one).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mer.data.adapters import Annotation
from mer.errors import MerError

FIX_FILE = Path(__file__).with_name("fixes.csv")
COLUMNS = ("id", "corpus", "subject", "clip", "field", "old", "new", "source", "reason")
FIELDS = ("onset", "apex", "offset", "emotion", "aus")  # Annotation attributes a fix may set
MIDPOINT = "midpoint"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fix:
    """One row of a fix table."""

    id: str
    corpus: str
    subject: str
    clip: str
    field: str
    old: str
    new: str
    source: str
    reason: str
    where: str  # table file and line, for messages


def _check(fix: Fix) -> str | None:
    """What is wrong with a row, or None."""
    if not fix.id or not fix.corpus or not fix.subject or not fix.clip:
        return "id, corpus, subject and clip must all be given"
    if fix.field not in FIELDS:
        return f"field '{fix.field}' is not one of {', '.join(FIELDS)}"
    if not fix.source or not fix.reason:
        return "every fix needs a source and a reason"
    if fix.field in ("onset", "offset") and not fix.new.isdigit():
        return f"new {fix.field} '{fix.new}' is not a frame number"
    if fix.field == "apex" and not (fix.new.isdigit() or fix.new == MIDPOINT):
        return f"new apex '{fix.new}' is neither a frame number nor '{MIDPOINT}'"
    return None


def read_fix_table(path: str | Path) -> list[Fix]:
    """Rows of one fix table (CSV with :data:`COLUMNS`); a malformed row is a MerError."""
    path = Path(path)
    if not path.is_file():
        raise MerError("fix table not found", path,
                       "correct the path in data.<dataset>.extra_fixes, or remove it")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise MerError(f"fix table columns are {reader.fieldnames}, expected {list(COLUMNS)}",
                           path, "use the header of mer/data/fixes.csv")
        rows = []
        for line, row in enumerate(reader, start=2):
            fix = Fix(**{k: (row[k] or "").strip() for k in COLUMNS}, where=f"{path}:{line}")
            if problem := _check(fix):
                raise MerError(problem, fix.where, "correct the row (see mer/data/fixes.py)")
            rows.append(fix)
    return rows


class FixTable:
    """Fixes of one corpus, looked up by (subject, clip)."""

    def __init__(self, fixes: list[Fix], corpus: str):
        seen: dict[str, Fix] = {}
        for fix in fixes:
            if fix.id in seen:
                raise MerError(f"fix id '{fix.id}' also used at {seen[fix.id].where}", fix.where,
                               "give every fix row a unique id")
            seen[fix.id] = fix
        self.corpus = corpus
        self.fixes = [f for f in fixes if f.corpus == corpus]
        self._used: set[str] = set()
        self._by_clip: dict[tuple[str, str], list[Fix]] = {}
        for fix in self.fixes:
            self._by_clip.setdefault((fix.subject, fix.clip), []).append(fix)

    @classmethod
    def load(cls, corpus: str, extra: Sequence[Path] = ()) -> "FixTable":
        """The packaged table plus ``extra`` tables, restricted to ``corpus``."""
        fixes = [f for path in (FIX_FILE, *extra) for f in read_fix_table(path)]
        return cls(fixes, corpus)

    def apply(self, ann: Annotation) -> tuple[Annotation, list[str]]:
        """``ann`` with its matching fixes applied (in table order), and their ids."""
        applied = []
        for fix in self._by_clip.get((ann.subject, ann.clip), []):
            self._used.add(fix.id)
            current = getattr(ann, fix.field)
            if current.strip() != fix.old:
                log.warning("fix %s (%s) not applied: %s %s has %s '%s', the fix expects '%s'",
                            fix.id, fix.where, ann.subject, ann.clip, fix.field, current, fix.old)
                continue
            ann = dataclasses.replace(ann, **{fix.field: fix.new})
            applied.append(fix.id)
        return ann, applied

    def warn_unused(self) -> list[Fix]:
        """Log (and return) the fixes whose clip never appeared in the sheet."""
        unused = [f for f in self.fixes if f.id not in self._used]
        for fix in unused:
            log.warning("fix %s (%s): clip %s %s of corpus %s is not in the sheet",
                        fix.id, fix.where, fix.subject, fix.clip, fix.corpus)
        return unused
