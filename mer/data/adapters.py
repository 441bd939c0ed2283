"""The corpus adapter interface and its registry.

An adapter knows one corpus's *conventions*: where its coding sheet is and how to read it, how
its folders and frame files are named, how its action units are written.  It does not decide
anything: fixes, the apex policy, emotion normalisation, label schemes and frame validation are
shared by every corpus in :mod:`mer.data.ingest`, so a new corpus is one small module here plus
one ``conf/dataset/<name>.yaml``::

    @register_adapter("samm")
    class Samm(CorpusAdapter):
        vocabulary = "samm"                       # a vocabulary of schemes.yaml
        options = {"sheet": Option(str, "SAMM_Micro_FACS_Codes_v2.xlsx"), ...}
        def annotations(self): ...                # the sheet's rows as Annotation records
        def frame_dir(self, subject, clip): ...   # folder of a clip's frames, relative to root
        def frame_name(self, subject, clip, n): ...
        def parse_aus(self, text): ...

The registry name is also the module name (``mer/data/<name>.py``), so :func:`adapter_class`
imports an adapter on first use and nothing has to list the adapters by hand.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import math
import pkgutil
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from mer.errors import MerError

REQUIRED = object()  # an Option default meaning "the dataset config must give it"


@dataclass(frozen=True)
class Option:
    """One config key of an adapter: accepted type(s), default (or REQUIRED), what it means."""

    kind: type | tuple[type, ...]
    default: Any = REQUIRED
    help: str = ""


@dataclass(frozen=True)
class Annotation:
    """One clip as the corpus's sheet gives it, every cell as trimmed text.

    Text, not numbers, because the fix table matches and replaces cell values verbatim and the
    manifest keeps the raw cells; :mod:`mer.data.ingest` parses and checks them.
    """

    subject: str   # as the corpus writes it ('01'); the subject of LOSO folds
    clip: str      # clip folder name ('EP02_01f')
    onset: str
    apex: str      # '' or a placeholder such as '/' when the sheet gives none
    offset: str
    aus: str       # action-unit cell, verbatim
    emotion: str   # emotion cell, verbatim
    where: str     # sheet file and row, for error messages
    # set only when the adapter, not the sheet, chose ``apex`` (e.g. 'frame5': the 5th frame of a
    # macro-expression standing in for its apex); becomes the manifest's apex_source
    apex_source: str = ""
    # the clip's annotations on vocabularies other than the adapter's emotion vocabulary, as
    # (vocabulary, cell) pairs, e.g. (('casme2_objective', '3'),): schemes over such a vocabulary
    # label the clip from that cell instead of the emotion (CASME II's objective classes)
    extra_labels: tuple[tuple[str, str], ...] = ()


def cell_text(value: Any) -> str:
    """A spreadsheet cell as trimmed text: empty for blank/NaN, '46' for 46 or 46.0."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return "" if text.lower() == "nan" else text


def safe_id(text: str) -> str:
    """A filesystem-safe id: characters other than letters, digits, '.', '_' and '-' become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


class CorpusAdapter(ABC):
    """Reads one corpus: its coding sheet (:meth:`annotations`) and its folder layout."""

    name: ClassVar[str] = ""              # registry name, set by @register_adapter
    vocabulary: ClassVar[str] = ""        # emotion vocabulary of schemes.yaml
    options: ClassVar[dict[str, Option]] = {}  # adapter-specific config keys, 'fps' among them

    # keys every dataset config may hold, whatever its adapter
    COMMON: ClassVar[dict[str, Option]] = {
        "adapter": Option(str, help="registry name of the adapter (a module of mer.data)"),
        "root": Option((str, Path), help="the corpus folder, e.g. data/raw/casme2 (a symlink)"),
        "corpus": Option((str, type(None)), None,
                         help="corpus name in the manifest and fix table (default: dataset)"),
        "extra_fixes": Option(list, [], help="more fix tables (CSV, same columns as fixes.csv)"),
    }

    def __init__(self, dataset: str, cfg: Mapping[str, Any]):
        self.dataset = dataset
        self.cfg = self._resolve(dataset, cfg)
        self.root = Path(self.cfg["root"])
        self.corpus: str = self.cfg["corpus"] or dataset
        self.extra_fixes = [Path(p) for p in self.cfg["extra_fixes"]]
        self.fps = float(self.cfg["fps"])  # every adapter declares an 'fps' option
        if self.fps <= 0:
            raise MerError(f"fps must be positive, got {self.fps}", f"params data.{dataset}.fps")

    @classmethod
    def _resolve(cls, dataset: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """Config with defaults filled in; an unknown, missing or mistyped key is a MerError."""
        spec = {**cls.COMMON, **cls.options}
        where = f"params data.{dataset}"
        for key in cfg:
            if key not in spec:
                close = difflib.get_close_matches(str(key), spec, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise MerError(f"unknown key '{key}' for adapter '{cls.name}'", where,
                               f"{hint}allowed keys: {', '.join(sorted(spec))}")
        out = {}
        for key, opt in spec.items():
            if key in cfg:
                value = cfg[key]
            elif opt.default is REQUIRED:
                raise MerError(f"missing key '{key}' ({opt.help})", where, f"add '{key}: ...'")
            else:
                value = opt.default
            kinds = opt.kind if isinstance(opt.kind, tuple) else (opt.kind,)
            if float in kinds:
                kinds = (*kinds, int)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise MerError(f"'{key}' must be {' or '.join(k.__name__ for k in kinds)}, "
                               f"got {value!r}", where, opt.help or None)
            out[key] = list(value) if isinstance(value, list) else value
        return out

    # ------------------------------------------------------------------ checks adapters share
    def check_template(self, template: str, example: str, key: str = "frame_template",
                       **fields: str) -> str:
        """``template`` must give two frame numbers two names; else one MerError naming the key."""
        try:
            ok, why = template.format(n=1, **fields) != template.format(n=2, **fields), ""
        except (KeyError, IndexError, ValueError) as exc:
            ok, why = False, f" ({exc!r})"
        if not ok:
            raise MerError(f"{key} '{template}' is not a file name with {{n}}{why}",
                           f"params data.{self.dataset}.{key}", f"use e.g. '{example}'")
        return template

    def require_root(self, link_hint: str) -> None:
        """The corpus folder exists, or one MerError saying how to link it."""
        if not self.root.is_dir():
            raise MerError("corpus folder not found", self.root, f"link your copy: {link_hint}")

    def require_folder(self, sub: str, key: str, holds: str, what: str = "frame folder") -> Path:
        """``root/sub`` exists, or one MerError listing the folders that are there instead."""
        folder = self.root / sub
        if not folder.is_dir():
            present = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            raise MerError(f"{what} '{sub}' not found (folders there: {present})", folder,
                           f"set data.{self.dataset}.{key} to the folder holding {holds}")
        return folder

    def require_sheet(self, path: Path, key: str = "sheet") -> Path:
        """The coding sheet exists, or one MerError listing the spreadsheets that are there."""
        if not path.is_file():
            sheets = sorted(p.name for p in self.root.glob("*.xls*")) if self.root.is_dir() else []
            raise MerError("coding sheet not found", path,
                           f"set data.{self.dataset}.{key} to the coding sheet's name "
                           f"(spreadsheets in {self.root}: {sheets})")
        return path

    # ------------------------------------------------------------------ what an adapter supplies
    @abstractmethod
    def check_layout(self) -> None:
        """Raise a MerError when the corpus folder itself is absent or not this corpus's layout.

        Runs before any per-clip check, so a wrong ``root`` gives one message, not one per clip.
        """

    @abstractmethod
    def annotations(self) -> list[Annotation]:
        """Every clip of the coding sheet, in sheet order; an unreadable sheet is a MerError."""

    @abstractmethod
    def frame_dir(self, subject: str, clip: str) -> str:
        """Folder of the clip's frames relative to ``root`` (POSIX separators)."""

    @abstractmethod
    def frame_name(self, subject: str, clip: str, n: int) -> str:
        """File name of frame number ``n`` (the corpus's own numbering) of a clip."""

    @abstractmethod
    def parse_aus(self, text: str) -> list[str]:
        """The action units of an AU cell; ValueError naming the part it cannot read."""

    def clip_id(self, subject: str, clip: str) -> str:
        """Unique, filesystem-safe id of a clip within the dataset."""
        return safe_id(f"{subject}_{clip}")


# ---------------------------------------------------------------------------------- registry
_ADAPTERS: dict[str, type[CorpusAdapter]] = {}


def register_adapter(name: str) -> Callable[[type[CorpusAdapter]], type[CorpusAdapter]]:
    """Class decorator: make an adapter available to dataset configs as ``adapter: <name>``."""
    def add(cls: type[CorpusAdapter]) -> type[CorpusAdapter]:
        if name in _ADAPTERS and _ADAPTERS[name] is not cls:
            raise ValueError(f"adapter '{name}' is registered twice")
        cls.name = name
        _ADAPTERS[name] = cls
        return cls
    return add


def available_adapters() -> list[str]:
    """Names of every adapter module of :mod:`mer.data` (imports them to register)."""
    import mer.data
    for info in pkgutil.iter_modules(mer.data.__path__):
        if info.name not in _ADAPTERS and not info.name.startswith("_"):
            importlib.import_module(f"mer.data.{info.name}")
    return sorted(_ADAPTERS)


def adapter_class(name: str, where: str = "params") -> type[CorpusAdapter]:
    """The adapter registered as ``name``, importing ``mer.data.<name>`` on first use."""
    if name not in _ADAPTERS and re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        if importlib.util.find_spec(f"mer.data.{name}") is not None:
            importlib.import_module(f"mer.data.{name}")
    if name not in _ADAPTERS:
        raise MerError(f"unknown corpus adapter '{name}'", where,
                       f"set 'adapter' to one of {', '.join(available_adapters())}")
    return _ADAPTERS[name]


def make_adapter(dataset: str, cfg: Mapping[str, Any]) -> CorpusAdapter:
    """The adapter a dataset config names, with its config checked."""
    if not isinstance(cfg, Mapping) or "adapter" not in cfg:
        raise MerError("the dataset config has no 'adapter' key", f"params data.{dataset}",
                       "add 'adapter: casme2' (or another adapter name)")
    return adapter_class(str(cfg["adapter"]), f"params data.{dataset}.adapter")(dataset, cfg)
