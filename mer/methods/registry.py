"""The method registry: registry name == params key ``models.<name>`` == ``train@<name>``.

A method is a class with

* ``inputs``: the artifact kinds it reads (see :mod:`mer.artifacts`),
* ``Params``: a dataclass of its hyper-parameters (the ``models.<name>`` section, validated),
* ``fit(train: Samples, rng: numpy.random.Generator)`` on training subjects only,
* ``predict_proba(test: Samples) -> (n_test, n_classes)``; ``test.y`` is ``None`` by construction.

The shared train stage owns the protocol loop and makes a fresh instance per fold.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer.config import validate
from mer.errors import MerError
from mer.io import load_npz

METHODS: dict[str, type] = {}


def register(name: str):
    """Class decorator: make a method available under ``name``."""
    def deco(cls):
        cls.name = name
        METHODS[name] = cls
        return cls
    return deco


def _import_all() -> None:
    import mer.methods as pkg
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name not in {"registry"}:
            importlib.import_module(f"mer.methods.{info.name}")


def get_method(name: str) -> type:
    _import_all()
    if name not in METHODS:
        raise MerError(f"unknown method '{name}' (registered: {', '.join(sorted(METHODS))})",
                       "params.yaml", "fix the 'methods' list or the -S model=... choice")
    return METHODS[name]


def build(name: str, section: dict[str, Any] | None):
    """A fresh, validated instance of method ``name`` from its ``models.<name>`` section."""
    cls = get_method(name)
    return cls(validate(section, cls.Params, f"models.{name}"))


@dataclass
class Samples:
    """Clips handed to a method: metadata, labels (or ``None``), and their artifact files.

    ``meta`` has one row per clip (``clip_id``, ``dataset``, ``corpus``, ``subject``, ``aus``: the
    parsed action units, a list of strings such as ``["4", "L10"]``, which are annotations of the
    clip's face, hidden with the labels on test clips); ``paths`` maps
    an artifact kind to one ``.npz`` per clip.  Test samples carry ``y = None``, so a method cannot
    read test labels even by accident.
    """

    meta: pd.DataFrame
    y: np.ndarray | None          # (n,) int class index
    classes: list[str]
    paths: dict[str, list[Path]]

    def __len__(self) -> int:
        return len(self.meta)

    def subset(self, idx: np.ndarray, hide_labels: bool = False) -> "Samples":
        idx = np.asarray(idx, int)
        meta = self.meta.iloc[idx].reset_index(drop=True)
        if hide_labels and "aus" in meta:   # action units are annotations too: hidden with labels
            meta["aus"] = None
        return Samples(meta,
                       None if hide_labels or self.y is None else self.y[idx],
                       self.classes, {k: [v[i] for i in idx] for k, v in self.paths.items()})

    @property
    def groups(self) -> np.ndarray:
        """``corpus/subject`` per clip: the unit that inner splits must not divide."""
        return (self.meta["corpus"].astype(str) + "/" + self.meta["subject"].astype(str)).to_numpy()

    def stack(self, kind: str, key: str) -> np.ndarray:
        """Array ``key`` of artifact ``kind`` for every clip, stacked: (n, ...)."""
        return np.stack([load_npz(p)[key] for p in self.paths[kind]])
