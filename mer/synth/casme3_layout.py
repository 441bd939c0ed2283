"""Writing a corpus the way CAS(ME)^3 Part A ships: recordings, and the combined macro/micro sheet.

Why: MoExt pre-trains on macro-expressions (CAS(ME)^3 Part A's 3,346 macro clips), so SynthME
needs a macro-expression block that the ``casme3`` adapter (``part: A_macro``) reads exactly as
it reads the real corpus.  The variant ``synthme_macro`` (:data:`mer.synth.params.DEFAULT_VARIANTS`)
uses this layout with larger, longer movements (amplitude 7-12 % of the face width, 0.6-1.2 s at
30 fps) and **its own pseudo-subjects**: subject numbers 101.. and another seed than ``synthme``
(seed 0) or ``synthme_hs`` (seed 1), so no identity of the micro-expression corpora appears here
and pre-training on it never touches an evaluation subject.

Tree: ``data/part_A_split/part_A/spNO.<N>/<video>/color/<n>.jpg``, frames numbered by the
recording (unpadded, from 0), several expressions per recording.  A subject's clips are spread
over recordings 'a'..'m' (the clip's elicitation episode picks the letter) and placed in recording
order one after the other with a gap (:func:`recording_starts`); every frame of a clip (its
neutral lead-in and tail too) is written, so a recording is a run of frames with holes between
clips.  Depth frames (``depth/<n>.png`` in the real release) are not written: no reader uses them.

Sheet: ``annotation/CAS(ME)3_part_A_v2.xlsx`` with the real combined sheet's sheets and columns:
'AU+Emotion' (Subject 'spNO.101', Filename (the video letter), Onset, Apex, Offset (recording frame
numbers), AU ('4+R10'), Expression type ('Macro-expression' | 'Micro-expression'), Objective class
('I'..'VII', from the AUs by the CASME II objective-class rules: :func:`objective_class`)) and
'eye blink' (Subject, Filename, Onset, Offset; header only: where SynthME's distractor blinks fall
is not part of a ClipSpec).  The real sheet is a legacy ``.xls``; no writer for that format is
installed, so this one is ``.xlsx`` (pandas reads either by extension; point ``data.<name>.sheet``
at it).

Like the real sheet, both expression types are listed: a clip is a micro-expression with
probability :data:`MICRO_SHARE` (860 of 4,206 rows in the real sheet).  Rendering draws one
amplitude and timing range per corpus (:mod:`mer.synth.plan`), so the layout shrinks a micro row's
draft before it is rendered (:func:`_order_clips`): amplitude x :data:`MICRO_AMPLITUDE`, onset to
offset x :data:`MICRO_SPAN` (the apex keeps its relative position), which puts a micro row at
2.5-4 % of the face width over 0.2-0.5 s, the micro block's (``synthme``) range.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

from mer.errors import MerError
from mer.synth.casme2_layout import SHEET_TIME, _pin_zip_times, as_bgr
from mer.synth.emotions import COMBOS, EMOTIONS, au_number, split_aus
from mer.synth.layouts import BadKey, Layout, register_layout
from mer.synth.params import SynthParams
from mer.synth.plan import ClipDraft, ClipSpec

FRAMES_DIR = "data/part_A_split/part_A"
SHEET_PATH = "annotation/CAS(ME)3_part_A_v2.xlsx"
SHEET_COLUMNS = ("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Expression type",
                 "Objective class")
BLINK_COLUMNS = ("Subject", "Filename", "Onset", "Offset")
MACRO, MICRO = "Macro-expression", "Micro-expression"
#: recordings of a subject (CAS(ME)^3 Part A names them by letter)
VIDEOS = "abcdefghijklm"
#: share of micro-expression rows (the real combined sheet: 860 of 4206)
MICRO_SHARE = 860 / 4206
#: a micro row's amplitude and onset..offset span, relative to the macro draw
MICRO_AMPLITUDE = 0.35
MICRO_SPAN = 0.4
#: a recording's first clip starts within this many frames; clips follow with these gaps
FIRST_START = (0, 300)
GAP_FRAMES = (5, 200)
# random streams of this layout (plan.py holds 0..3, the SMIC layout 4 and 5)
STREAM_RECORDING, STREAM_KIND = 6, 7


def subject_name(subject: int) -> str:
    return f"spNO.{subject}"


def objective_class(aus: str) -> str:
    """CASME II's objective class (Davison et al. 2018) of an AU combination, sides ignored.

    I: AU6/AU12 (with 7); VI: AU1+2+4 or AU20; II: AU1+2, AU5, AU25; IV: AU9, AU10; III: AU4,
    AU23, AU17+24; V: AU1, AU15, AU14/17; VII: anything else.  Checked in this order (the
    specific combinations before the single AUs they contain).
    """
    n = {au_number(t) for t in split_aus(aus)}
    rules = [("VI", {1, 2, 4} <= n or 20 in n), ("I", bool(n & {6, 12})),
             ("II", {1, 2} <= n or bool(n & {5, 25})), ("IV", bool(n & {9, 10})),
             ("III", 4 in n or 23 in n or {17, 24} <= n), ("V", bool(n & {1, 14, 15, 17}))]
    return next((name for name, hit in rules if hit), "VII")


def recording_starts(params: SynthParams, subject: int,
                     drafts: Sequence[tuple[ClipDraft, str]]) -> list[int]:
    """Recording frame number of each clip's first frame (``drafts``: (draft, video) in
    recording order): per video, the first clip within :data:`FIRST_START` frames, each next one
    after the previous clip's last frame plus a gap of :data:`GAP_FRAMES`."""
    rng = np.random.default_rng([params.seed, STREAM_RECORDING, subject])
    cursor = {v: int(rng.integers(*FIRST_START)) for v in VIDEOS}
    starts = []
    for d, video in drafts:
        starts.append(cursor[video])
        cursor[video] += d.n_frames + int(rng.integers(*GAP_FRAMES))
    return starts


def micro_draft(d: ClipDraft) -> ClipDraft:
    """A macro draft shrunk to a micro-expression (see module docstring); lead-in unchanged."""
    span = d.offset - d.onset
    new_span = max(3, round(span * MICRO_SPAN))
    rel = (d.apex - d.onset) / span
    apex = d.onset + int(np.clip(round(rel * new_span), 1, new_span - 1))
    offset = d.onset + new_span
    tail = d.n_frames - d.offset
    return dataclasses.replace(d, amplitude=d.amplitude * MICRO_AMPLITUDE, apex=apex,
                               offset=offset, n_frames=offset + tail)


def is_micro(params: SynthParams, subject: int, index: int) -> bool:
    """Whether the clip ``index`` of ``subject`` is a micro-expression row (its own stream)."""
    rng = np.random.default_rng([params.seed, STREAM_KIND, subject, index])
    return bool(rng.random() < MICRO_SHARE)


def first_frame(clip: ClipSpec) -> int:
    """Recording number of the clip's frame 1: its name '<video>_<onset>' holds the onset."""
    return int(clip.name.split("_")[1]) - (clip.onset - 1)


# --- the layout ------------------------------------------------------------------------------
def _check(params: SynthParams, bad: BadKey) -> None:
    if params.modality:
        raise bad("modality", "CAS(ME)^3 Part A frames are the colour stream; modality is for "
                              "layout 'smic'", "remove it")
    if params.duration_s[0] * params.fps < 5:
        raise bad("duration_s", "a macro clip needs at least 5 frames from onset to offset (its "
                                "5th frame stands in for the apex)", "raise duration_s or fps")


def _order_clips(params: SynthParams, subject: int,
                 drafts: Sequence[ClipDraft]) -> list[tuple[ClipDraft, str]]:
    """Recording order; micro rows shrunk; names '<video>_<onset>' as the adapter names clips."""
    placed = []
    for d in sorted(drafts, key=lambda d: d.index):
        video = VIDEOS[(d.episode - 1) % len(VIDEOS)]
        placed.append((micro_draft(d) if is_micro(params, subject, d.index) else d, video))
    starts = recording_starts(params, subject, placed)
    return [(d, f"{v}_{start + d.onset - 1}") for (d, v), start in zip(placed, starts)]


def _write_clip(frames: Iterable[np.ndarray], clip: ClipSpec, params: SynthParams,
                root: Path) -> dict:
    video, first = clip.name.split("_")[0], first_frame(clip)
    folder = Path(root) / FRAMES_DIR / subject_name(clip.subject) / video / "color"
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for n, frame in enumerate(frames, start=1):
        path = folder / f"{first + n - 1}.jpg"
        if not cv2.imwrite(str(path), as_bgr(frame), [cv2.IMWRITE_JPEG_QUALITY,
                                                     int(params.jpeg_quality)]):
            raise MerError("cannot write the frame", where=path,
                           fix="check disk space and permissions")
    micro = is_micro(params, clip.subject, clip.index)
    return {"Subject": subject_name(clip.subject), "Filename": clip.name, "frames": n,
            "Expression type": MICRO if micro else MACRO,
            "OnsetFrame": first + clip.onset - 1, "ApexFrame": first + clip.apex - 1,
            "OffsetFrame": first + clip.offset - 1}


def sheet_rows(clips: Sequence[ClipSpec], params: SynthParams) -> list[tuple]:
    """'AU+Emotion' rows, by subject number, video and onset (the real sheet's order)."""
    rows = []
    for c in clips:
        first = first_frame(c)
        kind = MICRO if is_micro(params, c.subject, c.index) else MACRO
        rows.append((c.subject, c.name.split("_")[0], first + c.onset - 1, first + c.apex - 1,
                     first + c.offset - 1, c.aus, kind, objective_class(c.aus)))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return [(subject_name(r[0]), *r[1:]) for r in rows]


def write_sheet(path: Path, clips: Sequence[ClipSpec], params: SynthParams) -> Path:
    """The combined sheet as .xlsx (see module docstring); deterministic bytes."""
    wb = Workbook()
    ws = wb.active
    ws.title = "AU+Emotion"
    ws.append(list(SHEET_COLUMNS))
    for row in sheet_rows(clips, params):
        ws.append(list(row))
    wb.create_sheet("eye blink").append(list(BLINK_COLUMNS))
    wb.properties.creator = "mer.synth (SynthME)"
    wb.properties.created = wb.properties.modified = SHEET_TIME
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_pin_zip_times(raw.getvalue()))
    return path


def _finish(root: Path, clips: Sequence[ClipSpec], params: SynthParams) -> None:
    write_sheet(Path(root) / SHEET_PATH, clips, params)


LAYOUT = register_layout(Layout("casme3", EMOTIONS, COMBOS, _check, _order_clips, _write_clip,
                                _finish))
