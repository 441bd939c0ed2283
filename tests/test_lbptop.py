"""Golden tests for LBP-TOP (mer.features.lbptop): hand-checked codes, skimage cross-checks, an
exact-arithmetic re-implementation for elliptic radii, the feature layout, and frozen values."""

from __future__ import annotations

import hashlib
import math
from fractions import Fraction

import numpy as np
import pytest
from skimage.feature import local_binary_pattern

from mer.errors import MerError
from mer.features.lbptop import (N_BINS, P, UNIFORM_BIN, feature_length, lbp_top, lbp_top_codes,
                                 lbp_top_codes_reference, lbp_top_reference)

PLANE_AXES = {0: (1, 2), 1: (0, 2), 2: (0, 1)}  # XY, XT, YT: (row axis, column axis)


def exact_codes(volume: np.ndarray, radii, with_ties: bool = False):
    """The documented sampling rule, voxel by voxel, in exact rational arithmetic.

    Independent of the module's integer scaling and flat-index kernels: offsets are the exact
    5-decimal numbers, interpolation is exact, the bit is (interpolated >= centre).
    ``with_ties`` also returns where some neighbour ties exactly without all its taps being equal
    to the centre (the only places where float rounding can decide).
    """
    rx, ry, rt = radii
    radius = {0: rt, 1: ry, 2: rx}
    neighbours = {}
    margins = [0, 0, 0]
    for plane, (ra, ca) in PLANE_AXES.items():
        taps = []
        for p in range(P):
            angle = 2 * math.pi * p / P
            off_r = Fraction(repr(float(np.round(-radius[ra] * math.sin(angle), 5))))
            off_c = Fraction(repr(float(np.round(radius[ca] * math.cos(angle), 5))))
            r0, c0 = math.floor(off_r), math.floor(off_c)
            fr, fc = off_r - r0, off_c - c0
            taps.append([(r0, c0, (1 - fr) * (1 - fc)), (r0, c0 + 1, (1 - fr) * fc),
                         (r0 + 1, c0, fr * (1 - fc)), (r0 + 1, c0 + 1, fr * fc)])
            for r, c, w in taps[-1]:
                if w:
                    margins[ra] = max(margins[ra], abs(r))
                    margins[ca] = max(margins[ca], abs(c))
        neighbours[plane] = (ra, ca, taps)
    mt, my, mx = margins
    n_t, n_y, n_x = volume.shape
    out = np.zeros((3, n_t - 2 * mt, n_y - 2 * my, n_x - 2 * mx), dtype=np.uint8)
    ties = np.zeros(out.shape, dtype=bool)
    for plane, (ra, ca, taps) in neighbours.items():
        for t in range(mt, n_t - mt):
            for y in range(my, n_y - my):
                for x in range(mx, n_x - mx):
                    centre = Fraction(float(volume[t, y, x]))
                    pattern, tied = 0, False
                    for p, ws in enumerate(taps):
                        value, read = Fraction(0), []
                        for r, c, w in ws:
                            if w:
                                pos = [t, y, x]
                                pos[ra] += r
                                pos[ca] += c
                                read.append(Fraction(float(volume[tuple(pos)])))
                                value += w * read[-1]
                        pattern |= (value >= centre) << p
                        tied |= value == centre and any(v != centre for v in read)
                    out[plane, t - mt, y - my, x - mx] = UNIFORM_BIN[pattern]
                    ties[plane, t - mt, y - my, x - mx] = tied
    return (out, ties) if with_ties else out


# --------------------------------------------------------------------------- the 59-bin mapping
def test_uniform_bins_match_skimage_numbering():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (96, 96), dtype=np.uint8)
    raw = local_binary_pattern(image, P, 1, method="default").astype(int)
    nri = local_binary_pattern(image, P, 1, method="nri_uniform").astype(int)
    assert len(np.unique(raw)) > 240                     # nearly every pattern is exercised
    np.testing.assert_array_equal(UNIFORM_BIN[raw], nri)
    counts = np.bincount(UNIFORM_BIN, minlength=N_BINS)
    assert N_BINS == 59 and counts[58] == 256 - 58 and (counts[:58] == 1).all()
    assert UNIFORM_BIN[0] == 0 and UNIFORM_BIN[255] == 57


# --------------------------------------------------------------------------- hand-checked volume
# One coded voxel (centre 50).  Expected patterns, derived by hand from the documented rule with
# weights 70711*29289 etc. (fractions 0.29289 / 0.70711 of the diagonal neighbours):
#  XY (t=1 frame):  p0 right 50 tie -> 1; p1 (b=+1, c=0, e=0) -> 1; p2 up 51 -> 1;
#                   p3: 70711^2*0 + 70711*29289*(+1 - 1) = 0, an exact tie -> 1; p4 left 49 -> 0;
#                   p5: 70711*(29289*(-1) + 70711*0 + 29289*(-1)) < 0 -> 0 although its nearest
#                   tap equals the centre; p6 down 49 -> 0; p7: 70711*29289*(-1) + 70711^2*0 -> 0.
#                   Pattern 0b00001111: 4 ones starting at p0 -> bin 1 + 3*8 + 0 = 25.
#  XT (y=1 slice, rows t): p0 1 (tie), p1 (B=-1, C=+1): 70711*(-29289 + 70711) > 0 -> 1,
#                   p2 0, p3 (A=0, B=-1, d=-1) -> 0, p4 0, p5 (d=-1, F=0, G=0) -> 0, p6 tie -> 1,
#                   p7 all taps 50 -> 1.  Pattern 0b11000011: run of 4 from p6 -> 1 + 24 + 2 = 27.
#  YT (x=1 slice, rows t): p0 49 -> 0, p1 -> 0, p2 49 -> 0, p3 exact tie (-1 + 1) -> 1, p4 51 -> 1,
#                   p5 (+1, 0, 0) -> 1, p6 tie -> 1, p7 (-1, 0, 0) -> 0.
#                   Pattern 0b01111000: run of 4 from p3 -> 1 + 24 + 5 = 30.
# The corners set to 0 are never read.
HAND = np.array([[[0, 50, 0], [50, 49, 51], [0, 50, 0]],
                 [[50, 51, 50], [49, 50, 50], [50, 49, 50]],
                 [[0, 50, 0], [50, 50, 50], [0, 50, 0]]], dtype=np.uint8)


def test_hand_checkable_volume_exact_codes():
    codes = lbp_top_codes(HAND)
    assert codes.shape == (3, 1, 1, 1)
    assert codes.ravel().tolist() == [25, 27, 30]
    np.testing.assert_array_equal(exact_codes(HAND, (1, 1, 1)), codes)
    feature = lbp_top(HAND, grids=(1,))
    expected = np.zeros(3 * N_BINS, dtype=np.float32)
    expected[[25, N_BINS + 27, 2 * N_BINS + 30]] = 1
    np.testing.assert_array_equal(feature, expected)
    # the 8 cube corners lie on no plane through the centre: changing them changes nothing
    other = HAND.copy()
    other[::2, ::2, ::2] = 255
    np.testing.assert_array_equal(lbp_top_codes(other), codes)


def test_constant_volume_is_all_ties():
    codes = lbp_top_codes(np.full((5, 9, 9), 77, dtype=np.uint8), radii=(2, 2, 2))
    assert (codes == 57).all()


# --------------------------------------------------------------------------- skimage cross-check
@pytest.mark.parametrize("radius", [1, 2, 3])
def test_codes_equal_skimage_slice_by_slice(radius):
    vol = np.random.default_rng(radius).integers(0, 256, (9, 23, 27), dtype=np.uint8)
    ours = lbp_top_codes(vol, (radius,) * 3)
    m = radius
    assert ours.shape == (3, 9 - 2 * m, 23 - 2 * m, 27 - 2 * m)
    np.testing.assert_array_equal(ours, lbp_top_codes_reference(vol, (radius,) * 3))


def test_feature_equals_skimage_reference_on_default_clip():
    vol = np.random.default_rng(11).integers(0, 256, (16, 112, 112), dtype=np.uint8)
    ours = lbp_top(vol)
    ref = lbp_top_reference(vol)
    assert ours.shape == ref.shape == (15045,) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-7)


def test_float_volume_matches_skimage_and_exact_rule():
    vol = np.random.default_rng(5).uniform(0, 255, (6, 13, 15))
    ours = lbp_top_codes(vol)
    np.testing.assert_array_equal(ours, lbp_top_codes_reference(vol))
    np.testing.assert_array_equal(ours, exact_codes(vol, (1, 1, 1)))


def test_disagreements_with_skimage_are_exact_ties_only():
    """Low contrast makes exact ties common; skimage's float rounding then decides, ours says 1."""
    vol = np.random.default_rng(8).integers(0, 4, (9, 20, 20), dtype=np.uint8)
    ours = lbp_top_codes(vol, (2, 2, 2))
    exact, ties = exact_codes(vol, (2, 2, 2), with_ties=True)
    np.testing.assert_array_equal(ours, exact)
    differ = ours != lbp_top_codes_reference(vol, (2, 2, 2))
    assert 0 < differ.sum() < 0.01 * differ.size        # rare, but present at this contrast
    assert not (differ & ~ties).any()                   # and only where an exact tie sits


# --------------------------------------------------------------------------- elliptic radii
@pytest.mark.parametrize("radii", [(1, 1, 2), (2, 1, 1), (1, 2, 3), (1.5, 1, 2.5)])
def test_elliptic_radii_follow_the_exact_rule(radii):
    vol = np.random.default_rng(int(sum(radii) * 10)).integers(0, 256, (8, 10, 11), dtype=np.uint8)
    np.testing.assert_array_equal(lbp_top_codes(vol, radii), exact_codes(vol, radii))


def test_reference_refuses_elliptic_radii():
    vol = np.zeros((7, 9, 9), dtype=np.uint8)
    with pytest.raises(MerError, match="circles only"):
        lbp_top_reference(vol, (1, 1, 2))
    assert lbp_top(vol, (1, 1, 2), grids=(1, 2)).shape == (feature_length((1, 2)),)


def test_swapping_x_and_y_swaps_xt_and_yt():
    vol = np.random.default_rng(2).integers(0, 256, (10, 20, 20), dtype=np.uint8)
    a = lbp_top(vol, (1, 2, 1), grids=(1,)).reshape(3, N_BINS)
    b = lbp_top(vol.transpose(0, 2, 1), (2, 1, 1), grids=(1,)).reshape(3, N_BINS)
    np.testing.assert_array_equal(a[1], b[2])
    np.testing.assert_array_equal(a[2], b[1])


# --------------------------------------------------------------------------- layout
def test_plane_order_on_a_brightening_clip():
    """Frames brighten uniformly: XY sees all ties (bin 57); XT and YT see 'later is brighter':
    bits p0, p4 (same time, ties), p5, p6, p7 (later) set -> run of 5 from p4 -> bin 1+32+4 = 37."""
    vol = np.repeat(np.arange(0, 80, 10, dtype=np.uint8), 16 * 16).reshape(8, 16, 16)
    feature = lbp_top(vol, grids=(1, 2)).reshape(-1, 3, N_BINS)
    assert feature.shape == (5, 3, N_BINS)
    assert (feature[:, 0, 57] == 1).all() and (feature[:, 1:, 37] == 1).all()


def test_block_order_is_row_major_and_blocks_tile_the_frame():
    rng = np.random.default_rng(4)
    vol = rng.integers(0, 256, (6, 32, 48), dtype=np.uint8)
    vol[:, 16:, :24] = 90                         # bottom-left quadrant flat: all ties
    blocks = lbp_top(vol, grids=(1, 2, 4)).reshape(-1, 3, N_BINS)
    assert blocks.shape == (1 + 4 + 16, 3, N_BINS)
    np.testing.assert_allclose(blocks.sum(axis=-1), 1, atol=1e-6)
    two = blocks[1:5, 0, 57]                      # 2x2 grid, XY plane, all-ties bin
    assert two[2] > 0.9 and max(two[0], two[1], two[3]) < 0.3   # block (1, 0) is the flat one
    four = blocks[5:, 0, 57].reshape(4, 4)
    assert (four[2:, :2] > 0.85).all() and (four[:2] < 0.3).all() and (four[:, 2:] < 0.3).all()


@pytest.mark.parametrize("grids", [(1, 2, 4, 8), (1, 2, 3)])
def test_uneven_blocks_match_reference(grids):
    """Frame sizes that the grids do not divide, and grids nesting only on their lcm (6)."""
    vol = np.random.default_rng(9).integers(0, 256, (5, 37, 53), dtype=np.uint8)
    np.testing.assert_allclose(lbp_top(vol, grids=grids), lbp_top_reference(vol, grids=grids),
                               rtol=0, atol=1e-7)


def test_feature_length():
    assert feature_length() == 85 * 3 * 59 == 15045
    assert feature_length((1, 3)) == 10 * 3 * 59


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("volume, radii, grids, match", [
    (np.zeros((16, 112), np.uint8), (1, 1, 1), (1,), "gray volume"),
    (np.zeros((2, 112, 112), np.uint8), (1, 1, 1), (1,), "too small"),
    (np.zeros((16, 20, 20), bool), (1, 1, 1), (1,), "dtype"),
    (np.full((4, 9, 9), np.nan), (1, 1, 1), (1,), "NaN"),
    (np.zeros((8, 9, 9), np.uint8), (1, 0, 1), (1,), "positive"),
    (np.zeros((8, 9, 9), np.uint8), (1, 1), (1,), "three numbers"),
    (np.zeros((8, 9, 9), np.uint8), (1, 1, 1), (0,), "grids"),
    (np.zeros((8, 9, 9), np.uint8), (1, 1, 1), (1, 8), "no coded voxel"),
    (np.zeros((8, 99, 99), np.uint8), (1, 1, 1), (5, 7), "least common multiple"),
])
def test_bad_input_raises_one_clear_error(volume, radii, grids, match):
    with pytest.raises(MerError, match=match):
        lbp_top(volume, radii, grids)


# --------------------------------------------------------------------------- frozen values
def _pinned_clip() -> np.ndarray:
    return np.random.default_rng(20240611).integers(0, 256, (16, 112, 112), dtype=np.uint8)


@pytest.mark.parametrize("radii, digest, values", [
    ((1, 1, 1), "7444b44336b3b4879191ae4e2291025634f7f13049eac059d30f84d03d641ef9",
     ((0, 0.17726682126522064), (57, 0.18037189543247223), (58, 0.25139907002449036),
      (7000, 0.00546647235751152), (15044, 0.2438715100288391))),
    ((3, 3, 3), "7e0b0d5ae8b8d82e25f41cafb98ee73f5e9ee2410ceb540a286c4394ff79a0a8",
     ((0, 0.14359202980995178), (58, 0.39910998940467834), (15044, 0.4000000059604645))),
    ((1, 1, 2), "1429f8050d079aa42266d87389fb55196675f47df6027191eec647bfd50f23bf",
     ((0, 0.17742423713207245), (7000, 0.0008503401186317205), (15044, 0.32248520851135254))),
])
def test_golden_pin(radii, digest, values):
    """Any change of arithmetic, mapping or layout changes these bytes: update only on purpose."""
    feature = lbp_top(_pinned_clip(), radii)
    assert hashlib.sha256(feature.tobytes()).hexdigest() == digest
    for index, value in values:
        assert feature[index] == np.float32(value)
