"""Ingest: read a corpus through its adapter, correct it with the fix table, validate it, and
return its manifest rows.

Every check is made on every clip before anything is reported, so a user fixing a corpus copy
sees the complete list at once: one :class:`~mer.errors.MerError` with one line per problem,
naming the clip, the file (frame, or sheet and row) and what to do.

The apex policy decides what a clip without an annotated apex becomes:

* ``annotated``: it is an error unless a fix-table row supplies the apex;
* ``midpoint``: its apex is the middle frame ``onset + (offset - onset) // 2``;
* ``spotted``: its apex is estimated from motion (:mod:`mer.temporal.apex`) by the crop stage,
  which has the aligned face frames; the manifest records ``apex_source: spotted`` with the middle
  frame as a placeholder, and the crop artifact's ``apex_index`` is the spotted apex that every
  later stage reads.

An apex outside onset..offset is an error under both (it is wrong, not missing).  The manifest's
``apex_source`` says which applied to each clip.
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from mer.data.adapters import Annotation, CorpusAdapter, make_adapter
from mer.data.fixes import MIDPOINT, FixTable
from mer.data.manifest import Clip
from mer.data.schemes import LabelScheme, Vocabulary, get_vocabulary, schemes_for
from mer.data.validate import FrameCheck, Problem, check_frames, raise_problems
from mer.errors import MerError
from mer.parallel import map_clips

APEX_POLICIES = ("annotated", "midpoint", "spotted")
NO_APEX = frozenset({"", "/", "-", "--", "n/a", "na", "none", "nan"})  # cells meaning "no apex"


@dataclass
class _Context:
    adapter: CorpusAdapter
    vocabulary: Vocabulary
    schemes: list[LabelScheme]
    apex_policy: str
    # vocabularies of the annotations' ``extra_labels`` (in first-seen order) and their schemes
    extra: dict[str, tuple[Vocabulary, list[LabelScheme]]] = dataclasses.field(
        default_factory=dict)


def _frame_number(text: str) -> int | None:
    """A frame number cell ('46', '46.0') as int, else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _resolve(ctx: _Context, raw: Annotation, ann: Annotation,
             fixes: list[str]) -> tuple[Clip | None, list[Problem]]:
    """Manifest row of one clip (None when its frames cannot even be listed) and its problems.

    ``raw`` is the sheet's row as read, ``ann`` the same row after the fix table.
    """
    a = ctx.adapter
    cid = a.clip_id(ann.subject, ann.clip)
    where = raw.where
    fix_hint = "correct the sheet cell, or add a fix-table row (source and reason)"
    problems: list[Problem] = []

    if not ann.subject or not ann.clip:
        return None, [Problem(cid or "?", where, "subject or clip name is empty", fix_hint)]
    onset, offset = _frame_number(ann.onset), _frame_number(ann.offset)
    if onset is None or offset is None:
        return None, [Problem(cid, where, f"onset '{ann.onset}' / offset '{ann.offset}' are not "
                              "both frame numbers", fix_hint)]
    if onset > offset:
        return None, [Problem(cid, where, f"onset {onset} is after offset {offset}", fix_hint)]

    apex = _frame_number(ann.apex)
    if ann.apex == MIDPOINT and raw.apex != ann.apex:
        apex, apex_source = onset + (offset - onset) // 2, "midpoint"   # set by a fix row
    elif apex is not None:
        apex_source = ann.apex_source or "annotated"
        if not onset <= apex <= offset:
            problems.append(Problem(cid, where, f"apex {apex} is outside onset..offset "
                                    f"{onset}..{offset}", fix_hint))
    elif ann.apex.lower() in NO_APEX:
        apex_source = "spotted" if ctx.apex_policy == "spotted" else "midpoint"
        apex = onset + (offset - onset) // 2
        if ctx.apex_policy == "annotated":
            problems.append(Problem(
                cid, where, f"no apex annotated (ApexFrame '{ann.apex}')",
                "add a fix-table row giving the apex (source and reason), or set "
                "ingest.apex_policy: midpoint (the middle frame) or spotted (estimated from motion)"))
    else:
        apex_source = "annotated"
        problems.append(Problem(cid, where, f"apex '{ann.apex}' is not a frame number", fix_hint))

    emotion = ctx.vocabulary.normalise(ann.emotion)
    if emotion is None:
        problems.append(Problem(
            cid, where, f"unknown emotion '{ann.emotion}' (known to '{ctx.vocabulary.name}': "
            f"{', '.join(ctx.vocabulary.emotions)})",
            "correct the cell, add a fix-table row (field emotion), or add the spelling to the "
            "vocabulary's aliases in mer/data/schemes.yaml"))
    try:
        aus = a.parse_aus(ann.aus)
    except ValueError as exc:
        aus = []
        problems.append(Problem(cid, where, str(exc), fix_hint))

    labels = {s.name: s.label(emotion) if emotion else "" for s in ctx.schemes}
    labels.update(_extra_labels(ctx, ann, cid, where, problems))
    frames = [a.frame_name(ann.subject, ann.clip, n) for n in range(onset, offset + 1)]
    clip = Clip(
        clip_id=cid, corpus=a.corpus, subject=ann.subject, clip=ann.clip,
        frame_dir=a.frame_dir(ann.subject, ann.clip), frames=frames,
        onset=onset, apex=apex if apex is not None else onset, offset=offset,
        apex_source=apex_source,
        apex_index=(apex - onset) if apex is not None and onset <= apex <= offset else 0,
        aus=aus, aus_raw=raw.aus, emotion_raw=raw.emotion, emotion=emotion or "",
        fps=a.fps, labels=labels,
        fixes=fixes)
    return clip, problems


def _extra_labels(ctx: _Context, ann: Annotation, cid: str, where: str,
                  problems: list[Problem]) -> dict[str, str]:
    """Labels of the schemes over ``ann.extra_labels``' vocabularies; a missing or unknown cell
    is a problem (appended), as an unknown emotion is."""
    cells = dict(ann.extra_labels)
    labels: dict[str, str] = {}
    for name, (vocab, schemes) in ctx.extra.items():
        raw = cells.get(name, "")
        value = vocab.normalise(raw) if raw else None
        if value is None:
            what = f"unknown {name} value '{raw}'" if raw else f"no {name} annotation"
            problems.append(Problem(
                cid, where, f"{what} (known to '{name}': {', '.join(vocab.emotions)})",
                "correct the cell of the sheet that gives it, or add the spelling to the "
                "vocabulary's aliases in mer/data/schemes.yaml"))
        labels.update({s.name: s.label(value) if value else "" for s in schemes})
    return labels


def ingest(name: str, cfg: Mapping[str, Any], workers: int | None = 1,
           apex_policy: str = "annotated",
           only: Mapping[tuple[str, str], str] | None = None) -> list[Clip]:
    """Validated manifest rows of dataset ``name`` (config ``cfg`` = params ``data.<name>``).

    ``only`` restricts the corpus to the clips it lists, ``(subject, clip) -> where listed``
    (a composite's official list): other rows are neither read further nor validated, and a listed
    clip the sheet lacks is a problem.  An adapter with an ``ingest_composite`` method (a
    composite such as megc2019) ingests its members itself, through their own adapters.
    Raises one MerError listing every problem found; returns rows in sheet order.
    """
    if apex_policy not in APEX_POLICIES:
        raise MerError(f"unknown apex policy '{apex_policy}'", "params ingest.apex_policy",
                       f"use one of {', '.join(APEX_POLICIES)}")
    adapter = make_adapter(name, cfg)
    composite = getattr(adapter, "ingest_composite", None)
    if composite is not None:
        return composite(workers, apex_policy)
    adapter.check_layout()
    table = FixTable.load(adapter.corpus, adapter.extra_fixes)
    rows = adapter.annotations()
    extra = list(dict.fromkeys(vocab for r in rows for vocab, _ in r.extra_labels))
    ctx = _Context(adapter, get_vocabulary(adapter.vocabulary), schemes_for(adapter.vocabulary),
                   apex_policy, {v: (get_vocabulary(v), schemes_for(v)) for v in extra})

    clips: list[Clip] = []
    problems: list[Problem] = []
    order: list[str] = []
    first_seen: dict[str, str] = {}
    listed = set(only or ())  # listed clips not yet found in the sheet
    for raw in rows:
        if only is not None:
            if (raw.subject, raw.clip) not in only:
                continue
            listed.discard((raw.subject, raw.clip))
        ann, applied = table.apply(raw)
        clip, found = _resolve(ctx, raw, ann, applied)
        problems += found
        if clip is None:
            order.append(found[0].clip_id)
            continue
        order.append(clip.clip_id)
        if clip.clip_id in first_seen:
            problems.append(Problem(clip.clip_id, raw.where, "the clip appears twice in the sheet "
                                    f"(also {first_seen[clip.clip_id]})",
                                    "remove the duplicate row"))
            continue
        first_seen[clip.clip_id] = raw.where
        clips.append(clip)
    if only is None:
        table.warn_unused()  # (with a list, fixes of unlisted clips are unused by design)
    for subject, clip in [key for key in (only or {}) if key in listed]:  # in list order
        cid = adapter.clip_id(subject, clip)
        order.append(cid)
        problems.append(Problem(cid, str(only[(subject, clip)]), f"listed, but {subject} {clip} "
                                f"is not in the annotations of {name} ({adapter.root})",
                                "restore the clip in your copy of the corpus, or check the "
                                "member's root and release"))

    jobs = [FrameCheck(c.clip_id, str(adapter.root / c.frame_dir), tuple(c.frames)) for c in clips]
    for found in map_clips(check_frames, jobs, workers, desc=f"validate {name}"):
        problems += found
    raise_problems(name, adapter.root, problems, order)
    return clips


def describe(clips: list[Clip]) -> str:
    """A short summary for people: clips, subjects, apex sources and per-scheme class counts."""
    subjects = {(c.corpus, c.subject) for c in clips}
    sources = collections.Counter(c.apex_source for c in clips)
    lines = [f"{len(clips)} clips, {len(subjects)} subjects; apex: "
             + ", ".join(f"{k} {v}" for k, v in sorted(sources.items()))]
    for scheme in sorted({s for c in clips for s in c.labels}):
        counts = collections.Counter(c.labels[scheme] for c in clips if c.labels.get(scheme))
        lines.append(f"  {scheme}: {sum(counts.values())} clips ("
                     + ", ".join(f"{k} {v}" for k, v in counts.most_common()) + ")")
    return "\n".join(lines)
