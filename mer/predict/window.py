"""Choosing the clip's onset, apex and offset in a user's video: given, or spotted from motion.

Spotting (when the user gives no frame numbers) is one streaming pass over the video:

1. **track**: the face is found and its 68 landmarks placed on every frame
   (:func:`mer.face.track.track_frames`, the largest face, with the model's ``crop`` detector and
   landmarker).  To keep the pass cheap the frames are first shrunk so the face is about
   ``SPOT_FACE_PX`` wide (measured on ``WolfgangLanger_Pexels.mp4``, faces ~230 px in 640x360:
   HOG detection takes 86 ms per frame at full size, 19 ms at half size; the landmarker ~7 ms);
   the scale comes from the first frame's face.  The crop of the final clip is made later from the
   full-resolution frames by the crop stage, so this shrinking only affects the spotting.
2. **keep a patch**: each frame is aligned by its own eyes (the crop stage's geometry,
   :mod:`mer.face.align`) into a ``PATCH`` x ``PATCH`` gray patch, its landmarks carried along.
   Memory is one small patch per frame (3 kB), never a full frame: flat in the video's length.
3. **motion energy**: frame t's score is :func:`mer.temporal.apex.motion_score` (the crop stage's
   apex score: head drift undone by the rigid landmarks, flicker removed, the top 5% of
   differences inside the face, eyes left out during a blink) of frame t against the average of
   frames t - h and t + h, h half the longest micro-expression.  Why against both neighbours
   (the "feature difference" idea of Moilanen et al., ICPR 2014): a micro-expression leaves the
   face and comes back within 0.5 s, so its apex differs from both; a slow head turn or a
   lasting expression change differs from one side only and scores lower.
4. **window**: the apex is the frame of largest energy; the onset (offset) is the nearest frame
   before (after) it where the energy falls back to ``FALL_BACK`` of the way from the video's
   median to the peak, looked for at most ``MAX_ME_SECONDS`` away; a window longer than
   ``MAX_ME_SECONDS`` (the longest micro-expression) is shortened around the apex.

Limits: the largest motion of the video wins, macro-expressions and talking included, so on a
video with several expressions the spotted window is the strongest one; give ``--onset/--apex/
--offset`` to choose another.  A frame without a face stops the pass with a no-face error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from mer.errors import MerError
from mer.face.align import (
    canonical_eyes,
    eye_centres,
    similarity_from_eyes,
    transform_points,
    warp_image,
)
from mer.face.crop import CropParams
from mer.face.landmarks import NoFaceError
from mer.face.track import track_frames
from mer.predict.video import FrameSource
from mer.temporal.apex import motion_score

MAX_ME_SECONDS = 0.5   # the longest micro-expression (onset to offset) in the usual definition
MIN_FRAMES = 3         # onset, apex, offset: TIM and the key-frame stages need a clip of motion
PATCH = 56             # side of the aligned gray face patch kept per frame (motion_score's size)
SPOT_FACE_PX = 120     # face width the spotting pass tracks at (HOG finds faces from ~80 px)
FALL_BACK = 0.25       # energy level that ends the window: median + 0.25 (peak - median)


@dataclass
class Window:
    """Onset, apex and offset as frame numbers of the video; ``source`` is ``given`` or
    ``spotted``; ``energy`` the whole video's motion energy (T,) when spotted."""

    onset: int
    apex: int
    offset: int
    source: str
    energy: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return self.offset - self.onset + 1


def longest_span(fps: float) -> int:
    """Frames from onset to offset of the longest micro-expression at ``fps`` (at least 2)."""
    return max(MIN_FRAMES - 1, round(MAX_ME_SECONDS * fps))


def too_short(n_frames: int, where: object) -> MerError:
    return MerError(f"the clip has {n_frames} frame(s); recognition needs at least {MIN_FRAMES} "
                    "(onset, apex, offset: TIM interpolates the motion between them)", where,
                    "give a longer clip, or --onset/--offset further apart")


def given_window(onset: int | None, apex: int | None, offset: int | None, source: FrameSource
                 ) -> Window | None:
    """The user's frame numbers as a window (``None`` when none are given).  The apex may be left
    out (``apex`` ``None``): it is then spotted inside onset..offset by the crop stage."""
    if onset is None and apex is None and offset is None:
        return None
    where = source.path
    if onset is None or offset is None:
        raise MerError("give --onset and --offset together (and optionally --apex), or none of "
                       "them to spot the micro-expression", where,
                       "e.g. --onset 120 --apex 126 --offset 134")
    if offset < onset:
        raise MerError(f"offset {offset} is before onset {onset}", where,
                       "give --onset <= --apex <= --offset")
    last = source.n_frames - 1 if source.n_frames > 0 else None
    if onset < 0 or (last is not None and offset > last):
        raise MerError(f"frames {onset}..{offset} are outside the clip's frames 0..{last}", where,
                       "give frame numbers counted from 0 within the clip")
    if offset - onset + 1 < MIN_FRAMES:
        raise too_short(max(offset - onset + 1, 0), where)
    if apex is not None and not onset <= apex <= offset:
        raise MerError(f"apex {apex} is not within onset..offset {onset}..{offset}", where,
                       "give an apex between the onset and the offset")
    return Window(onset, apex if apex is not None else -1, offset, "given")


def _face_width(landmarks: np.ndarray) -> float:
    """Width of the 68 points (jaw contour to jaw contour) in pixels."""
    return float(np.ptp(landmarks[:, 0]))


def track_patches(source: FrameSource, crop: CropParams) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the video: an aligned ``(T, PATCH, PATCH)`` uint8 gray face patch per frame
    and the ``(T, 68, 2)`` float32 landmarks in patch pixels (see the module docstring)."""
    def track(index: int, image: np.ndarray) -> np.ndarray:   # (68, 2) on ``image``
        return track_frames([(index, image)], source.path, crop.landmarker, crop.detector,
                            crop.upsample)[0]

    eyes = canonical_eyes(PATCH, crop.eye_distance, crop.eye_y)
    patches, points, scale = [], [], None
    bar = tqdm(total=source.n_frames or None, desc=f"spotting {source.path.name}", unit="frame",
               dynamic_ncols=True, disable=os.environ.get("MER_PROGRESS", "1") == "0")
    frames = source.frames()
    try:
        for index, image in frames:                        # (H, W, 3) uint8, one at a time
            if scale is None:                              # the first frame sets the working size
                scale = min(1.0, SPOT_FACE_PX / max(_face_width(track(index, image)), 1.0))
            small = image if scale == 1.0 else cv2.resize(image, None, fx=scale, fy=scale,
                                                          interpolation=cv2.INTER_AREA)
            landmarks = track(index, small)                                  # (68, 2)
            matrix = similarity_from_eyes(eye_centres(landmarks), eyes)      # (2, 3)
            gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
            patches.append(warp_image(gray, matrix, PATCH, crop.border))     # (PATCH, PATCH)
            points.append(transform_points(landmarks, matrix).astype(np.float32))
            bar.update()
    except NoFaceError as exc:
        hint = ("give --onset/--apex/--offset of a stretch with a face (spotting tracks every "
                "frame)")
        raise NoFaceError(exc.what, exc.where, f"{exc.fix}; or {hint}" if exc.fix else hint) from None
    finally:
        frames.close()
        bar.close()
    if not patches:
        raise too_short(0, source.path)
    return np.stack(patches), np.stack(points)             # (T, P, P) uint8, (T, 68, 2) float32


def motion_energy(patches: np.ndarray, landmarks: np.ndarray, half: int) -> np.ndarray:
    """Motion of each frame against the mean of the frames ``half`` before and after it (clamped
    at the ends): :func:`mer.temporal.apex.motion_score` on the pair. (T, P, P), (T, 68, 2) -> (T,)
    """
    n = len(patches)
    energy = np.zeros(n)
    for t in range(n):
        lo, hi = max(t - half, 0), min(t + half, n - 1)
        reference = ((patches[lo].astype(np.uint16) + patches[hi] + 1) // 2).astype(np.uint8)
        pair = np.repeat(np.stack([reference, patches[t]])[..., None], 3, axis=-1)  # (2, P, P, 3)
        points = np.stack([(landmarks[lo] + landmarks[hi]) / 2, landmarks[t]])     # (2, 68, 2)
        energy[t] = motion_score(pair, points, size=PATCH)[1]
    return energy


def spot_window(energy: np.ndarray, fps: float) -> tuple[int, int, int]:
    """``(onset, apex, offset)`` frame numbers from a motion-energy curve ``(T,)`` (see the module
    docstring, step 4).  Needs ``T >= MIN_FRAMES``; the window always holds ``MIN_FRAMES``."""
    n = len(energy)
    span = longest_span(fps)
    apex = int(np.argmax(energy))
    base = float(np.median(energy))
    level = base + FALL_BACK * (float(energy[apex]) - base)
    before = np.flatnonzero(energy[max(apex - span, 0):apex] <= level)
    after = np.flatnonzero(energy[apex + 1:apex + 1 + span] <= level)
    onset = max(apex - span, 0) + int(before[-1]) if len(before) else max(apex - span, 0)
    offset = apex + 1 + int(after[0]) if len(after) else min(apex + span, n - 1)
    if offset - onset > span:       # longer than a micro-expression: shorten, apex kept inside
        rise = round(span * (apex - onset) / (offset - onset))
        onset, offset = apex - rise, apex - rise + span
    while offset - onset + 1 < min(MIN_FRAMES, n):   # too few frames: widen, within the video
        if onset > 0 and (apex - onset <= offset - apex or offset == n - 1):
            onset -= 1
        else:
            offset += 1
    return onset, apex, offset


def spotted_window(source: FrameSource, crop: CropParams) -> Window:
    """Track the whole video (streaming) and spot the strongest micro-expression window."""
    if 0 < source.n_frames < MIN_FRAMES:              # known before tracking (exact for a folder)
        raise too_short(source.n_frames, source.path)
    patches, landmarks = track_patches(source, crop)
    if len(patches) < MIN_FRAMES:
        raise too_short(len(patches), source.path)
    energy = motion_energy(patches, landmarks, max(1, longest_span(source.fps) // 2))
    onset, apex, offset = spot_window(energy, source.fps)
    return Window(onset, apex, offset, "spotted", energy)
