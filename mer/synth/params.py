"""SynthME's parameters: one flat, documented dataclass, validated on the way in.

Why flat: a corpus variant (a harder amplitude, a SMIC-like frame rate, fewer subjects for the
quick profile) is then a small params block that overrides a few keys, and
``dvc exp run -S synthesize.amplitude=[0.01,0.02]`` reaches any of them.  Unknown keys are errors,
never silently ignored, because a typo would otherwise produce a corpus nobody asked for.

The section describes the base corpus (``synthme``, CASME II-like) and, under ``variants``, named
corpora that override some of its keys (:mod:`mer.synth.variants`): by default the SMIC-like
``synthme_hs``, ``synthme_vis`` and ``synthme_nir`` (:data:`DEFAULT_VARIANTS`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mer.config import check_keys
from mer.errors import MerError

SECTION = "synthesize"
#: the name of the corpus the section itself describes (written to data/raw/synthme)
BASE = "synthme"

#: CASME II's clip count per emotion (coding sheet 2014-05-08); the default class imbalance.
CASME2_EMOTION_COUNTS: dict[str, float] = {
    "others": 99, "disgust": 63, "happiness": 32, "repression": 27, "surprise": 25,
    "sadness": 7, "fear": 2,
}

#: SMIC-HS's subjects (s7, s10, s16, s17 showed no micro-expression) and clips per subject
SMIC_HS_SUBJECTS = [1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 13, 14, 15, 18, 19, 20]
SMIC_HS_CLIPS = [6, 6, 39, 19, 2, 4, 13, 4, 7, 9, 10, 10, 4, 7, 2, 22]
#: the 8 subjects the VIS and NIR cameras recorded too (the last 10 recorded, minus s16, s17)
SMIC_VIS_SUBJECTS = [11, 12, 13, 14, 15, 18, 19, 20]

#: The SMIC-like domain variants (see mer/synth/variants.py for the rules).  HS: 164 clips of 16
#: subjects at 100 fps with SMIC's class counts, other pseudo-people than synthme (seed 1), filmed
#: from slightly below by a high-speed camera (short exposure: a dark tone curve, some noise).
#: VIS and NIR extend HS: the same 8 subjects' 71 micro-expressions, filmed at the same moments by
#: two 25 fps cameras beside and above it (a smaller face, seen from the right and from the left),
#: VIS in colour with more noise, a softer lens and flicker, NIR gray (a near-infrared response:
#: mostly the red channel) with a flatter, brighter tone curve.  Every variant states all its
#: camera keys, since a camera is not inherited from the one it stands beside.  Frames are
#: 320x240: SMIC ships uncompressed BMPs, and 640x480 would make SynthME-HS 5 GB.
DEFAULT_VARIANTS: dict[str, dict[str, Any]] = {
    "synthme_hs": {
        "layout": "smic", "modality": "HS", "seed": 1, "fps": 100.0, "n_subjects": 16,
        "subject_numbers": list(SMIC_HS_SUBJECTS), "subject_clips": list(SMIC_HS_CLIPS),
        "emotion_weights": {"negative": 70.0, "positive": 51.0, "surprise": 43.0},
        "duration_s": [0.15, 0.55], "neutral_frames": [0, 0], "frame_size": [320, 240],
        "face_width_px": 150.0, "position_px": 10.0,
        "gray": False, "contrast": 1.0, "gamma": 1.3, "brightness": -35.0, "blur_sigma": 0.0,
        "view_yaw_deg": 0.0, "view_pitch_deg": -16.0, "noise_sigma": 4.5, "flicker": 0.01,
    },
    "synthme_vis": {
        "extends": "synthme_hs", "modality": "VIS", "fps": 25.0,
        "write_subjects": list(SMIC_VIS_SUBJECTS), "face_width_px": 135.0,
        "gray": False, "contrast": 1.0, "gamma": 1.0, "brightness": 0.0, "blur_sigma": 0.8,
        "view_yaw_deg": 20.0, "view_pitch_deg": 10.0, "noise_sigma": 6.5, "flicker": 0.04,
    },
    "synthme_nir": {
        "extends": "synthme_hs", "modality": "NIR", "fps": 25.0,
        "write_subjects": list(SMIC_VIS_SUBJECTS), "face_width_px": 135.0,
        "gray": True, "gray_weights": [0.05, 0.25, 0.7], "contrast": 0.7, "gamma": 0.8,
        "brightness": 25.0, "blur_sigma": 0.8, "view_yaw_deg": -20.0, "view_pitch_deg": 10.0,
        "noise_sigma": 6.0, "flicker": 0.01,
    },
    # The macro-expression block MoExt pre-trains on (mer/synth/casme3_layout.py): laid out like
    # CAS(ME)^3 Part A (30 fps recordings + the combined macro/micro sheet), 20 pseudo-subjects of
    # its own (numbers 101-120, seed 2: disjoint from synthme's and synthme_hs's), movements of
    # 7-12 % of the face width over 0.6-1.1 s (about a fifth of the rows shrunk to micro size by
    # the layout), a lead-in and tail of 1-3 frames: at most 39 frames a clip.
    "synthme_macro": {
        "layout": "casme3", "seed": 2, "n_subjects": 20, "clips_per_subject": 12,
        "subject_numbers": list(range(101, 121)), "fps": 30.0, "duration_s": [0.6, 1.1],
        "apex_position": [0.4, 0.7], "neutral_frames": [1, 3], "amplitude": [0.07, 0.12],
    },
}


@dataclass(frozen=True)
class SynthParams:
    """Everything that decides a SynthME corpus; same params and seed -> same bytes."""

    # --- corpus size and labels -------------------------------------------------------------
    seed: int = 0
    n_subjects: int = 26
    clips_per_subject: int = 10
    #: the subjects' numbers (sub01, s11, ...), one per subject; empty: 1..n_subjects
    subject_numbers: tuple[int, ...] = ()
    #: clips of each subject, one count per subject (replaces clips_per_subject); empty: uniform
    subject_clips: tuple[int, ...] = ()
    #: subject numbers whose clips are written (the rest are planned, not rendered); empty: all.
    #: A corpus filmed by a second camera at the same time (SMIC's VIS, NIR) keeps the plan of
    #: the first one and writes the subjects that camera recorded: same people, same clips
    write_subjects: tuple[int, ...] = ()
    #: relative frequency of each emotion over the whole corpus (CASME II's counts by default)
    emotion_weights: Mapping[str, float] = field(
        default_factory=lambda: dict(CASME2_EMOTION_COUNTS))

    # --- timing -----------------------------------------------------------------------------
    fps: float = 200.0
    #: onset..offset duration in seconds, drawn uniformly per clip
    duration_s: tuple[float, float] = (0.1, 0.5)
    #: apex position as a fraction of onset..offset, drawn uniformly per clip
    apex_position: tuple[float, float] = (0.25, 0.75)
    #: neutral frames written before the onset and after the offset (each drawn in this range)
    neutral_frames: tuple[int, int] = (3, 10)

    # --- geometry ---------------------------------------------------------------------------
    #: (width, height) of every frame in pixels
    frame_size: tuple[int, int] = (640, 480)
    #: jaw width (dlib points 0..16) of the face in the frame, before the per-subject scale change
    face_width_px: float = 230.0
    #: apex displacement of the moving points, as a fraction of the face width, drawn per clip
    amplitude: tuple[float, float] = (0.02, 0.05)
    #: spatial reach (Gaussian sigma) of an action unit's control points, fraction of face width
    au_spread: float = 0.06

    # --- identities (pseudo-subjects) -------------------------------------------------------
    #: extra face images (paths) used besides astronaut; subjects cycle through the sources
    faces: tuple[str, ...] = ()
    #: in-plane head rotation of a subject, degrees, drawn in +-rotation_deg
    rotation_deg: float = 8.0
    #: face-size change of a subject relative to face_width_px, drawn in +-scale_range
    scale_range: float = 0.10
    #: offset of the face centre from the frame centre, pixels, drawn in +-position_px per axis
    position_px: float = 20.0
    #: per-clip pose change around the subject's pose, as a fraction of the three ranges above
    pose_jitter: float = 0.1
    #: face-shape morph: jaw width and lower-face length change, relative, drawn in +-morph_shape
    morph_shape: float = 0.08
    #: feature-size morph: eye, nose and mouth scale change, relative, drawn in +-morph_size
    morph_size: float = 0.12
    #: feature-position morph: eye height/spacing and mouth height shift, fraction of face width
    morph_shift: float = 0.03
    #: skin-tone change inside the face: brightness +-skin_tone, warmth +-skin_tone/2
    skin_tone: float = 0.12
    #: lighting: gain gradient across one face width +-illumination, exposure +-illumination/2
    illumination: float = 0.2

    # --- distractors (things real clips have that carry no label) ---------------------------
    #: sensor noise standard deviation in gray levels (per pixel, channel and frame)
    noise_sigma: float = 2.0
    #: maximum slow head drift over a clip, pixels
    drift_px: float = 1.5
    #: illumination flicker, relative amplitude of the per-frame gain change
    flicker: float = 0.01
    #: probability that a clip holds one eye blink (anywhere in the clip, ME window included)
    blink_prob: float = 0.15
    #: how far a blink closes the eye, as a fraction of the eye's opening
    blink_closure: float = 0.6

    # --- camera (how the recording device renders the scene) --------------------------------
    #: a monochrome sensor (e.g. near-infrared): frames are gray, written as three equal channels
    gray: bool = False
    #: the monochrome sensor's response to the scene's blue, green and red (gray only)
    gray_weights: tuple[float, float, float] = (0.114, 0.587, 0.299)
    #: tone curve on the 0..255 signal: v -> 255 ((v/255)^gamma - 0.5) contrast + 127.5 + brightness
    contrast: float = 1.0
    gamma: float = 1.0
    #: gray levels added by the tone curve
    brightness: float = 0.0
    #: lens blur (Gaussian sigma, pixels) of the camera; a softer, lower-quality camera
    blur_sigma: float = 0.0
    #: where the camera looks from: its angle to the face's frontal axis, degrees (yaw: positive
    #: seen from the subject's left, i.e. the image's right; pitch: positive from above).  The
    #: frame is the face plane seen in perspective from that angle; eye-aligned crops keep it
    view_yaw_deg: float = 0.0
    view_pitch_deg: float = 0.0

    # --- output -----------------------------------------------------------------------------
    #: on-disk format: 'casme2' (CASME2_RAW_selected + coding sheet) or 'smic' (SMIC_all_raw tree)
    layout: str = "casme2"
    #: the SMIC camera folder (HS, VIS or NIR) for layout 'smic'; empty for 'casme2'
    modality: str = ""
    #: JPEG quality of the frames (OpenCV; fixed, so the bytes are reproducible; casme2 layout)
    jpeg_quality: int = 90
    #: named corpora: name -> overrides of the keys above (plus 'extends: <variant>'), see
    #: mer/synth/variants.py; each is built into data/raw/<name>
    variants: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: copy.deepcopy(DEFAULT_VARIANTS))

    # ----------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | None, where: str = SECTION) -> SynthParams:
        """Build from the params.yaml section; unknown keys or bad values raise one MerError.

        ``where`` is the dotted name of the block in messages (a variant's block when
        :mod:`mer.synth.variants` builds one).  Every variant is resolved and validated here too,
        so a typo in any of them fails whichever corpus is being built.
        """
        cfg = check_keys(cfg, cls, where)
        known = {f.name: f for f in fields(cls)}
        kwargs = {name: _coerce(name, value, known[name], where) for name, value in cfg.items()}
        params = cls(**kwargs)
        params.validate(where)
        return params

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-ready values (tuples as lists), the inverse of :meth:`from_dict`."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, Mapping):
                v = dict(v)
            out[f.name] = v
        return out

    def subjects(self) -> list[int]:
        """The subjects' numbers, in plan order."""
        return list(self.subject_numbers) or list(range(1, self.n_subjects + 1))

    def clip_counts(self) -> list[int]:
        """Clips per subject, in plan order."""
        return list(self.subject_clips) or [self.clips_per_subject] * self.n_subjects

    def validate(self, where: str = SECTION) -> None:
        """Reject values that cannot make a sensible corpus, naming the key and the fix."""
        def bad(key: str, why: str, fix: str) -> MerError:
            return MerError(f"{key}: {why}", where=f"params.yaml: {where}.{key}", fix=fix)

        for key in ("n_subjects", "clips_per_subject"):
            if getattr(self, key) < 1:
                raise bad(key, "must be at least 1", "set a positive integer")
        for key in ("subject_numbers", "subject_clips"):
            if getattr(self, key) and len(getattr(self, key)) != self.n_subjects:
                raise bad(key, f"gives {len(getattr(self, key))} values for n_subjects = "
                               f"{self.n_subjects}", "give one value per subject, or set "
                               "n_subjects to match")
        if len(set(self.subjects())) != self.n_subjects or min(self.subjects()) < 1:
            raise bad("subject_numbers", "subject numbers must be distinct and positive",
                      "e.g. [1, 2, 3, 4]")
        if min(self.clip_counts()) < 1:
            raise bad("subject_clips", "every subject needs at least one clip",
                      "leave the subject out instead")
        unknown = sorted(set(self.write_subjects) - set(self.subjects()))
        if unknown or len(set(self.write_subjects)) != len(self.write_subjects):
            raise bad("write_subjects", f"must name distinct planned subjects (not planned: "
                                        f"{unknown})", f"use numbers out of {self.subjects()}")
        for key in ("duration_s", "apex_position", "neutral_frames", "amplitude"):
            lo, hi = getattr(self, key)
            if not 0 <= lo <= hi:
                raise bad(key, f"range [{lo}, {hi}] must satisfy 0 <= low <= high",
                          "give [low, high]")
        if self.apex_position[1] > 1:
            raise bad("apex_position", "fractions must lie in [0, 1]", "e.g. [0.25, 0.75]")
        if self.amplitude[1] > 0.15:
            raise bad("amplitude", "above 15% of the face width the warp folds over",
                      "use fractions of the face width, e.g. [0.02, 0.05]")
        if self.fps <= 0 or round(self.duration_s[0] * self.fps) < 3:
            raise bad("duration_s", "a clip needs at least 3 frames from onset to offset",
                      "raise the duration or the frame rate")
        w, h = self.frame_size
        if w < 64 or h < 64 or self.face_width_px * (1 + self.scale_range) > 0.9 * min(w, h):
            raise bad("face_width_px", f"a {self.face_width_px}px face does not fit {w}x{h} frames",
                      "shrink the face or enlarge frame_size")
        for key in ("au_spread", "face_width_px"):
            if getattr(self, key) <= 0:
                raise bad(key, "must be positive", "set a positive number")
        for key in ("rotation_deg", "scale_range", "position_px", "pose_jitter", "morph_shape",
                    "morph_size", "morph_shift", "skin_tone", "illumination", "noise_sigma",
                    "drift_px", "flicker"):
            if getattr(self, key) < 0:
                raise bad(key, "must not be negative", "use 0 to switch it off")
        for key in ("blink_prob", "blink_closure", "pose_jitter"):
            if not 0 <= getattr(self, key) <= 1:
                raise bad(key, "must lie in [0, 1]", "give a fraction")
        if self.rotation_deg > 30 or self.scale_range >= 0.5:
            raise bad("rotation_deg", "pose too extreme for a frontal face detector",
                      "keep rotation <= 30 degrees and scale_range < 0.5")
        if not 1 <= self.jpeg_quality <= 100:
            raise bad("jpeg_quality", "must lie in 1..100", "e.g. 90")
        if any(w < 0 for w in self.gray_weights) or sum(self.gray_weights) <= 0:
            raise bad("gray_weights", "weights must be >= 0 with a positive sum",
                      "e.g. [0.114, 0.587, 0.299] (blue, green, red)")
        for key in ("contrast", "gamma"):
            if not getattr(self, key) > 0:
                raise bad(key, "must be positive", "1 leaves the signal as it is")
        if not -255 < self.brightness < 255:
            raise bad("brightness", "must lie in (-255, 255) gray levels", "e.g. 20")
        if self.blur_sigma < 0:
            raise bad("blur_sigma", "must not be negative", "use 0 to switch it off")
        for key in ("view_yaw_deg", "view_pitch_deg"):
            if abs(getattr(self, key)) > 25:
                raise bad(key, "beyond 25 degrees a frontal face detector loses the face",
                          "keep the view within +-25 degrees")
        from mer.synth.layouts import get_layout  # local: layouts import this module

        layout = get_layout(self.layout, f"params.yaml: {where}.layout")
        layout.check(self, bad)
        unknown = sorted(set(self.emotion_weights) - set(layout.emotions))
        if unknown:
            raise bad("emotion_weights", f"unknown emotion(s) {unknown} for layout "
                                         f"'{self.layout}'", f"use only {', '.join(layout.emotions)}")
        weights = list(self.emotion_weights.values())
        if any(v < 0 for v in weights) or sum(weights) <= 0:
            raise bad("emotion_weights", "weights must be >= 0 with a positive sum",
                      "e.g. CASME II's counts")
        if self.variants:
            from mer.synth.variants import (
                check_variants,  # local: variants import this module
            )

            check_variants(self, where)


#: tuple fields of any length, and the type of their items
VARIABLE_TUPLES: dict[str, type] = {"faces": str, "subject_numbers": int, "subject_clips": int,
                                    "write_subjects": int}


def _coerce(name: str, value: Any, f: dataclasses.Field, section: str = SECTION) -> Any:
    """YAML gives lists where the dataclass wants tuples, ints where it wants floats."""
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    where = f"params.yaml: {section}.{name}"
    try:
        if isinstance(default, tuple):
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise TypeError
            items = list(value)
            if name in VARIABLE_TUPLES:
                kind = VARIABLE_TUPLES[name]
                return tuple(str(v) if kind is str else _as_type(0, v) for v in items)
            if len(items) != len(default):
                raise MerError(f"expected {len(default)} values, got {len(items)}", where=where,
                               fix=f"e.g. {list(default)}")
            return tuple(_as_type(d, v) for d, v in zip(default, items))
        if isinstance(default, Mapping):
            if not isinstance(value, Mapping):
                raise TypeError
            if name == "variants":  # name -> overrides, checked key by key when resolved
                if not all(isinstance(v, Mapping) for v in value.values()):
                    raise TypeError
                return {str(k): dict(v) for k, v in value.items()}
            return {str(k): float(v) for k, v in value.items()}
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(default, int):
            if isinstance(value, bool) or not float(value).is_integer():
                raise TypeError
            return int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if isinstance(default, str):
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError):
        raise MerError(f"cannot read {value!r} as {type(default).__name__}", where=where,
                       fix=f"give a value like the default {default!r}") from None
    return value


def _as_type(default: Any, value: Any) -> Any:
    """``value`` as the type of ``default``; a fractional value for an int is a TypeError."""
    if isinstance(default, int) and not float(value).is_integer():
        raise TypeError(f"{value!r} is not an integer")
    return type(default)(value)
