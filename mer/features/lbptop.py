"""LBP-TOP: local binary patterns on three orthogonal planes (Zhao & Pietikäinen, TPAMI 2007).

A clip (T, H, W) is described by how each voxel compares with 8 neighbours on a circle (an
ellipse when radii differ) in each of the three planes through it: XY (appearance), XT and YT
(horizontal and vertical motion).  Each 8-bit comparison pattern is mapped to one of 59 bins
(the 58 uniform patterns + 1 for all others), histograms are taken per spatial block and plane,
and the blocks of the 1x1, 2x2, 4x4 and 8x8 grids are concatenated: 85 x 3 x 59 = 15,045 values.

Conventions (chosen so that ``skimage.feature.local_binary_pattern(..., method="nri_uniform")``
applied slice by slice is a true cross-check, see :func:`lbp_top_reference`):

* Planes and their (row, column) axes: XY = (y, x), radii (Ry, Rx); XT = (t, x), radii (Rt, Rx);
  YT = (t, y), radii (Rt, Ry).  I.e. XT is the image ``volume[:, y, :]`` and YT is
  ``volume[:, :, x]``, rows running in time.
* Neighbour p = 0..7 sits at row offset ``-R_row*sin(2*pi*p/8)`` and column offset
  ``R_col*cos(2*pi*p/8)``, both rounded to 5 decimals (as skimage does): p = 0 is the next column,
  p = 2 the previous row, counter-clockwise as displayed.  Bit p of the pattern is 2**p.
* Bins follow skimage's ``nri_uniform`` numbering: 0 = all zeros; 1 + (ones-1)*8 + rotation for
  the other uniform patterns; 57 = all ones; 58 = non-uniform (see :data:`UNIFORM_BIN`).
* Only voxels whose whole neighbourhood (all taps of all three planes) lies inside the volume are
  coded: t in [mt, T-mt), y in [my, H-my), x in [mx, W-mx), where m is the radius rounded up
  (1 for the default radii).  No padding is ever read.

Frozen sampling arithmetic (pinned by the golden tests; change it and they fail):
an offset o splits into ``floor(o)`` and an integer fraction ``F = round((o - floor(o)) * 1e5)``
(exact, since offsets have 5 decimals).  A neighbour at (row, column) offsets with fractions
(Fr, Fc) reads the taps 00 = (r0, c0), 01 = (r0, c1), 10 = (r1, c0), 11 = (r1, c1), r0 = floor of
the row offset, r1 = r0 + 1 when Fr > 0 else r0 (c1 likewise), with the bilinear weights scaled by
1e10 to integers: w00 = (1e5-Fr)(1e5-Fc), w01 = (1e5-Fr)Fc, w10 = Fr(1e5-Fc), w11 = Fr*Fc.  With
d = tap value - centre value, the bit is

    V = w00*d00 + w01*d01 + w10*d10 + w11*d11 >= 0        (float64, summed left to right)

so a neighbour equal to the centre counts as 1.  Terms of weight 0 and taps on the centre itself
are exact zeros and are skipped; a neighbour left with one tap is compared directly (tap >= centre,
the same sign).  For integer volumes with |d| <= 65535 (8- and 16-bit images) every term and
partial sum is an integer below 2**53, so V is exact: the bit is the sign of the exact
interpolated difference and ties are exact, on any machine.  skimage interpolates absolute values
with per-pixel float fractions, so at an exact tie other than "all taps equal the centre" its
rounding may give 0 where this gives 1; everywhere else the two agree bit for bit.

Feature layout: grids in the order given; within a grid, blocks row-major (top row first, left to
right); within a block, planes XY, XT, YT; within a plane the 59 bins.  Block (i, j) of a g x g
grid holds the coded voxels with ``y*g // H == i`` and ``x*g // W == j`` (blocks tile the frame,
so they nest across grids; edge blocks lose the uncoded margin).  Time is not split.  Each
(block, plane) histogram is divided by its count (sums to 1).
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache, reduce
from typing import Sequence

import numpy as np
from numba import njit

from mer.errors import MerError

__all__ = ["P", "N_BINS", "PLANES", "UNIFORM_BIN", "feature_length", "lbp_top", "lbp_top_codes",
           "lbp_top_reference", "lbp_top_codes_reference"]

P = 8                          # neighbours per plane
N_BINS = P * (P - 1) + 3       # 59: 58 uniform patterns + 1 non-uniform
PLANES = ("XY", "XT", "YT")
_SCALE = 100_000               # offsets carry 5 decimals: fractions are integers in these units
# (row axis, column axis) of each plane, as volume axes (t=0, y=1, x=2)
_PLANE_AXES = ((1, 2), (0, 2), (0, 1))


def _uniform_bins() -> np.ndarray:
    """Bin of every 8-bit pattern under skimage's ``nri_uniform`` numbering. (256,) uint8

    A pattern is uniform when its bits change at most twice going round the circle; a uniform
    pattern with k ones (0 < k < 8) is identified by k and by how far its run of ones is rotated
    from the start: bin = 1 + (k-1)*8 + rotation, rotation = (8 - start of the run) mod 8.
    """
    bins = np.empty(2 ** P, dtype=np.uint8)
    for pattern in range(2 ** P):
        bits = [(pattern >> i) & 1 for i in range(P)]
        ones = sum(bits)
        changes = sum(bits[i] != bits[(i + 1) % P] for i in range(P))
        if changes > 2:
            bins[pattern] = N_BINS - 1
        elif ones == 0:
            bins[pattern] = 0
        elif ones == P:
            bins[pattern] = N_BINS - 2
        else:
            start = next(i for i in range(P) if bits[i] and not bits[i - 1])  # run of ones begins
            bins[pattern] = 1 + (ones - 1) * P + (P - start) % P
    bins.setflags(write=False)
    return bins


UNIFORM_BIN = _uniform_bins()


def feature_length(grids: Sequence[int] = (1, 2, 4, 8)) -> int:
    """Length of the LBP-TOP feature for ``grids``: sum(g*g) * 3 planes * 59 bins."""
    return sum(int(g) ** 2 for g in grids) * len(PLANES) * N_BINS


# --------------------------------------------------------------------------- sampling geometry
def _offsets(r_row: float, r_col: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column offsets of the 8 neighbours, rounded to 5 decimals like skimage. (8,), (8,)"""
    angle = 2 * np.pi * np.arange(P, dtype=np.float64) / P
    return np.round(-r_row * np.sin(angle), 5), np.round(r_col * np.cos(angle), 5)


def _split(offset: float) -> tuple[int, int]:
    """Integer part and fraction (in 1e-5 units) of a 5-decimal offset."""
    base = math.floor(offset)
    return base, int(round((offset - base) * _SCALE))


def _check_radii(radii: Sequence[float]) -> tuple[float, float, float]:
    try:
        rx, ry, rt = (float(r) for r in radii)
    except (TypeError, ValueError):
        raise MerError(f"LBP-TOP radii must be three numbers (Rx, Ry, Rt), got {radii!r}",
                       fix="set lbptop.radii to e.g. [1, 1, 1]") from None
    if not all(math.isfinite(r) and r > 0 for r in (rx, ry, rt)):
        raise MerError(f"LBP-TOP radii must be positive, got {radii!r}",
                       fix="set lbptop.radii to positive numbers, e.g. [1, 1, 1]")
    return rx, ry, rt


@lru_cache(maxsize=16)
def _geometry(radii: tuple[float, float, float]):
    """Per plane and neighbour: tap displacements (t, y, x), fractions, and the coding margins."""
    rx, ry, rt = radii
    by_axis = {0: rt, 1: ry, 2: rx}
    taps = np.zeros((3, P, 4, 3), dtype=np.int64)   # plane, neighbour, tap 00/01/10/11, (t, y, x)
    fracs = np.zeros((3, P, 2), dtype=np.int64)     # plane, neighbour, (Fr, Fc)
    for plane, (row_axis, col_axis) in enumerate(_PLANE_AXES):
        rows, cols = _offsets(by_axis[row_axis], by_axis[col_axis])
        for p in range(P):
            r0, fr = _split(rows[p])
            c0, fc = _split(cols[p])
            r1, c1 = r0 + (fr > 0), c0 + (fc > 0)
            for k, (r, c) in enumerate(((r0, c0), (r0, c1), (r1, c0), (r1, c1))):
                taps[plane, p, k, row_axis] = r
                taps[plane, p, k, col_axis] = c
            fracs[plane, p] = fr, fc
    margins = tuple(int(np.abs(taps[..., a]).max()) for a in range(3))   # (mt, my, mx)
    return taps, fracs, margins


def _check_volume(volume: np.ndarray, margins: tuple[int, int, int]) -> np.ndarray:
    """The volume as contiguous float64, or one MerError saying what is wrong with it."""
    if not isinstance(volume, np.ndarray) or volume.ndim != 3:
        shape = getattr(volume, "shape", None)
        raise MerError(f"LBP-TOP needs a (T, H, W) gray volume, got shape {shape}",
                       fix="convert frames to gray and stack them along axis 0")
    if not (np.issubdtype(volume.dtype, np.integer) or np.issubdtype(volume.dtype, np.floating)):
        raise MerError(f"LBP-TOP got a volume of dtype {volume.dtype}",
                       fix="pass integer (e.g. uint8) or floating-point gray levels")
    need = tuple(2 * m + 1 for m in margins)
    if any(s < n for s, n in zip(volume.shape, need)):
        raise MerError(f"volume of shape {volume.shape} is too small for these radii: it needs at "
                       f"least {need} (T, H, W) so that some voxel has its whole neighbourhood "
                       "inside",
                       fix="use more frames / larger frames, or smaller radii")
    vol = np.ascontiguousarray(volume, dtype=np.float64)          # (T, H, W) float64
    if np.issubdtype(volume.dtype, np.floating) and not np.isfinite(vol).all():
        raise MerError("volume contains NaN or infinite values", fix="clean the frames first")
    return vol


def _check_grids(grids: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(int(g) for g in grids)
        ok = len(out) > 0 and all(g >= 1 and g == gg for g, gg in zip(out, grids))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise MerError(f"LBP-TOP grids must be positive integers, got {grids!r}",
                       fix="set lbptop.grids to e.g. [1, 2, 4, 8]")
    return out


# --------------------------------------------------------------------------- compiled kernels
@njit(cache=True)
def _patterns(flat, raw, base, length, n_taps, steps, weights, pat):  # pragma: no cover
    """8-bit patterns of one plane at ``length`` consecutive flat positions from ``base``.

    Per neighbour p: ``n_taps[p]`` taps at flat displacements ``steps[p, :n]`` with integer
    weights ``weights[p, :n]`` (taps of weight 0 and taps on the centre dropped: their terms are
    exact zeros).  A neighbour left with one tap (positive weight) is a plain comparison, done on
    the raw dtype.
    Positions in the uncoded border columns are computed too (cheaper than skipping) and ignored.
    """
    centre = flat[base:base + length]
    raw_centre = raw[base:base + length]
    for k in range(length):
        pat[k] = 0
    zero = np.uint8(0)
    for p in range(P):
        bit = np.uint8(1 << p)
        n = n_taps[p]
        if n == 0:  # the neighbour rounds onto the centre: always a tie
            for k in range(length):
                pat[k] = pat[k] | bit
        elif n == 1:  # on the grid: V = 1e10 * d, same sign as the raw comparison
            a = raw[base + steps[p, 0]:base + steps[p, 0] + length]
            for k in range(length):
                pat[k] = pat[k] | (bit if a[k] >= raw_centre[k] else zero)
        elif n == 2:
            a = flat[base + steps[p, 0]:base + steps[p, 0] + length]
            b = flat[base + steps[p, 1]:base + steps[p, 1] + length]
            wa, wb = weights[p, 0], weights[p, 1]
            for k in range(length):
                z = centre[k]
                v = wa * (a[k] - z) + wb * (b[k] - z)
                pat[k] = pat[k] | (bit if v >= 0.0 else zero)
        elif n == 3:
            a = flat[base + steps[p, 0]:base + steps[p, 0] + length]
            b = flat[base + steps[p, 1]:base + steps[p, 1] + length]
            c = flat[base + steps[p, 2]:base + steps[p, 2] + length]
            wa, wb, wc = weights[p, 0], weights[p, 1], weights[p, 2]
            for k in range(length):
                z = centre[k]
                v = wa * (a[k] - z) + wb * (b[k] - z) + wc * (c[k] - z)
                pat[k] = pat[k] | (bit if v >= 0.0 else zero)
        else:
            a = flat[base + steps[p, 0]:base + steps[p, 0] + length]
            b = flat[base + steps[p, 1]:base + steps[p, 1] + length]
            c = flat[base + steps[p, 2]:base + steps[p, 2] + length]
            d = flat[base + steps[p, 3]:base + steps[p, 3] + length]
            wa, wb, wc, wd = weights[p, 0], weights[p, 1], weights[p, 2], weights[p, 3]
            for k in range(length):
                z = centre[k]
                v = wa * (a[k] - z) + wb * (b[k] - z) + wc * (c[k] - z) + wd * (d[k] - z)
                pat[k] = pat[k] | (bit if v >= 0.0 else zero)


@njit(cache=True)
def _histograms(flat, raw, shape, margins, n_taps, steps, weights, x_edges, cell_y, lut,
                hist):  # pragma: no cover - compiled
    """Count every coded voxel's bin: hist[plane, cell_y[y], cell_x, lut[pattern]].

    x_edges: (G+1,) first coded column of each finest-grid cell, then the end of the last.
    """
    n_t, n_y, n_x = shape[0], shape[1], shape[2]
    mt, my = margins[0], margins[1]
    length = (n_y - 2 * my) * n_x                      # the coded rows of one frame, full width
    pat = np.empty(length, dtype=np.uint8)
    n_cells = x_edges.shape[0] - 1
    for t in range(mt, n_t - mt):
        base = (t * n_y + my) * n_x
        for plane in range(3):
            _patterns(flat, raw, base, length, n_taps[plane], steps[plane], weights[plane], pat)
            for y in range(my, n_y - my):
                row = pat[(y - my) * n_x:(y - my + 1) * n_x]
                hy = hist[plane, cell_y[y]]
                for j in range(n_cells):
                    h = hy[j]
                    for x in range(x_edges[j], x_edges[j + 1]):
                        h[lut[row[x]]] += 1


@njit(cache=True)
def _code_maps(flat, raw, shape, margins, n_taps, steps, weights, out):  # pragma: no cover
    """8-bit pattern of every coded voxel: out[plane, t - mt, y - my, x - mx]."""
    n_t, n_y, n_x = shape[0], shape[1], shape[2]
    mt, my, mx = margins[0], margins[1], margins[2]
    length = (n_y - 2 * my) * n_x
    pat = np.empty(length, dtype=np.uint8)
    for t in range(mt, n_t - mt):
        base = (t * n_y + my) * n_x
        for plane in range(3):
            _patterns(flat, raw, base, length, n_taps[plane], steps[plane], weights[plane], pat)
            for y in range(my, n_y - my):
                for x in range(mx, n_x - mx):
                    out[plane, t - mt, y - my, x - mx] = pat[(y - my) * n_x + x]


@lru_cache(maxsize=16)
def _kernel_taps(radii: tuple[float, float, float], shape: tuple[int, int, int]):
    """Taps as flat-index steps and integer weights, zero-weight and centre taps dropped.

    -> n_taps (3, 8) int64, steps (3, 8, 4) int64, weights (3, 8, 4) float64
    """
    taps, fracs, _ = _geometry(radii)
    _, n_y, n_x = shape
    flat = taps[..., 0] * (n_y * n_x) + taps[..., 1] * n_x + taps[..., 2]      # (3, 8, 4)
    fr, fc = fracs[..., 0:1], fracs[..., 1:2]                                    # (3, 8, 1)
    full = np.concatenate([(_SCALE - fr) * (_SCALE - fc), (_SCALE - fr) * fc,
                           fr * (_SCALE - fc), fr * fc], axis=-1)                # (3, 8, 4) int64
    n_taps = np.zeros((3, P), dtype=np.int64)
    steps = np.zeros((3, P, 4), dtype=np.int64)
    weights = np.zeros((3, P, 4), dtype=np.float64)
    for plane in range(3):
        for p in range(P):
            keep = [k for k in range(4) if full[plane, p, k] != 0 and flat[plane, p, k] != 0]
            n_taps[plane, p] = len(keep)
            steps[plane, p, :len(keep)] = flat[plane, p, keep]
            weights[plane, p, :len(keep)] = full[plane, p, keep]
    return n_taps, steps, weights


# --------------------------------------------------------------------------- public API
def _prepare(volume: np.ndarray, radii: Sequence[float]):
    """Validated float64 volume, the raw-dtype volume for plain comparisons, and kernel taps."""
    radii = _check_radii(radii)
    margins = _geometry(radii)[2]
    if min(margins) == 0:
        raise MerError(f"LBP-TOP radii {radii} are too small: the neighbours round onto the centre",
                       fix="use radii of at least 0.5 (the literature uses 1 to 4)")
    vol = _check_volume(volume, margins)                                  # (T, H, W) float64
    native = volume.dtype.newbyteorder("=")                               # numba: native order only
    raw = vol if native == np.float16 else np.ascontiguousarray(volume, dtype=native)  # no half
    return vol, raw, margins, _kernel_taps(radii, vol.shape)


def lbp_top_codes(volume: np.ndarray, radii: Sequence[float] = (1, 1, 1)) -> np.ndarray:
    """Bin (0..58) of every coded voxel in each plane. (T, H, W) -> (3, T-2mt, H-2my, W-2mx) uint8

    Planes in the order XY, XT, YT; see the module docstring for the coded region and arithmetic.
    """
    vol, raw, margins, (n_taps, steps, weights) = _prepare(volume, radii)
    out = np.empty((3,) + tuple(s - 2 * m for s, m in zip(vol.shape, margins)), dtype=np.uint8)
    _code_maps(vol.ravel(), raw.ravel(), np.array(vol.shape), np.array(margins),
               n_taps, steps, weights, out)
    return UNIFORM_BIN[out]


def _assemble(fine: np.ndarray, grids: tuple[int, ...]) -> np.ndarray:
    """Per-grid block histograms from the finest cells, normalised, in the documented layout.

    fine: (3, G, G, 59) counts on the lcm grid G -> (sum(g*g) * 3 * 59,) float32
    """
    n_cells = fine.shape[1]
    parts = []
    for g in grids:
        k = n_cells // g
        blocks = fine.reshape(3, g, k, g, k, N_BINS).sum(axis=(2, 4))     # (3, g, g, 59)
        blocks = blocks.transpose(1, 2, 0, 3)                             # (g, g, 3, 59)
        totals = blocks.sum(axis=-1, keepdims=True)                       # (g, g, 3, 1)
        if (totals == 0).any():
            raise MerError(f"a block of the {g}x{g} grid contains no coded voxel",
                           fix="use larger frames or coarser grids")
        parts.append((blocks / totals).ravel())
    return np.concatenate(parts).astype(np.float32)


_MAX_CELLS = 32          # finest grid (lcm of the grids) per side; bounds the counting buffer


def lbp_top(volume: np.ndarray, radii: Sequence[float] = (1, 1, 1),
            grids: Sequence[int] = (1, 2, 4, 8)) -> np.ndarray:
    """LBP-TOP block histograms of a gray clip. (T, H, W) uint8/float -> (sum(g*g)*3*59,) float32

    ``radii`` = (Rx, Ry, Rt); any positive values, Rt != Rx sampling an ellipse in XT/YT.
    Layout, coded region and arithmetic: see the module docstring.
    """
    grids = _check_grids(grids)
    vol, raw, (mt, my, mx), (n_taps, steps, weights) = _prepare(volume, radii)
    n_y, n_x = vol.shape[1:]
    n_cells = reduce(math.lcm, grids)
    if n_cells > _MAX_CELLS:
        raise MerError(f"grids {grids} nest only on a {n_cells}x{n_cells} grid (at most "
                       f"{_MAX_CELLS} supported)",
                       fix="use grids whose least common multiple is small, e.g. [1, 2, 4, 8]")
    cell_y = np.arange(n_y, dtype=np.int64) * n_cells // n_y              # (H,) finest row cell
    cell_x = np.arange(mx, n_x - mx, dtype=np.int64) * n_cells // n_x     # coded columns' cells
    x_edges = np.searchsorted(cell_x, np.arange(n_cells + 1)) + mx        # (G+1,) column ranges
    fine = np.zeros((3, n_cells, n_cells, N_BINS), dtype=np.int64)       # (3, G, G, 59)
    _histograms(vol.ravel(), raw.ravel(), np.array(vol.shape), np.array((mt, my, mx)),
                n_taps, steps, weights, x_edges, cell_y, UNIFORM_BIN, fine)
    return _assemble(fine, grids)


# --------------------------------------------------------------------------- reference
def lbp_top_codes_reference(volume: np.ndarray, radii: Sequence[float] = (1, 1, 1)) -> np.ndarray:
    """:func:`lbp_top_codes` computed slice by slice with ``skimage.feature.local_binary_pattern``.

    skimage samples circles only, so Rx == Ry == Rt is required here (elliptic radii work in
    :func:`lbp_top` alone).  Each XY frame, XT slice ``volume[:, y, :]`` and YT slice
    ``volume[:, :, x]`` through a coded voxel is coded whole (skimage pads with zeros) and
    cropped to the coded region, where no padding is involved.
    """
    from skimage.feature import local_binary_pattern

    rx, ry, rt = _check_radii(radii)
    if not rx == ry == rt:
        raise MerError(f"the skimage reference samples circles only, got radii {radii!r}",
                       fix="compare elliptic radii with lbp_top alone")
    _, _, margins = _geometry((rx, ry, rt))
    _check_volume(volume, margins)
    mt, my, mx = margins
    n_t, n_y, n_x = volume.shape
    out = np.empty((3, n_t - 2 * mt, n_y - 2 * my, n_x - 2 * mx), dtype=np.uint8)

    def code(image: np.ndarray, m_row: int, m_col: int) -> np.ndarray:
        with warnings.catch_warnings():  # skimage warns about float images; ours are handled alike
            warnings.simplefilter("ignore", UserWarning)
            lbp = local_binary_pattern(image, P, rx, method="nri_uniform")
        return lbp[m_row:image.shape[0] - m_row, m_col:image.shape[1] - m_col]

    for t in range(mt, n_t - mt):
        out[0, t - mt] = code(volume[t], my, mx)
    for y in range(my, n_y - my):
        out[1, :, y - my, :] = code(volume[:, y, :], mt, mx)
    for x in range(mx, n_x - mx):
        out[2, :, :, x - mx] = code(volume[:, :, x], mt, my)
    return out


def lbp_top_reference(volume: np.ndarray, radii: Sequence[float] = (1, 1, 1),
                      grids: Sequence[int] = (1, 2, 4, 8)) -> np.ndarray:
    """:func:`lbp_top` from skimage's slice-by-slice codes and one histogram per block and plane."""
    grids = _check_grids(grids)
    codes = lbp_top_codes_reference(volume, radii)                        # (3, Tc, Hc, Wc)
    _, _, (mt, my, mx) = _geometry(_check_radii(radii))
    n_y, n_x = volume.shape[1:]
    ys, xs = np.arange(my, n_y - my), np.arange(mx, n_x - mx)             # image coordinates
    parts = []
    for g in grids:
        for i in range(g):
            for j in range(g):
                rows = (ys * g // n_y) == i
                cols = (xs * g // n_x) == j
                for plane in range(3):
                    counts = np.bincount(codes[plane][:, rows][:, :, cols].ravel(),
                                         minlength=N_BINS).astype(np.float64)
                    if counts.sum() == 0:
                        raise MerError(f"a block of the {g}x{g} grid contains no coded voxel",
                                       fix="use larger frames or coarser grids")
                    parts.append(counts / counts.sum())
    return np.concatenate(parts).astype(np.float32)
