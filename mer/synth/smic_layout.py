"""Writing a corpus the way SMIC ships (``SMIC_all_raw``): one folder per micro-expression.

The tree is ``<modality>/s<N>/micro/<negative|positive|surprise>/s<N>_<ne|po|sur>_<kk>/`` with
frames ``image<index>.bmp``: uncompressed 24-bit BMPs named by the camera's running frame index
(zero-padded to six digits, longer when the index is), onset to offset and nothing else.  Like the
real release there is no coding sheet, no apex and no action units: the folders are the
annotation.  ``mer.data.smic`` (``release: clips``) therefore reads SynthME's SMIC variants as it
reads SMIC.

Frame indices come from a clock, not from 1: each subject's session places its clips in
recording order, a few seconds to two minutes apart (:func:`session_times`, seconds, the same for
every camera), and each camera has its own running index at the session's start
(:func:`camera_origin`, per subject and modality).  A clip's first frame is
``origin + round(time * fps)``, so HS, VIS and NIR copies of one micro-expression carry different
indices for the same moment, as three real cameras would.  Clips are numbered per class in
recording order (``s3_ne_01`` is subject 3's first negative clip).

A gray (NIR) frame is written as three equal channels.  Whether SMIC-NIR's BMPs are 8-bit or
24-bit could not be checked here; three equal channels read the same through every loader
(``cv2.IMREAD_COLOR``, ``IMREAD_GRAYSCALE``, PIL ``convert('RGB')``), so the choice cannot break
a reader written for the real files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from mer.errors import MerError
from mer.synth.casme2_layout import as_bgr
from mer.synth.emotions import SMIC_COMBOS, SMIC_EMOTIONS
from mer.synth.layouts import BadKey, Layout, register_layout
from mer.synth.params import SynthParams
from mer.synth.plan import ClipDraft, ClipSpec

#: SMIC's cameras, in a fixed order (the order seeds each camera's random stream)
MODALITIES = ("HS", "VIS", "NIR")
#: class folder -> the code in clip names
CODES = {"negative": "ne", "positive": "po", "surprise": "sur"}
FRAME_TEMPLATE = "image{n:06d}.bmp"

# random streams of this layout (plan.py holds 0..3)
STREAM_SESSION, STREAM_CAMERA = 4, 5
#: a camera's running index at a session's start is uniform over this many seconds of recording
CAMERA_RUN_S = 200_000.0
#: the first clip starts this far into the session, then clips follow with these gaps (seconds)
FIRST_CLIP_S = (10.0, 300.0)
CLIP_GAP_S = (5.0, 120.0)


def subject_dir_name(subject: int) -> str:
    return f"s{subject}"


def clip_name(subject: int, emotion: str, k: int) -> str:
    """'s3_ne_01': subject, class code, 1-based count within the class."""
    return f"s{subject}_{CODES[emotion]}_{k:02d}"


def clip_dir(root: Path, modality: str, clip: ClipSpec) -> Path:
    return (Path(root) / modality / subject_dir_name(clip.subject) / "micro" / clip.emotion
            / clip.name)


def session_times(params: SynthParams, subject: int) -> np.ndarray:
    """(n_clips,) start time in seconds of each of ``subject``'s clips, in recording order."""
    n = params.clip_counts()[params.subjects().index(subject)]
    rng = np.random.default_rng([params.seed, STREAM_SESSION, subject])
    first = rng.uniform(*FIRST_CLIP_S)
    gaps = rng.uniform(*CLIP_GAP_S, n)
    gaps[0] = 0.0
    return first + np.cumsum(gaps)


def camera_origin(params: SynthParams, subject: int) -> int:
    """The camera's running frame index when ``subject``'s session starts."""
    rng = np.random.default_rng([params.seed, STREAM_CAMERA, subject,
                                 MODALITIES.index(params.modality)])
    return int(rng.integers(0, int(CAMERA_RUN_S * params.fps)))


def first_frame(params: SynthParams, clip: ClipSpec) -> int:
    """The camera index of ``clip``'s first frame on disk."""
    t = session_times(params, clip.subject)[clip.index]
    return camera_origin(params, clip.subject) + int(round(t * params.fps))


def _check(params: SynthParams, bad: BadKey) -> None:
    if params.modality not in MODALITIES:
        raise bad("modality", f"layout 'smic' needs a SMIC camera, got '{params.modality}'",
                  f"use one of {', '.join(MODALITIES)}")
    if tuple(params.neutral_frames) != (0, 0):
        raise bad("neutral_frames", "a SMIC clip folder holds onset..offset only",
                  "set neutral_frames: [0, 0] for layout 'smic'")


def _order_clips(params: SynthParams, subject: int,
                 drafts: Sequence[ClipDraft]) -> list[tuple[ClipDraft, str]]:
    """Recording order; each class counted on its own (s1_ne_01, s1_po_01, s1_ne_02, ...)."""
    out, seen = [], {}
    for d in sorted(drafts, key=lambda d: d.index):
        seen[d.emotion] = seen.get(d.emotion, 0) + 1
        out.append((d, clip_name(subject, d.emotion, seen[d.emotion])))
    return out


def _write_clip(frames: Iterable[np.ndarray], clip: ClipSpec, params: SynthParams,
                root: Path) -> dict:
    """Frames as image<index>.bmp from the clip's first camera index (see module docstring)."""
    folder = clip_dir(root, params.modality, clip)
    folder.mkdir(parents=True, exist_ok=True)
    first = first_frame(params, clip)
    n = 0
    for n, frame in enumerate(frames, start=1):
        path = folder / FRAME_TEMPLATE.format(n=first + n - 1)
        if not cv2.imwrite(str(path), as_bgr(frame)):
            raise MerError("cannot write the frame", where=path,
                           fix="check disk space and permissions")
    return {"Subject": subject_dir_name(clip.subject), "Filename": clip.name, "frames": n,
            "OnsetFrame": first + clip.onset - 1, "ApexFrame": first + clip.apex - 1,
            "OffsetFrame": first + clip.offset - 1}


def _finish(root: Path, clips: Sequence[ClipSpec], params: SynthParams) -> None:
    """SMIC_all_raw ships no annotation file: the folders are the annotation."""


LAYOUT = register_layout(Layout("smic", SMIC_EMOTIONS, SMIC_COMBOS, _check, _order_clips,
                                _write_clip, _finish))
