"""Golden tests for TIM (mer.temporal.tim): the closed form against the original graph-embedding
formulation, its defining properties, dtype handling and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mer.errors import MerError
from mer.temporal.tim import tim, tim_matrix, tim_positions, tim_reference

GOLDEN_TOL = 1e-6  # gray levels


def _clip(n: int, seed: int, shape=(9, 7)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n,) + shape)        # (n, H, W) float64


@pytest.mark.parametrize("n, m", [(10, 16), (5, 64), (40, 16), (100, 64), (16, 16), (2, 5),
                                  (3, 2), (7, 7), (33, 17)])
def test_closed_form_equals_graph_embedding(n, m):
    frames = _clip(n, seed=n * 100 + m)
    ours, ref = tim(frames, m), tim_reference(frames, m)
    assert ours.shape == ref.shape == (m,) + frames.shape[1:] and ours.dtype == np.float64
    assert np.abs(ours - ref).max() <= GOLDEN_TOL
    direct = np.einsum("mn,n...->m...", tim_matrix(n, m), frames)       # the matrix itself
    assert np.abs(ours - direct).max() <= GOLDEN_TOL


@pytest.mark.parametrize("n, m, copies", [
    (12, 20, {3: 2, 7: 2, 8: 9}),            # a few duplicated frames
    (20, 16, {i: 0 for i in range(1, 10)}),  # half the clip frozen on its first frame
    (9, 30, {i: i % 2 for i in range(9)}),   # only two distinct frames, alternating (rank 1)
])
def test_rank_deficient_clips(n, m, copies):
    frames = _clip(n, seed=m)
    for dst, src in copies.items():
        frames[dst] = frames[src]
    centred = (frames - frames.mean(axis=0)).reshape(n, -1)
    assert np.linalg.matrix_rank(centred) < n - 1            # the fit really is rank deficient
    assert np.abs(tim(frames, m) - tim_reference(frames, m)).max() <= GOLDEN_TOL


def test_more_pixels_than_frames_and_fewer():
    """PCA works in both regimes (D >> n as for images, and D < n)."""
    for shape in [(1,), (3,), (64, 48)]:
        frames = _clip(30, seed=len(shape), shape=shape)
        assert np.abs(tim(frames, 16) - tim_reference(frames, 16)).max() <= GOLDEN_TOL


@pytest.mark.parametrize("n, m", [(10, 16), (40, 16), (17, 64)])
def test_first_and_last_frames_reproduced(n, m):
    frames = _clip(n, seed=1)
    out = tim(frames, m)
    np.testing.assert_allclose(out[0], frames[0], atol=1e-9)
    np.testing.assert_allclose(out[-1], frames[-1], atol=1e-9)
    u8 = np.random.default_rng(2).integers(0, 256, (n, 12, 10), dtype=np.uint8)
    out8 = tim(u8, m)
    np.testing.assert_array_equal(out8[0], u8[0])
    np.testing.assert_array_equal(out8[-1], u8[-1])


def test_same_length_is_identity():
    u8 = np.random.default_rng(3).integers(0, 256, (23, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tim(u8, 23), u8)
    np.testing.assert_allclose(tim_matrix(23, 23), np.eye(23), atol=1e-12)


def test_embedding_curves_are_interpolated_exactly():
    """A clip that *is* one of the Laplacian eigen-curves comes back as that curve at the new
    positions, y_k(s) = sin(pi*k*s + pi*(n-k)/(2n)): an analytic check, independent of the
    reference."""
    n, m = 12, 29
    t, s = np.arange(1, n + 1) / n, tim_positions(n, m)
    assert s[0] == 1 / n and s[-1] == 1 and np.allclose(np.diff(s), (1 - 1 / n) / (m - 1))
    for k in (1, 4, n - 1):
        curve = lambda x: np.sin(np.pi * k * x + np.pi * (n - k) / (2 * n))  # noqa: E731
        frames = np.stack([curve(t), 3 + 2 * curve(t)], axis=1)             # (n, 2)
        expected = np.stack([curve(s), 3 + 2 * curve(s)], axis=1)           # (m, 2)
        np.testing.assert_allclose(tim(frames, m), expected, atol=1e-12)


def test_one_frame_and_constant_clips():
    one = np.random.default_rng(4).integers(0, 256, (1, 6, 5), dtype=np.uint8)
    out = tim(one, 16)
    assert out.shape == (16, 6, 5)
    assert (out == one[0]).all() and (tim_reference(one, 16) == one[0]).all()
    const = np.full((30, 4, 4), 77, dtype=np.uint8)
    assert (tim(const, 16) == 77).all() and (tim_reference(const, 16) == 77).all()
    np.testing.assert_allclose(tim_matrix(30, 16).sum(axis=1), 1, atol=1e-12)


def test_matrix_is_cached_read_only_and_time_symmetric():
    mat = tim_matrix(25, 16)
    assert mat is tim_matrix(25, 16) and mat.shape == (16, 25) and not mat.flags.writeable
    np.testing.assert_allclose(mat[::-1, ::-1], mat, atol=1e-13)


def test_uint8_rounding_clipping_and_dtypes():
    rng = np.random.default_rng(5)
    u8 = rng.integers(0, 256, (30, 20, 20), dtype=np.uint8)
    u8[::2, :5] = 255                                        # overshoot above 255 near edges
    u8[1::2, :5] = 0
    exact = np.einsum("mn,n...->m...", tim_matrix(30, 16), u8.astype(np.float64))
    assert exact.max() > 255.5 and exact.min() < -0.5        # the sinusoids do overshoot
    out = tim(u8, 16)
    assert out.dtype == np.uint8
    expected = np.floor(np.clip(exact, 0, 255) + 0.5)        # documented: clip, round half up
    assert np.abs(out - expected).max() <= 1                 # float32 work: off by one at .5
    assert np.mean(out == expected) > 0.999
    np.testing.assert_array_equal(tim_reference(u8, 16), expected.astype(np.uint8))
    i16 = rng.integers(-300, 300, (10, 5, 5)).astype(np.int16)
    exact16 = np.einsum("mn,n...->m...", tim_matrix(10, 7), i16.astype(np.float64))
    np.testing.assert_array_equal(tim(i16, 7), np.floor(exact16 + 0.5).astype(np.int16))
    for dtype in (np.float32, np.float16):
        frames = rng.uniform(0, 1, (11, 3, 4)).astype(dtype)
        out = tim(frames, 6)
        assert out.dtype == dtype
        np.testing.assert_allclose(out, tim_reference(frames.astype(np.float64), 6),
                                   atol=1e-5 if dtype == np.float32 else 2e-3)


def test_non_contiguous_and_big_endian_input():
    frames = _clip(15, seed=6, shape=(10, 12))
    view = frames[:, ::2, 1:]
    np.testing.assert_allclose(tim(view, 8), tim_reference(np.ascontiguousarray(view), 8),
                               atol=GOLDEN_TOL)
    np.testing.assert_allclose(tim(frames.astype(">f8"), 8), tim(frames, 8), atol=0)


@pytest.mark.parametrize("frames, m, match", [
    (np.zeros((5, 4)), 1, "at least 2"),
    (np.zeros((5, 4)), 0, "at least 2"),
    (np.zeros((5, 4)), 2.5, "at least 2"),
    (np.zeros((5, 4)), "16", "at least 2"),
    (np.zeros((0, 4)), 8, "at least one frame"),
    (np.zeros((5, 4), dtype=bool), 8, "dtype"),
    ([[1, 2], [3, 4]], 8, "at least one frame"),
])
def test_bad_input_raises_one_clear_error(frames, m, match):
    with pytest.raises(MerError, match=match):
        tim(frames, m)
