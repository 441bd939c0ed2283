"""The corpus plan: which subjects, which clips, what each clip shows and when.

Planning is cheap and happens in the main process; rendering (:mod:`mer.synth.render`) happens
per clip in workers.  Every random draw comes from its own stream, seeded by
(seed, stream, subject, clip), so a clip's content does not depend on the worker count or on the
order clips are rendered in, and a change to the distractor params leaves labels and timing as
they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mer.synth.emotions import class_counts, draw_combo
from mer.synth.faces import Identity, draw_identity
from mer.synth.params import SynthParams

# random streams (the second word of every seed)
STREAM_LABELS, STREAM_IDENTITY, STREAM_CLIP, STREAM_RENDER = 0, 1, 2, 3

#: CASME II names clips after the elicitation video: EP01 .. EP19
N_EPISODES = 19


@dataclass(frozen=True)
class SubjectSpec:
    number: int  # 1-based, written as '01' in the sheet and sub01 on disk
    identity: Identity


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
    """Subjects (cycling through the ``n_sources`` source faces) and their clips, sorted by name."""
    total = params.n_subjects * params.clips_per_subject
    counts = class_counts(params.emotion_weights, total)
    labels = np.array([e for e, c in counts.items() for _ in range(c)])
    labels = labels[np.random.default_rng([params.seed, STREAM_LABELS]).permutation(total)]

    subjects, clips = [], []
    for s in range(params.n_subjects):
        number = s + 1
        rng = np.random.default_rng([params.seed, STREAM_IDENTITY, number])
        subjects.append(SubjectSpec(number, draw_identity(params, s % n_sources, rng)))
        own = labels[s * params.clips_per_subject:(s + 1) * params.clips_per_subject]
        clips.extend(_subject_clips(params, number, list(own)))
    return subjects, clips


def _subject_clips(params: SynthParams, subject: int, emotions: list[str]) -> list[ClipSpec]:
    """Draw each clip's AUs, amplitude and timing; name clips EPxx_yy like CASME II."""
    drafts = []
    for k, emotion in enumerate(emotions):
        rng = np.random.default_rng([params.seed, STREAM_CLIP, subject, k])
        aus = draw_combo(emotion, rng)
        amplitude = float(rng.uniform(*params.amplitude))
        span = max(3, int(round(rng.uniform(*params.duration_s) * params.fps)))  # onset..offset
        before = int(rng.integers(params.neutral_frames[0], params.neutral_frames[1] + 1))
        after = int(rng.integers(params.neutral_frames[0], params.neutral_frames[1] + 1))
        onset = before + 1
        apex = onset + int(np.clip(round(rng.uniform(*params.apex_position) * span), 1, span - 1))
        offset = onset + span
        episode = int(rng.integers(1, N_EPISODES + 1))
        drafts.append((episode, k, emotion, aus, amplitude, offset + after, onset, apex, offset))
    clips, seen = [], {}
    for episode, k, *rest in sorted(drafts):
        seen[episode] = seen.get(episode, 0) + 1
        emotion, aus, amplitude, n_frames, onset, apex, offset = rest
        clips.append(ClipSpec(subject, f"EP{episode:02d}_{seen[episode]:02d}", k, emotion, aus,
                              amplitude, n_frames, onset, apex, offset))
    return clips
