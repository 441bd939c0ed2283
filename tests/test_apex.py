"""Apex spotting: exact on a synthetic expression, robust to a blink and to head drift."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mer.errors import MerError
from mer.io import save_npz
from mer.temporal import apex as ap

SIZE = 112


def template_landmarks(s: int = SIZE) -> np.ndarray:
    """A plausible frontal 68-point layout (iBUG order) in an s x s crop. (68, 2) float32"""
    t = np.linspace(0, np.pi, 17)
    jaw = np.stack([0.5 - 0.36 * np.cos(t), 0.38 + 0.54 * np.sin(t)], 1)
    brows = np.stack([np.r_[np.linspace(.2, .42, 5), np.linspace(.58, .8, 5)], np.full(10, .26)], 1)
    nose = np.stack([np.r_[np.full(4, .5), np.linspace(.43, .57, 5)],
                     np.r_[np.linspace(.36, .56, 4), np.full(5, .6)]], 1)

    def eye(cx: float) -> np.ndarray:
        a = np.radians([180, 120, 60, 0, -60, -120])          # outer corner first, top, inner...
        return np.stack([cx + .065 * np.cos(a), .36 - .03 * np.sin(a)], 1)

    a = np.linspace(np.pi, -np.pi, 12, endpoint=False)
    outer = np.stack([.5 + .14 * np.cos(a), .76 - .05 * np.sin(a)], 1)
    b = np.linspace(np.pi, -np.pi, 8, endpoint=False)
    inner = np.stack([.5 + .09 * np.cos(b), .76 - .02 * np.sin(b)], 1)
    pts = np.concatenate([jaw, brows, nose, eye(.34), eye(.66), outer, inner]) * s
    assert pts.shape == (68, 2)
    return pts.astype(np.float32)


def profile(n: int, apex: int) -> np.ndarray:
    """Raised-cosine rise from frame 0 to ``apex`` and fall to the last frame. (n,)"""
    t = np.arange(n, dtype=np.float64)
    return np.where(t <= apex, 0.5 * (1 - np.cos(np.pi * t / apex)),
                    0.5 * (1 + np.cos(np.pi * (t - apex) / (n - 1 - apex))))


def texture(s: int = SIZE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((s, s, 3)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(base, None, 30, 220, cv2.NORM_MINMAX)       # (s, s, 3) float32


def make_clip(n: int = 60, apex: int = 17, amplitude: float = 4.0, drift: float = 0.0,
              blink_at: int | None = None, seed: int = 0, s: int = SIZE):
    """A textured 'face' whose mouth-corner region moves out by ``amplitude`` px and back.

    Optionally a head drift growing linearly to ``drift`` px at the end, and a blink: both eyes'
    regions darken and their lid landmarks close over 9 frames from ``blink_at``.
    Returns (n, s, s, 3) uint8 frames, (n, 68, 2) landmarks.
    """
    base = texture(s, seed)
    lm0 = template_landmarks(s)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    centre = np.array([0.62, 0.74]) * s
    bump = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * (0.06 * s) ** 2))
    eyes = np.zeros((s, s), np.float32)
    for idx in (slice(36, 42), slice(42, 48)):
        c = lm0[idx].mean(0)
        eyes = np.maximum(eyes, np.exp(-((xx - c[0]) ** 2 / (2 * (0.05 * s) ** 2)
                                         + (yy - c[1]) ** 2 / (2 * (0.025 * s) ** 2))))
    strength = profile(n, apex)
    closure = np.zeros(n)
    if blink_at is not None:
        k = np.arange(9)
        closure[blink_at:blink_at + 9] = np.sin(np.pi * (k + 1) / 10) ** 2
    rng = np.random.default_rng(seed + 1)
    frames, marks = [], []
    for i in range(n):
        d = amplitude * strength[i] * bump                           # outward, up-right
        head = drift * i / (n - 1)
        mx = xx - d * 0.8 - head
        my = yy + d * 0.6 - 0.5 * head
        img = cv2.remap(base, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        img = img * (1 - 0.7 * closure[i] * eyes[..., None])         # the lids cover the eyes
        img = img + rng.normal(0, 1.0, img.shape)
        frames.append(np.clip(np.round(img), 0, 255).astype(np.uint8))
        lm = lm0.copy()
        lm[[37, 38, 43, 44], 1] += 0.7 * closure[i] * 0.03 * s       # upper lids down
        lm[[40, 41, 46, 47], 1] -= 0.7 * closure[i] * 0.03 * s       # lower lids up
        lm += np.array([head, 0.5 * head], np.float32)
        marks.append(lm)
    return np.stack(frames), np.stack(marks).astype(np.float32)


@pytest.mark.parametrize("apex", [9, 17, 38])
def test_spots_the_peak_of_a_synthetic_expression_exactly(apex):
    frames, marks = make_clip(apex=apex)
    assert ap.spot_apex(frames, marks) == apex
    assert ap.spot_apex(frames, None) == apex
    assert ap.midpoint_index(len(frames)) != apex or apex == 29  # the policy we improve on


def test_blink_is_ignored_when_the_eyes_close_far_more_than_an_expression_narrows_them():
    frames, marks = make_clip(apex=17, blink_at=40)
    assert ap.blink_suspected(marks)
    assert not ap.blink_suspected(make_clip(apex=17)[1])
    assert ap.spot_apex(frames, marks) == 17
    # without the eye masking the blink wins: the test can tell the mechanism works
    assert ap.spot_apex(frames, marks, blink_change=np.inf) >= 40


def test_head_drift_is_compensated_with_landmarks():
    frames, marks = make_clip(apex=17, drift=1.5)
    assert ap.spot_apex(frames, marks) == 17
    # a drift that keeps growing after the apex wins without compensation
    frozen = np.repeat(marks[:1], len(marks), axis=0)                # landmarks that miss it
    assert ap.spot_apex(frames, frozen) > 30


def test_fast_score_matches_the_frame_by_frame_reference():
    frames, marks = make_clip(apex=17, drift=0.7, blink_at=28, n=40)
    for lm in (marks, None):
        fast = ap.motion_score(frames, lm)
        ref = ap.motion_score_reference(frames, lm)
        assert fast.shape == (40,)
        assert np.abs(fast - ref).max() <= 0.01 * ref.max()
        assert fast.argmax() == ref.argmax()


def test_whole_clip_resize_equals_the_per_frame_loop():
    frames, _ = make_clip(n=7)
    stacked = ap._small_gray(frames, 56)
    loop = np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (56, 56),
                                interpolation=cv2.INTER_AREA) for f in frames])
    assert np.array_equal(stacked, loop.astype(np.float32))


def test_any_crop_size_works():
    frames, marks = make_clip(apex=17, s=100)                      # 100 is no multiple of 56
    assert ap.spot_apex(frames, marks) == 17


def test_one_and_two_frame_clips():
    frames, marks = make_clip(n=5, apex=2)
    assert ap.spot_apex(frames[:1], marks[:1]) == 0
    assert ap.spot_apex(frames[[0, 2]], marks[[0, 2]]) == 1


def test_bad_input_is_one_clear_error():
    frames, marks = make_clip(n=5, apex=2)
    with pytest.raises(MerError, match="uint8"):
        ap.spot_apex(frames.astype(np.float32), marks)
    with pytest.raises(MerError, match="landmarks"):
        ap.spot_apex(frames, marks[:3])


def test_evaluate_spotting_on_tiny_crops(tmp_path):
    truth = {"a": (40, 9), "b": (40, 30), "c": (31, 20), "d": (25, 6)}
    for name, (n, apex) in truth.items():
        frames, marks = make_clip(n=n, apex=apex, seed=len(name) + apex)
        save_npz(tmp_path / f"{name}.npz", compress=False, frames=frames, landmarks=marks,
                 apex_index=np.array([apex], np.int64))
    (tmp_path / "index.csv").write_text("clip_id,status\n")        # not a clip: ignored
    result = ap.evaluate_spotting(tmp_path)
    assert result["clips"] == 4
    assert result["spotted_median"] == 0 and result["spotted_mean"] == 0
    midpoint = np.array([abs((n - 1) // 2 - a) for n, a in truth.values()])  # 10, 11, 5, 6
    assert result["midpoint_median"] == np.median(midpoint) == 8.0
    assert result["midpoint_mean"] == pytest.approx(midpoint.mean())
    assert result["per_clip"]["b"] == (30, 30, 19)


def test_evaluate_spotting_names_an_empty_folder(tmp_path):
    with pytest.raises(MerError, match="no crop artifacts"):
        ap.evaluate_spotting(tmp_path)


def test_triangle_fit_equals_trying_every_triangle():
    def brute(s: np.ndarray) -> int:
        n, t = len(s), np.arange(len(s), dtype=np.float64)
        best, best_a = -np.inf, 0
        for a in range(1, n):
            p = np.where(t <= a, t / a, (n - 1 - t) / max(n - 1 - a, 1))
            p = p - p.mean()
            c = p @ (s - s.mean())
            r = c * c / (p @ p) if c > 0 else -1.0
            if r > best:
                best, best_a = r, a
        return best_a

    rng = np.random.default_rng(0)
    for n in [3, 4, 5, 17, 60, 101]:
        for _ in range(20):
            s = rng.random(n) + profile(n, int(rng.integers(1, n - 1))) * rng.random()
            assert ap.triangle_fit(s) == brute(s)
    assert ap.triangle_fit(np.r_[0.0, np.arange(1, 30)]) == 29          # still rising: last frame


def test_shift_frames_is_exact_bilinear_with_replicated_borders():
    from scipy.ndimage import shift

    rng = np.random.default_rng(3)
    images = rng.random((5, 20, 20)).astype(np.float32)
    d = np.array([[0.0, 0.0], [0.3, -1.7], [-2.5, 0.25], [4.2, 3.9], [0.6, -0.2]])
    got = ap.shift_frames(images, d)
    want = np.stack([shift(im, (-dy, -dx), order=1, mode="nearest") for im, (dx, dy) in zip(images, d)])
    assert got.shape == (5, 20, 20) and np.abs(got - want).max() < 1e-5
    one = ap.shift_frames(images[1], d)                                  # one image, five shifts
    assert np.abs(one[2] - shift(images[1], (-0.25, 2.5), order=1, mode="nearest")).max() < 1e-5
    assert np.array_equal(one[0], images[1])


def test_shift_frames_window_is_the_same_pixels():
    rng = np.random.default_rng(4)
    images = rng.random((3, 16, 18)).astype(np.float32)
    d = np.array([[0.4, -0.3], [-1.2, 2.6], [0.0, 0.9]])
    assert np.array_equal(ap.shift_frames(images, d, (2, 11, 5, 17)),
                          ap.shift_frames(images, d)[:, 2:11, 5:17])
