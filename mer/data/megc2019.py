"""The MEGC2019 composite: SMIC-HS + CASME II + SAMM, exactly the clips of the official list.

The list (``MEGC2019_combined_3class_gt.csv``: no header; corpus, subject, clip, label with
0 negative, 1 positive, 2 surprise) decides which clips belong and what their class is.  The
composite is never re-derived from the members' coding sheets: such a derivation differs from
the official list in a few clips.  Each member corpus is read through its own adapter, fix table
and validation (:func:`mer.data.ingest.ingest` restricted to the listed clips), so the composite
inherits every check of its members.

Config (``data.megc2019``)::

    adapter: megc2019
    root: data/raw/megc2019            # holds the list and one folder (or link) per member
    list: MEGC2019_combined_3class_gt.csv
    members:                           # key = the corpus name the list uses
      smic:   {adapter: smic, root: smic}
      casme2: {adapter: casme2, root: casme2}
      samm:   {adapter: samm, root: samm}

A member's ``root`` is relative to the composite's root, so every ``frame_dir`` of the composite's
manifest stays relative to that one root (``casme2/CASME2_RAW_selected/sub01/EP02_01f``) and no
absolute path reaches params or ``dvc.lock``.

The list writes ids its own way; :data:`ID_MAPS` turns them into each member adapter's:
CASME II 'sub01' -> '01'; SAMM '6' -> '006'; SMIC 's01' / 's01_ne_01' -> 's1' / 's1_ne_01'.
Manifest rows keep the member's subject and set ``corpus`` to the member, so the LOSO key
``corpus/subject`` never merges subjects of two corpora (68 folds); ``clip_id`` is
``<corpus>_<member clip id>``; the only label column is ``megc2019_3class`` (from the list), while
``emotion``/``emotion_raw`` keep what the member's sheet says.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from typing import Any, Callable, Mapping

from mer.data.adapters import Annotation, Option, register_adapter
from mer.data.composite import Composite
from mer.data.ingest import ingest
from mer.data.manifest import Clip
from mer.data.schemes import get_vocabulary
from mer.errors import MerError

SCHEME = "megc2019_3class"


def _casme2(subject: str, clip: str) -> tuple[str, str]:
    return re.sub(r"^sub", "", subject, flags=re.IGNORECASE), clip


def _samm(subject: str, clip: str) -> tuple[str, str]:
    return (subject.zfill(3) if subject.isdigit() else subject), clip


def _unpad(text: str) -> str:
    """'s01_ne_01' -> 's1_ne_01': SMIC's folders do not zero-pad the subject number."""
    return re.sub(r"^s0*(\d)", r"s\1", text, flags=re.IGNORECASE)


def _smic(subject: str, clip: str) -> tuple[str, str]:
    return _unpad(subject), _unpad(clip)


# member adapter name -> (list subject, list clip) -> (adapter subject, adapter clip)
ID_MAPS: dict[str, Callable[[str, str], tuple[str, str]]] = {
    "casme2": _casme2, "samm": _samm, "smic": _smic}


@dataclasses.dataclass(frozen=True)
class ListedClip:
    """One row of the official list, with ids already in the member adapter's spelling."""

    member: str
    subject: str
    clip: str
    label: str   # class name of megc2019_3class
    code: str    # the list's cell ('0', '1', '2')
    where: str   # list file and line


@register_adapter("megc2019")
class Megc2019(Composite):
    """A composite of member corpora, each read by its own adapter, restricted to a list."""

    vocabulary = "megc2019"
    options = {
        "list": Option(str, "MEGC2019_combined_3class_gt.csv",
                       "the official composite list, relative to root"),
        **Composite.options,
    }
    root_holds = "the official list and "

    def __init__(self, dataset: str, cfg: Mapping[str, Any]):
        super().__init__(dataset, cfg)
        self.list_path = self.root / self.cfg["list"]

    def check_member_adapter(self, name: str, where: str) -> None:
        if name not in ID_MAPS:
            raise MerError(f"no id mapping from the list to adapter '{name}'", where,
                           f"use one of {', '.join(ID_MAPS)}")

    # -------------------------------------------------------------------- the official list
    def listed(self) -> list[ListedClip]:
        """Rows of the official list, in list order; a malformed row is a MerError."""
        if not self.list_path.is_file():
            found = sorted(p.name for p in self.root.glob("*.csv")) if self.root.is_dir() else []
            raise MerError("composite list not found", self.list_path,
                           f"put the official list there or set data.{self.dataset}.list "
                           f"(CSV files in {self.root}: {found})")
        vocab = get_vocabulary(self.vocabulary)
        out: list[ListedClip] = []
        seen: dict[tuple[str, str, str], str] = {}
        with self.list_path.open(newline="", encoding="utf-8-sig") as f:
            for line, row in enumerate(csv.reader(f), start=1):
                where = f"{self.list_path.name}:{line}"
                cells = [c.strip() for c in row]
                if not any(cells):
                    continue
                if len(cells) != 4:
                    raise MerError(f"expected 4 cells (corpus, subject, clip, label), got {row}",
                                   where, "restore the official list (it has no header)")
                corpus, subject, clip, code = cells
                label = vocab.normalise(code)
                if label is None:
                    raise MerError(f"label '{code}' is not 0, 1 or 2", where,
                                   "restore the official list (it has no header)")
                if corpus not in self.members:
                    raise MerError(f"corpus '{corpus}' has no member config", where,
                                   f"add data.{self.dataset}.members.{corpus}")
                adapter = self.members[corpus]
                subject, clip = ID_MAPS[adapter.name](subject, clip)
                key = (corpus, subject, clip)
                if key in seen:
                    raise MerError(f"clip {corpus} {subject} {clip} is listed twice (also "
                                   f"{seen[key]})", where, "remove the duplicate line")
                seen[key] = where
                out.append(ListedClip(corpus, subject, clip, label, code, where))
        return out

    # ------------------------------------------------------------------ CorpusAdapter API
    # The composite's own annotations are the list's rows with subjects 'member/subject'; paths
    # are the member's, under the member's folder.
    def annotations(self) -> list[Annotation]:
        return [Annotation(subject=f"{c.member}/{c.subject}", clip=c.clip, onset="", apex="",
                           offset="", aus="", emotion=c.code, where=c.where)
                for c in self.listed()]

    def parse_aus(self, text: str) -> list[str]:
        if text.strip():
            raise ValueError(f"the composite list codes no action units, got '{text}'")
        return []

    # ------------------------------------------------------------------------------ ingest
    def ingest_composite(self, workers: int | None, apex_policy: str) -> list[Clip]:
        """Manifest rows of the listed clips, in list order, each validated by its member.

        Every member is ingested (restricted to its listed clips) before anything is reported,
        so one MerError lists the problems of all members.
        """
        self.check_layout_root()
        rows = self.listed()
        found: dict[tuple[str, str, str], Clip] = {}
        errors: list[str] = []
        for member in self.members:
            only = {(r.subject, r.clip): r.where for r in rows if r.member == member}
            if not only:
                continue
            try:
                clips = ingest(member, self.member_cfg[member], workers, apex_policy, only=only)
            except MerError as exc:
                errors.append(f"member '{member}' ({self.member_cfg[member]['root']}): {exc}")
                continue
            found.update({(member, c.subject, c.clip): c for c in clips})
        if errors:
            raise MerError(f"{len(errors)} member(s) of dataset '{self.dataset}' have problems:\n"
                           + "\n".join(errors), self.root,
                           "apply each line's fix, then re-run ingest")
        out = []
        for r in rows:
            c = found[(r.member, r.subject, r.clip)]
            out.append(dataclasses.replace(
                c, clip_id=f"{r.member}_{c.clip_id}",
                frame_dir=f"{self.member_dir[r.member]}/{c.frame_dir}",
                labels={SCHEME: r.label}))
        return out

