"""The corpus plan: which subjects, which clips, what each clip shows and when.

Planning is cheap and happens in the main process; rendering (:mod:`mer.synth.render`) happens
per clip in workers.  Every random draw comes from its own stream, seeded by
(seed, stream, subject, clip), so a clip's content does not depend on the worker count or on the
order clips are rendered in, and a change to the distractor params leaves labels and timing as
they were.  Durations are drawn in seconds, so two corpora that differ only in frame rate (or in
any camera param) show the same micro-expressions: that is how SMIC's VIS and NIR cameras film
what the HS camera films.  Subjects outside ``write_subjects`` are planned (their labels take
their share of the permutation) but not returned, so the written subjects' clips do not depend
on which others are written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mer.synth.emotions import class_counts, draw_combo
from mer.synth.faces import Identity, draw_identity
from mer.synth.layouts import get_layout
from mer.synth.params import SynthParams

# random streams (the second word of every seed); 4 and 5 belong to the SMIC layout
STREAM_LABELS, STREAM_IDENTITY, STREAM_CLIP, STREAM_RENDER = 0, 1, 2, 3

#: CASME II names clips after the elicitation video: EP01 .. EP19
N_EPISODES = 19


@dataclass(frozen=True)
class SubjectSpec:
    number: int  # 1-based, written as '01' in the sheet and sub01 on disk (s1 in SMIC's tree)
    identity: Identity


@dataclass(frozen=True, order=True)
class ClipDraft:
    """A clip before its layout names it.  ``index`` is its place in the subject's recording
    (the session order); ``episode`` is a CASME II elicitation video number, drawn for every
    clip (it keeps the random stream the same whatever the layout)."""

    episode: int
    index: int
    emotion: str
    aus: str
    amplitude: float
    n_frames: int
    onset: int
    apex: int
    offset: int


@dataclass(frozen=True)
class ClipSpec:
    """One clip as the coding sheet describes it, plus what the renderer needs."""

    subject: int  # 1-based
    name: str  # 'EP03_01'
    index: int  # position of the clip within its subject (seeds its random streams)
    emotion: str
    aus: str  # CASME II syntax: '4+L10', '12'
    amplitude: float  # apex displacement, fraction of the face width
    n_frames: int  # frames on disk: img1 .. img<n_frames>
    onset: int  # 1-based frame numbers
    apex: int
    offset: int

    def seed(self, base: int, stream: int) -> list[int]:
        return [base, stream, self.subject, self.index]


def plan_corpus(params: SynthParams, n_sources: int) -> tuple[list[SubjectSpec], list[ClipSpec]]:
    """The written subjects (cycling through the ``n_sources`` source faces) and their clips,
    named and ordered as the layout lists them."""
    layout = get_layout(params.layout)
    numbers, counts = params.subjects(), params.clip_counts()
    total = sum(counts)
    per_class = class_counts(params.emotion_weights, total, layout.emotions)
    labels = np.array([e for e, c in per_class.items() for _ in range(c)])
    labels = labels[np.random.default_rng([params.seed, STREAM_LABELS]).permutation(total)]
    written = set(params.write_subjects) or set(numbers)

    subjects, clips = [], []
    start = 0
    for s, (number, n) in enumerate(zip(numbers, counts)):
        own, start = labels[start:start + n], start + n
        if number not in written:
            continue
        rng = np.random.default_rng([params.seed, STREAM_IDENTITY, number])
        subjects.append(SubjectSpec(number, draw_identity(params, s % n_sources, rng)))
        drafts = _subject_drafts(params, number, list(own), layout.combos)
        for d, name in layout.order_clips(params, number, drafts):
            clips.append(ClipSpec(number, name, d.index, d.emotion, d.aus, d.amplitude,
                                  d.n_frames, d.onset, d.apex, d.offset))
    return subjects, clips


def _subject_drafts(params: SynthParams, subject: int, emotions: list[str],
                    combos: Mapping[str, Mapping[str, float]]) -> list[ClipDraft]:
    """Draw each clip's AUs, amplitude and timing, in recording order."""
    drafts = []
    for k, emotion in enumerate(emotions):
        rng = np.random.default_rng([params.seed, STREAM_CLIP, subject, k])
        aus = draw_combo(emotion, rng, combos)
        amplitude = float(rng.uniform(*params.amplitude))
        span = max(3, int(round(rng.uniform(*params.duration_s) * params.fps)))  # onset..offset
        before = int(rng.integers(params.neutral_frames[0], params.neutral_frames[1] + 1))
        after = int(rng.integers(params.neutral_frames[0], params.neutral_frames[1] + 1))
        onset = before + 1
        apex = onset + int(np.clip(round(rng.uniform(*params.apex_position) * span), 1, span - 1))
        offset = onset + span
        episode = int(rng.integers(1, N_EPISODES + 1))
        drafts.append(ClipDraft(episode, k, str(emotion), aus, amplitude, offset + after, onset,
                                apex, offset))
    return drafts
