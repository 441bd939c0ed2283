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
from pathlib import PurePosixPath
from typing import Any, Callable, Mapping

from mer.data.adapters import (
    Annotation,
    CorpusAdapter,
    Option,
    adapter_class,
    register_adapter,
)
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
class Megc2019(CorpusAdapter):
    """A composite of member corpora, each read by its own adapter, restricted to a list."""

    vocabulary = "megc2019"
    options = {
        "list": Option(str, "MEGC2019_combined_3class_gt.csv",
                       "the official composite list, relative to root"),
        "members": Option(dict, help="corpus name of the list -> that member's adapter config; "
                                     "its root is relative to this root"),
        "fps": Option(float, 1.0, "not settable: each clip keeps its member's frame rate"),
    }

    @classmethod
    def _resolve(cls, dataset: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
        if "fps" in cfg:  # would be silently meaningless: every member has its own frame rate
            raise MerError("a composite has no frame rate of its own", f"params data.{dataset}.fps",
                           "remove 'fps'; set it in the member's config if needed")
        return super()._resolve(dataset, cfg)

    def __init__(self, dataset: str, cfg: Mapping[str, Any]):
        super().__init__(dataset, cfg)
        self.list_path = self.root / self.cfg["list"]
        self.members: dict[str, CorpusAdapter] = {}
        self.member_cfg: dict[str, dict[str, Any]] = {}
        self.member_dir: dict[str, str] = {}
        for member, mcfg in self.cfg["members"].items():
            where = f"params data.{dataset}.members.{member}"
            if not isinstance(mcfg, Mapping) or "adapter" not in mcfg or "root" not in mcfg:
                raise MerError("a member needs at least 'adapter' and 'root'", where,
                               f"e.g. {member}: {{adapter: {member}, root: {member}}}")
            rel = PurePosixPath(str(mcfg["root"]))
            if rel.is_absolute() or ".." in rel.parts:
                raise MerError(f"member root '{rel}' must be a folder inside {self.root}", where,
                               f"link the corpus there (ln -s /path/to/corpus "
                               f"{self.root}/{member}) and set root: {member}")
            name = str(mcfg["adapter"])
            if name not in ID_MAPS:
                raise MerError(f"no id mapping from the list to adapter '{name}'", where,
                               f"use one of {', '.join(ID_MAPS)}")
            full = {**mcfg, "root": str(self.root / rel)}
            full.setdefault("corpus", member)
            try:
                self.members[member] = adapter_class(name, where)(member, full)
            except MerError as exc:  # name the member's place in the composite's config
                raise MerError(exc.what, where, exc.fix) from None
            self.member_cfg[member] = full
            self.member_dir[member] = rel.as_posix()

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
    def check_layout(self) -> None:
        self.check_layout_root()
        for adapter in self.members.values():
            adapter.check_layout()

    def annotations(self) -> list[Annotation]:
        return [Annotation(subject=f"{c.member}/{c.subject}", clip=c.clip, onset="", apex="",
                           offset="", aus="", emotion=c.code, where=c.where)
                for c in self.listed()]

    def _split(self, subject: str) -> tuple[str, CorpusAdapter, str]:
        member, _, inner = subject.partition("/")
        if member not in self.members:
            raise MerError(f"subject '{subject}' names no member", f"params data.{self.dataset}")
        return member, self.members[member], inner

    def frame_dir(self, subject: str, clip: str) -> str:
        member, adapter, inner = self._split(subject)
        return f"{self.member_dir[member]}/{adapter.frame_dir(inner, clip)}"

    def frame_name(self, subject: str, clip: str, n: int) -> str:
        _, adapter, inner = self._split(subject)
        return adapter.frame_name(inner, clip, n)

    def parse_aus(self, text: str) -> list[str]:
        if text.strip():
            raise ValueError(f"the composite list codes no action units, got '{text}'")
        return []

    def clip_id(self, subject: str, clip: str) -> str:
        member, adapter, inner = self._split(subject)
        return f"{member}_{adapter.clip_id(inner, clip)}"

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

    def check_layout_root(self) -> None:
        """The composite's own folder (members check theirs when they are ingested)."""
        if not self.root.is_dir():
            raise MerError("composite folder not found", self.root,
                           f"create it with the official list and one link per member: "
                           f"{', '.join(f'{m} -> /path/to/{m}' for m in self.members)}")
