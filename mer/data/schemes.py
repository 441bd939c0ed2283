"""Label schemes and emotion vocabularies, read from ``schemes.yaml`` (data, not code).

Why data: every corpus and protocol in the literature groups emotions differently (CASME II
5-class, 3-class composite, SAMM 5-class, ...).  Adding one is a few lines of YAML, and the loader
checks what a hand edit could get wrong: a scheme must say what happens to *every* emotion of its
vocabulary (a class or an explicit drop) and its class order must cover exactly the classes used,
because confusion matrices and probability columns are laid out in that order.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from mer.errors import MerError

SCHEMES_FILE = Path(__file__).with_name("schemes.yaml")


@dataclass(frozen=True)
class Vocabulary:
    """The canonical emotion names of one annotation convention, and spellings that mean them."""

    name: str
    emotions: tuple[str, ...]
    aliases: dict[str, str]

    def normalise(self, raw: str) -> str | None:
        """Canonical name of a sheet's emotion cell, or None when it is not in this vocabulary."""
        key = _fold(raw)
        key = self.aliases.get(key, key)
        return key if key in self.emotions else None


@dataclass(frozen=True)
class LabelScheme:
    """A grouping of a vocabulary's emotions into classes, in a fixed class order."""

    name: str
    vocabulary: str
    classes: tuple[str, ...]
    mapping: dict[str, str | None]  # emotion -> class, None = clips of that emotion are dropped

    def label(self, emotion: str) -> str:
        """Class of a (normalised) emotion; '' when the scheme drops it (the manifest's value)."""
        return self.mapping[emotion] or ""

    def index(self, cls: str) -> int:
        """Position of ``cls`` in the class order (row of the confusion matrix)."""
        return self.classes.index(cls)


def _fold(text: str) -> str:
    """Lower case, trimmed, inner white space collapsed: 'Happiness ' -> 'happiness'."""
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def load_schemes(path: str | Path = SCHEMES_FILE
                 ) -> tuple[dict[str, Vocabulary], dict[str, LabelScheme]]:
    """Read and check a schemes file; any inconsistency is a MerError naming the entry."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MerError(f"cannot read the label schemes ({exc})", path, "restore the file from git")
    if not isinstance(doc, dict) or set(doc) != {"vocabularies", "schemes"}:
        raise MerError("expected exactly the top-level keys 'vocabularies' and 'schemes'", path,
                       "restore the file's structure (see its header comment)")

    vocabularies: dict[str, Vocabulary] = {}
    for name, spec in doc["vocabularies"].items():
        where = f"{path} (vocabularies.{name})"
        if not isinstance(spec, dict) or not {"emotions"} <= set(spec) <= {"emotions", "aliases"}:
            raise MerError("a vocabulary has 'emotions' (a list) and optional 'aliases'", where)
        emotions = tuple(_fold(e) for e in spec["emotions"])
        aliases = {_fold(k): _fold(v) for k, v in (spec.get("aliases") or {}).items()}
        if len(set(emotions)) != len(emotions):
            raise MerError(f"duplicate emotions in {list(emotions)}", where)
        if bad := sorted(v for v in aliases.values() if v not in emotions):
            raise MerError(f"aliases point to emotions {bad} outside the vocabulary", where)
        vocabularies[name] = Vocabulary(name, emotions, aliases)

    schemes: dict[str, LabelScheme] = {}
    for name, spec in doc["schemes"].items():
        where = f"{path} (schemes.{name})"
        if not isinstance(spec, dict) or set(spec) != {"vocabulary", "classes", "map"}:
            raise MerError("a scheme has exactly the keys vocabulary, classes and map", where)
        vocab = vocabularies.get(spec["vocabulary"])
        if vocab is None:
            raise MerError(f"unknown vocabulary '{spec['vocabulary']}'", where,
                           f"use one of {sorted(vocabularies)}")
        mapping = {_fold(k): (None if v is None else str(v)) for k, v in spec["map"].items()}
        classes = tuple(str(c) for c in spec["classes"])
        if set(mapping) != set(vocab.emotions):
            missing = sorted(set(vocab.emotions) - set(mapping))
            extra = sorted(set(mapping) - set(vocab.emotions))
            raise MerError(f"map must list every emotion of '{vocab.name}' exactly "
                           f"(missing {missing}, not in the vocabulary {extra})", where,
                           "map each emotion to a class, or to null to drop its clips")
        used = {c for c in mapping.values() if c is not None}
        if len(set(classes)) != len(classes) or set(classes) != used:
            raise MerError(f"classes {list(classes)} must list each mapped class {sorted(used)} "
                           "exactly once", where)
        schemes[name] = LabelScheme(name, vocab.name, classes, mapping)
    return vocabularies, schemes


@functools.lru_cache(maxsize=1)
def _packaged() -> tuple[dict[str, Vocabulary], dict[str, LabelScheme]]:
    return load_schemes(SCHEMES_FILE)


def label_schemes() -> dict[str, LabelScheme]:
    """Every scheme of the project, by name (e.g. ``casme2_5class``)."""
    return dict(_packaged()[1])


def get_scheme(name: str) -> LabelScheme:
    """One scheme by name; an unknown name is a MerError listing the known ones."""
    schemes = _packaged()[1]
    if name not in schemes:
        raise MerError(f"unknown label scheme '{name}'", SCHEMES_FILE,
                       f"use one of {sorted(schemes)} or add it to {SCHEMES_FILE.name}")
    return schemes[name]


def get_vocabulary(name: str) -> Vocabulary:
    """One emotion vocabulary by name (an adapter's ``vocabulary``)."""
    vocabularies = _packaged()[0]
    if name not in vocabularies:
        raise MerError(f"unknown emotion vocabulary '{name}'", SCHEMES_FILE,
                       f"use one of {sorted(vocabularies)} or add it to {SCHEMES_FILE.name}")
    return vocabularies[name]


def schemes_for(vocabulary: str) -> list[LabelScheme]:
    """The schemes defined over ``vocabulary``, in file order: the manifest's label columns."""
    return [s for s in _packaged()[1].values() if s.vocabulary == vocabulary]
