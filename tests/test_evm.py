"""Eulerian video magnification (mer.motion.evm): the vectorised kernel against the per-frame
reference, magnification that really grows motion for any frame size, the spatial cut-off,
the colour handling and the temporal filters."""

from __future__ import annotations

import numpy as np
import pytest

from mer.errors import MerError
from mer.motion.evm import (
    _RGB2YIQ,
    evm,
    evm_reference,
    level_alphas,
    pyramid_depth,
    temporal_matrix,
)

FPS = 200.0
TOL = 1e-3   # gray levels (0..255): float32 pyramids in two orders of operations


def _noise_clip(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)  # (T,H,W,3)


def _blob_clip(n: int, height: int, width: int, amplitude: float, sigma: float) -> np.ndarray:
    """A grey Gaussian blob moving right by ``amplitude * (1 - cos(2 pi t / n)) / 2`` px: a
    micro-expression-like rise and fall, its peak (the apex) at frame n / 2."""
    t = np.arange(n)
    shift = amplitude * (1 - np.cos(2 * np.pi * t / n)) / 2              # (T,)
    y, x = np.mgrid[:height, :width].astype(np.float64)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    blob = np.exp(-((x[None] - cx - shift[:, None, None]) ** 2 + (y[None] - cy) ** 2)
                  / (2 * sigma**2))                                      # (T, H, W)
    return np.repeat((60 + 120 * blob)[..., None], 3, axis=-1)          # (T, H, W, 3) float64


def _grating_clip(n: int, height: int, width: int, cycles: int, amplitude: float) -> np.ndarray:
    """A grey vertical sinusoid with ``cycles`` periods across the width, moving right like the
    blob; it wraps around exactly, so its Fourier phase measures the displacement."""
    t = np.arange(n)
    shift = amplitude * (1 - np.cos(2 * np.pi * t / n)) / 2              # (T,)
    x = np.arange(width)[None, None, :] - shift[:, None, None]
    grating = 128 + 60 * np.sin(2 * np.pi * cycles * x / width) * np.ones((1, height, 1))
    return np.repeat(grating[..., None], 3, axis=-1)                    # (T, H, W, 3) float64


def _phase_shift(a: np.ndarray, b: np.ndarray, cycles: int) -> float:
    """Displacement (px, rightwards) of a grating from frame ``a`` to ``b``: the change of phase
    of their Fourier coefficient at the grating's frequency (phase correlation at one bin)."""
    width = a.shape[1]
    basis = np.exp(-2j * np.pi * cycles * np.arange(width) / width)      # (W,)
    fa, fb = (np.sum(f.mean(axis=-1) @ basis) for f in (a, b))
    return float(-np.angle(fb / fa) * width / (2 * np.pi * cycles))


def _centroid_x(frame: np.ndarray, background: float = 60.0) -> float:
    weight = frame.mean(axis=-1) - background                            # (H, W)
    return float((weight.sum(axis=0) * np.arange(frame.shape[1])).sum() / weight.sum())


@pytest.mark.parametrize("shape, options", [
    ((64, 140, 120), {}),                                     # the benchmark's clip
    ((12, 37, 53), {"kind": "butterworth"}),                  # odd sizes, causal filter
    ((10, 37, 53), {"levels": 1, "lambda_c": 0.0}),           # a one-level pyramid
    ((9, 5, 3), {"lambda_c": 0.0, "band": (1.0, 100.0)}),     # tiny frames: 3 levels at most
    ((6, 1, 9), {"lambda_c": 0.0, "band": (1.0, 100.0)}),     # one pixel high: 1 level
    ((1, 16, 16), {}),                                        # a single frame
    ((24, 30, 30), {"alpha": 20.0, "chroma_attenuation": 1.0, "lambda_c": 4.0}),
])
def test_vectorised_matches_reference(shape, options):
    clip = _noise_clip(shape, seed=sum(shape))
    options = {"alpha": 3.0, **options}
    alpha = options.pop("alpha")
    ours = evm(clip, FPS, alpha, **options)
    ref = evm_reference(clip, FPS, alpha, **options)
    assert ours.shape == ref.shape == clip.shape and ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= TOL
    if shape[0] > 1 and shape[0] != 10:   # every case but one frame changes the clip
        assert np.abs(ours - clip).max() > 1.0


SIZES = [(140, 120), (37, 53), (64, 64), (45, 31)]   # only 64x64 divides by 2^levels


@pytest.mark.parametrize("height, width", SIZES)
@pytest.mark.parametrize("levels, lambda_c", [(6, 0.0), (1, 0.0), (6, 16.0)])
def test_motion_grows_with_alpha_for_any_size(height, width, levels, lambda_c):
    """A public port returned the unmagnified clip when the size was not divisible by 2^levels:
    here a coarse grating's onset-to-apex displacement must grow with alpha for every size."""
    n, amplitude, apex = 32, 0.5, 16
    cycles = max(1, round(width / 24))                                   # wavelength ~24 px
    clip = _grating_clip(n, height, width, cycles, amplitude)
    shifts = [_phase_shift(clip[0], evm(clip, FPS, alpha, levels=levels, lambda_c=lambda_c)[apex],
                           cycles) for alpha in (0.0, 2.0, 5.0)]
    assert shifts[0] == pytest.approx(amplitude, abs=0.01)               # alpha 0: the clip itself
    assert shifts[1] > 1.4 * shifts[0] and shifts[2] > 1.4 * shifts[1], shifts
    if lambda_c == 0.0:
        # the ideal band keeps the raised cosine's swing about its mean (half the peak), so the
        # apex moves by amplitude * (1 + alpha / 2) while the motion is small against the wavelength
        assert shifts[1] == pytest.approx(amplitude * 2.0, rel=0.05)
        assert shifts[2] == pytest.approx(amplitude * 3.5, rel=0.1)


@pytest.mark.parametrize("height, width", SIZES)
def test_blob_centroid_moves_by_one_plus_half_alpha(height, width):
    """A moving Gaussian blob (a feature of a face): its centroid, linear in the intensities, moves
    by exactly amplitude * (1 + alpha / 2) at the apex with the default parameters."""
    n, amplitude, apex = 32, 0.5, 16
    clip = _blob_clip(n, height, width, amplitude, sigma=min(height, width) / 8)
    assert _centroid_x(clip[apex]) - _centroid_x(clip[0]) == pytest.approx(amplitude, rel=0.01)
    for alpha in (2.0, 5.0, 10.0):
        out = evm(clip, FPS, alpha)
        moved = _centroid_x(out[apex]) - _centroid_x(clip[0])
        assert moved == pytest.approx(amplitude * (1 + alpha / 2), rel=0.02), alpha


def test_cutoff_spares_fine_detail():
    """lambda_c = 16 px: a 6 px grating is barely magnified, a 24 px one is (eq. 14's purpose)."""
    def gain(wavelength: int, lambda_c: float) -> float:
        cycles = 120 // wavelength
        clip = _grating_clip(32, 40, 120, cycles, 0.5)
        return _phase_shift(clip[0], evm(clip, FPS, 5.0, lambda_c=lambda_c)[16], cycles) / 0.5
    assert gain(6, 16.0) < 1.35
    assert gain(24, 16.0) > 2.0
    assert gain(6, 0.0) > 2.0


def test_level_alphas_follow_the_cutoff():
    # lambda_l = 3 * 2^l px; alpha_l = clip((1 + alpha) * lambda_l / lambda_c - 1, 0, alpha)
    np.testing.assert_allclose(level_alphas(3.0, 16.0, 6), [0.0, 0.5, 2.0, 3.0, 3.0, 3.0])
    np.testing.assert_allclose(level_alphas(10.0, 0.0, 3), [10.0, 10.0, 10.0])
    assert not level_alphas(5.0, 1e6, 6).any()
    clip = _noise_clip((8, 20, 20), seed=3)
    np.testing.assert_array_equal(evm(clip, FPS, 5.0, lambda_c=1e6), clip)  # all cut off


def test_pyramid_depth_stops_at_one_pixel():
    assert pyramid_depth(224, 224, 6) == 6
    assert pyramid_depth(37, 53, 6) == 6          # 37x53 .. 2x2
    assert pyramid_depth(5, 3, 6) == 3            # 5x3, 3x2, 2x1
    assert pyramid_depth(1, 9, 6) == 1
    assert pyramid_depth(224, 224, 1) == 1


def test_chroma_attenuation_zero_leaves_colour_alone():
    clip = _noise_clip((16, 24, 20), seed=4).astype(np.float32)
    out = evm(clip, FPS, 4.0, lambda_c=0.0, chroma_attenuation=0.0, band=(1.0, 100.0))
    yiq_in, yiq_out = clip @ _RGB2YIQ.T, out @ _RGB2YIQ.T
    np.testing.assert_allclose(yiq_out[..., 1:], yiq_in[..., 1:], atol=TOL)
    assert np.abs(yiq_out[..., 0] - yiq_in[..., 0]).max() > 10          # luminance magnified
    grey = np.repeat(clip[..., :1], 3, axis=-1)
    out = evm(grey, FPS, 4.0, band=(1.0, 100.0))
    np.testing.assert_allclose(out[..., 0], out[..., 2], atol=TOL)      # grey stays grey


@pytest.mark.parametrize("n", [2, 17, 64])
def test_temporal_filters(n):
    ones = np.ones(n)
    ideal = temporal_matrix(n, FPS, 0.5, 15.0, "ideal").astype(np.float64)
    np.testing.assert_allclose(ideal @ ones, 0, atol=1e-6)              # the static face is removed
    np.testing.assert_allclose(ideal, ideal.T, atol=1e-6)               # zero phase
    np.testing.assert_allclose(ideal @ ideal, ideal, atol=1e-5)         # a projection
    butter = temporal_matrix(n, FPS, 0.5, 15.0, "butterworth").astype(np.float64)
    np.testing.assert_allclose(butter @ ones, 0, atol=1e-6)             # starts at rest
    np.testing.assert_array_equal(np.triu(butter, 1), 0)                # causal
    sine = np.sin(2 * np.pi * 4.0 * np.arange(400) / FPS)                # 4 Hz: in band
    assert np.abs(temporal_matrix(400, FPS, 0.5, 15.0, "ideal") @ sine - sine).max() < 1e-3
    fast = np.sin(2 * np.pi * 50.0 * np.arange(400) / FPS)               # 50 Hz: out of band
    assert np.abs(temporal_matrix(400, FPS, 0.5, 15.0, "ideal") @ fast).max() < 1e-3


def test_butterworth_keeps_the_onset():
    clip = _blob_clip(20, 40, 40, 0.5, 5.0)
    out = evm(clip, FPS, 5.0, kind="butterworth", lambda_c=0.0)
    np.testing.assert_allclose(out[0], clip[0], atol=TOL)
    assert np.abs(out[10] - clip[10]).max() > 1.0


def test_bad_input_is_one_clear_error():
    clip = _noise_clip((8, 16, 16), seed=5)
    with pytest.raises(MerError, match="evm_band"):
        evm(clip, FPS, 3.0, band=(5.0, 2.0))
    with pytest.raises(MerError, match="Nyquist"):
        evm(clip, 25.0, 3.0, band=(13.0, 20.0))
    with pytest.raises(MerError, match="unknown EVM temporal filter"):
        evm(clip, FPS, 3.0, kind="gaussian")
    with pytest.raises(MerError, match=r"\(T, H, W, 3\)"):
        evm(clip[..., 0], FPS, 3.0)
