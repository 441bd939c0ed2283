"""Named SynthME corpora: the base corpus plus ``synthesize.variants``.

The ``synthesize`` section describes the base corpus, ``synthme``.  Each entry of its ``variants``
block is another corpus, built into ``data/raw/<name>``: the base keys with the entry's keys
replacing them (a mapping such as ``emotion_weights`` is replaced whole, not merged), then
validated like the base, so a misspelt key is an error naming ``synthesize.variants.<name>.<key>``.

An entry may say ``extends: <other variant>`` to start from that variant instead of the base.
That is how SMIC's second and third cameras are described: ``synthme_vis`` extends
``synthme_hs`` and changes only the camera (frame rate, noise, lens, colour) and the subjects it
recorded, so it inherits the HS corpus's seed and plan and shows the same pseudo-subjects making
the same micro-expressions (see :mod:`mer.synth.plan`).  Overriding a plan key (seed,
subject_clips, amplitude, ...) in such an entry breaks that link, deliberately and visibly.
"""

from __future__ import annotations

import re
from typing import Any

from mer.config import check_keys
from mer.errors import MerError
from mer.synth.params import BASE, SECTION, SynthParams

#: the key that names a variant's parent; not a corpus setting, so not a SynthParams field
EXTENDS = "extends"
#: a variant's name becomes a folder (data/raw/<name>) and a dataset name (ingest@<name>)
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def corpus_names(params: SynthParams) -> list[str]:
    """Every corpus the section describes: the base first, then the variants as listed."""
    return [BASE, *params.variants]


def corpus_params(params: SynthParams, corpus: str) -> SynthParams:
    """The resolved, validated params of ``corpus`` (``synthme`` or a variant's name)."""
    if corpus == BASE:
        return params
    if corpus not in params.variants:
        raise MerError(f"unknown SynthME corpus '{corpus}'", f"params.yaml: {SECTION}.variants",
                       f"use one of: {', '.join(corpus_names(params))}")
    merged: dict[str, Any] = params.to_dict()
    merged["variants"] = {}
    for name in _lineage(params, corpus):
        merged.update(_overrides(params, name))
    return SynthParams.from_dict(merged, where=f"{SECTION}.variants.{corpus}")


def check_variants(params: SynthParams, where: str = SECTION) -> None:
    """Resolve every variant once, so that any bad entry fails early with its own key path."""
    for name in params.variants:
        if not _NAME.fullmatch(name) or name == BASE:
            raise MerError(f"bad variant name '{name}'", f"params.yaml: {where}.variants",
                           f"use lower-case letters, digits and '_' (not '{BASE}', the base)")
        _overrides(params, name, where)
    for name in params.variants:
        corpus_params(params, name)


def _overrides(params: SynthParams, name: str, where: str = SECTION) -> dict[str, Any]:
    """One entry's own keys (without ``extends``), checked against the SynthParams fields."""
    block = dict(params.variants[name])
    block.pop(EXTENDS, None)
    key = f"{where}.variants.{name}"
    if "variants" in block:
        raise MerError(f"'{key}.variants': variants do not nest", "params.yaml",
                       f"list every variant directly under {where}.variants "
                       f"(use '{EXTENDS}: <name>' to build on another)")
    return check_keys(block, SynthParams, key)


def _lineage(params: SynthParams, corpus: str) -> list[str]:
    """``corpus`` and the variants it extends, the furthest ancestor first."""
    chain = [corpus]
    while (parent := params.variants[chain[-1]].get(EXTENDS)) is not None:
        where = f"params.yaml: {SECTION}.variants.{chain[-1]}.{EXTENDS}"
        if not isinstance(parent, str) or parent not in params.variants:
            raise MerError(f"'{parent}' is not a variant", where,
                           f"extend one of: {', '.join(params.variants)} (or drop '{EXTENDS}' "
                           f"to start from the base)")
        if parent in chain:
            raise MerError(f"variants extend each other in a circle: "
                           f"{' -> '.join([*chain, parent])}", where, "break the circle")
        chain.append(parent)
    return chain[::-1]
