"""Evaluation protocols: which subjects (or corpora) are tested in which fold.

A protocol turns the table of evaluated clips (columns ``corpus``, ``subject``) into folds.  Folds
are data: each names its test group and is written out with the predictions, so anyone can check
that no test subject ever trained its own model.  Subjects are keyed by ``corpus/subject`` so that
'01' of CASME II and '01' of another corpus never fall into one fold (the composite protocol).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from mer.errors import MerError


@dataclass(frozen=True)
class Fold:
    """One train/test split; indices are positions in the clip table."""

    name: str                 # the test group: a subject key, a corpus, or 'source->target'
    train: np.ndarray         # (n_train,) int
    test: np.ndarray          # (n_test,) int
    test_groups: tuple[str, ...]


PROTOCOLS: dict[str, Callable[..., list[Fold]]] = {}
# protocols whose train and test sets may hold the same people, by design (see cdmer)
SHARED_SUBJECTS: set[str] = set()


def register_protocol(name: str, shared_subjects: bool = False):
    def deco(fn):
        PROTOCOLS[name] = fn
        if shared_subjects:
            SHARED_SUBJECTS.add(name)
        return fn
    return deco


def subject_keys(clips: pd.DataFrame) -> np.ndarray:
    """``corpus/subject`` per clip: the unit no fold may split."""
    return (clips["corpus"].astype(str) + "/" + clips["subject"].astype(str)).to_numpy()


def _split(keys: np.ndarray, test_groups: list[str], name: str) -> Fold:
    is_test = np.isin(keys, test_groups)
    return Fold(name, np.flatnonzero(~is_test), np.flatnonzero(is_test), tuple(test_groups))


@register_protocol("loso")
def loso(clips: pd.DataFrame, **_) -> list[Fold]:
    """Leave one subject out: one fold per subject (composite LOSO when several corpora are pooled)."""
    keys = subject_keys(clips)
    return [_split(keys, [s], s) for s in sorted(set(keys))]


@register_protocol("subject_kfold")
def subject_kfold(clips: pd.DataFrame, k: int = 5, seed: int = 0, **_) -> list[Fold]:
    """k folds of whole subjects, assigned by a seeded shuffle (no subject in two folds)."""
    keys = subject_keys(clips)
    subjects = np.array(sorted(set(keys)))
    if not 2 <= k <= len(subjects):
        raise MerError(f"subject_kfold needs 2 <= k <= {len(subjects)} subjects, got k={k}",
                       "params.yaml", "set eval.k accordingly")
    order = np.random.default_rng(seed).permutation(len(subjects))
    groups = [sorted(subjects[order[i::k]].tolist()) for i in range(k)]
    return [_split(keys, g, f"fold{i + 1}") for i, g in enumerate(groups)]


@register_protocol("leave_one_dataset_out")
def leave_one_dataset_out(clips: pd.DataFrame, **_) -> list[Fold]:
    """Train on all corpora but one, test on that one; one fold per corpus."""
    corpora = clips["corpus"].astype(str).to_numpy()
    names = sorted(set(corpora))
    if len(names) < 2:
        raise MerError("leave_one_dataset_out needs at least two corpora in eval.datasets",
                       "params.yaml", "list several datasets under eval.datasets")
    return [Fold(c, np.flatnonzero(corpora != c), np.flatnonzero(corpora == c), (c,)) for c in names]


def parse_experiment(text: str) -> tuple[str, str]:
    """``'source->target'`` -> ``(source, target)``: the names of two datasets."""
    source, sep, target = (part.strip() for part in str(text).partition("->"))
    if not sep or not source or not target or source == target:
        raise MerError(f"cross-database experiment '{text}' is not 'source->target' with two datasets",
                       "params.yaml", "write eval.experiments entries like synthme_hs->synthme_vis")
    return source, target


@register_protocol("cdmer", shared_subjects=True)
def cdmer(clips: pd.DataFrame, experiments: list[str] = (), **_) -> list[Fold]:
    """Cross-database MER: one fold per experiment ``source->target`` (dataset names), trained on
    every clip of the source and tested on every clip of the target, whose labels are hidden.

    Keyed by dataset, not corpus: SMIC's HS, VIS and NIR cameras are one corpus but three domains.
    They filmed the same people at the same time, so TYPE-I experiments (HS->VIS, ...) share
    subjects between train and test by design (Zong et al.'s protocol, which TGSR follows); what
    differs is the camera, and the target's labels are never used.
    """
    datasets = clips["dataset"].astype(str).to_numpy()
    if not experiments:
        raise MerError("protocol cdmer needs eval.experiments", "params.yaml",
                       "list them, e.g. eval.experiments: [synthme_hs->synthme_vis], or use "
                       "-S dataset=cdmer")
    folds = []
    for text in experiments:
        source, target = parse_experiment(text)
        for role, name in (("source", source), ("target", target)):
            if name not in set(datasets):
                raise MerError(f"cdmer {role} '{name}' of experiment '{text}' has no clips "
                               f"(have: {sorted(set(datasets))})", "params.yaml",
                               "add it to eval.datasets, or fix the experiment's name")
        folds.append(Fold(f"{source}->{target}", np.flatnonzero(datasets == source),
                          np.flatnonzero(datasets == target), (target,)))
    return folds


def make_folds(name: str, clips: pd.DataFrame, **kwargs) -> list[Fold]:
    """Folds of protocol ``name``; every fold is checked for subject leakage."""
    if name not in PROTOCOLS:
        raise MerError(f"unknown protocol '{name}' (known: {', '.join(sorted(PROTOCOLS))})",
                       "params.yaml", "set eval.protocol to a known protocol")
    folds = PROTOCOLS[name](clips, **kwargs)
    keys = subject_keys(clips)
    for fold in folds if name not in SHARED_SUBJECTS else ():
        shared = set(keys[fold.train]) & set(keys[fold.test])
        if shared:  # a protocol bug, never a user error
            raise AssertionError(f"fold {fold.name}: subjects {sorted(shared)} both train and test")
    return folds
