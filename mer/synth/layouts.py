"""The registry of on-disk layouts: how a planned, rendered corpus is written as a real one ships.

A layout is what makes SynthME readable by a real corpus's adapter: which emotions it may write
(its vocabulary and their AU combinations), how clips are named, where frames go and in which file
format, and which annotation files sit beside them.  Rendering (:mod:`mer.synth.render`) knows
nothing of any of this.  ``params.layout`` picks one by name; adding a corpus format is one module
that calls :func:`register_layout`, never a branch in the generator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mer.errors import MerError

if TYPE_CHECKING:  # type hints only: the layouts import plan, which imports params
    from mer.synth.params import SynthParams
    from mer.synth.plan import ClipDraft, ClipSpec

#: bad(key, why, fix) -> MerError, as SynthParams.validate builds them
BadKey = Callable[[str, str, str], MerError]


@dataclass(frozen=True)
class Layout:
    """One corpus format (see module docstring).

    check:        layout-specific params rules, raising ``bad(key, why, fix)``.
    order_clips:  a subject's drafts (in recording order) -> (draft, clip name) pairs in the
                  order the corpus lists them; a layout may return changed drafts (casme3
                  shrinks its micro-expression rows, whose size the corpus-wide plan cannot set).
    write_clip:   frames of one clip -> written into the tree under ``root``; returns the truth
                  row's frame-number fields (frames on disk, onset, apex, offset as written).
    finish:       writes the annotation files beside the frames (a coding sheet, or nothing).
    """

    name: str
    emotions: tuple[str, ...]
    combos: Mapping[str, Mapping[str, float]]
    check: Callable[[SynthParams, BadKey], None]
    order_clips: Callable[[SynthParams, int, Sequence[ClipDraft]],
                          list[tuple[ClipDraft, str]]]
    write_clip: Callable[[Iterator[np.ndarray], ClipSpec, SynthParams, Path], dict]
    finish: Callable[[Path, Sequence[ClipSpec], SynthParams], None]


_LAYOUTS: dict[str, Layout] = {}
#: modules that register a layout when imported
_MODULES = ("mer.synth.casme2_layout", "mer.synth.smic_layout", "mer.synth.casme3_layout")


def register_layout(layout: Layout) -> Layout:
    if layout.name in _LAYOUTS:
        raise ValueError(f"layout '{layout.name}' registered twice")
    _LAYOUTS[layout.name] = layout
    return layout


def layout_names() -> list[str]:
    _load()
    return sorted(_LAYOUTS)


def get_layout(name: str, where: str | None = None) -> Layout:
    """The layout called ``name``; an unknown name is one MerError listing the known ones."""
    _load()
    if name not in _LAYOUTS:
        raise MerError(f"unknown SynthME layout '{name}'", where,
                       f"use one of: {', '.join(sorted(_LAYOUTS))}")
    return _LAYOUTS[name]


def _load() -> None:
    import importlib

    for module in _MODULES:
        importlib.import_module(module)
