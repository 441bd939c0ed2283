"""SynthME's parameters: one flat, documented dataclass, validated on the way in.

Why flat: a corpus variant (a harder amplitude, a SMIC-like frame rate, fewer subjects for the
quick profile) is then a small params block that overrides a few keys, and
``dvc exp run -S synthesize.amplitude=[0.01,0.02]`` reaches any of them.  Unknown keys are errors,
never silently ignored, because a typo would otherwise produce a corpus nobody asked for.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from mer.config import check_keys
from mer.errors import MerError

SECTION = "synthesize"

#: CASME II's clip count per emotion (coding sheet 2014-05-08); the default class imbalance.
CASME2_EMOTION_COUNTS: dict[str, float] = {
    "others": 99, "disgust": 63, "happiness": 32, "repression": 27, "surprise": 25,
    "sadness": 7, "fear": 2,
}


@dataclass(frozen=True)
class SynthParams:
    """Everything that decides a SynthME corpus; same params and seed -> same bytes."""

    # --- corpus size and labels -------------------------------------------------------------
    seed: int = 0
    n_subjects: int = 26
    clips_per_subject: int = 10
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

    # --- output -----------------------------------------------------------------------------
    #: JPEG quality of the frames (OpenCV; fixed, so the bytes are reproducible)
    jpeg_quality: int = 90

    # ----------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | None) -> "SynthParams":
        """Build from the params.yaml section; unknown keys or bad values raise one MerError."""
        cfg = check_keys(cfg, cls, SECTION)
        known = {f.name: f for f in fields(cls)}
        kwargs = {name: _coerce(name, value, known[name]) for name, value in cfg.items()}
        params = cls(**kwargs)
        params.validate()
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

    def validate(self) -> None:
        """Reject values that cannot make a sensible corpus, naming the key and the fix."""
        def bad(key: str, why: str, fix: str) -> MerError:
            return MerError(f"{key}: {why}", where=f"params.yaml: {SECTION}.{key}", fix=fix)

        for key in ("n_subjects", "clips_per_subject"):
            if getattr(self, key) < 1:
                raise bad(key, "must be at least 1", "set a positive integer")
        if self.n_subjects > 99:
            raise bad("n_subjects", "CASME II folders are subNN (two digits)", "use at most 99")
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
        from mer.synth.emotions import EMOTIONS  # local: emotions imports nothing from here
        unknown = sorted(set(self.emotion_weights) - set(EMOTIONS))
        if unknown:
            raise bad("emotion_weights", f"unknown emotion(s) {unknown}",
                      f"use only {', '.join(EMOTIONS)}")
        weights = list(self.emotion_weights.values())
        if any(v < 0 for v in weights) or sum(weights) <= 0:
            raise bad("emotion_weights", "weights must be >= 0 with a positive sum",
                      "e.g. CASME II's counts")


def _coerce(name: str, value: Any, f: dataclasses.Field) -> Any:
    """YAML gives lists where the dataclass wants tuples, ints where it wants floats."""
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    where = f"params.yaml: {SECTION}.{name}"
    try:
        if isinstance(default, tuple):
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise TypeError
            items = list(value)
            if name == "faces":
                return tuple(str(v) for v in items)
            if len(items) != len(default):
                raise MerError(f"expected {len(default)} values, got {len(items)}", where=where,
                               fix=f"e.g. {list(default)}")
            return tuple(_as_type(d, v) for d, v in zip(default, items))
        if isinstance(default, Mapping):
            if not isinstance(value, Mapping):
                raise TypeError
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
    except (TypeError, ValueError):
        raise MerError(f"cannot read {value!r} as {type(default).__name__}", where=where,
                       fix=f"give a value like the default {default!r}") from None
    return value


def _as_type(default: Any, value: Any) -> Any:
    """``value`` as the type of ``default``; a fractional value for an int is a TypeError."""
    if isinstance(default, int) and not float(value).is_integer():
        raise TypeError(f"{value!r} is not an integer")
    return type(default)(value)
