"""Temporal Interpolation Model (TIM): resample a clip of n frames to m frames.

TIM (Zhou, Zhao & Pietikäinen, CVPR 2011; used for micro-expressions by Pfister et al., ICCV 2011)
treats a clip as a curve in pixel space.  Frames are embedded with the path-graph Laplacian of
the n-frame sequence, whose eigenvectors are sampled sinusoids

    y_k(t) = sin(pi*k*t + pi*(n-k)/(2n)),   k = 1..n-1,   t in {1/n, 2/n, ..., 1},

a linear map from frames to the embedding is fitted, and new frames are synthesised by
evaluating the sinusoids at m positions spread evenly from 1/n to 1 and mapping back.  Because
the positions include 1/n and 1, the first and last frames are reproduced.

Why a closed form: the embedding vectors are the DCT-II basis (y_k(t_i) = cos(pi*k*(2i-1)/(2n))),
orthogonal with squared norm n/2 and orthogonal to the constant vector that the centring removes.
Working the PCA + fitted linear map + pseudo-inverse of the original formulation through with that
orthogonality, every data-dependent factor cancels, for any rank of the centred frames (duplicated
frames included), leaving one fixed (m, n) matrix:

    M[j, i] = 1/n + (2/n) * sum_k y_k(s_j) * y_k(t_i)          out = M @ frames

:func:`tim_reference` keeps the original formulation (SVD, numerical eigenvectors, least squares)
so a golden test can pin the two together.

Why the even/odd split in :func:`tim`: time reversal maps the input grid and the output grid onto
themselves, so ``M[m-1-j, n-1-i] == M[j, i]``.  Sums and differences of mirrored frames then need
two half-size products instead of one full one (half the multiply-adds; the classic DCT butterfly),
which is what makes the 100 -> 64 benchmark clear its 50x target.

Edge cases (documented behaviour, not errors): a 1-frame clip is repeated m times; a constant clip
stays constant (M's rows sum to 1); m == n returns the clip itself (M is the identity).  m < 2 is an
error, since no m-point grid can hold both end frames.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from mer.errors import MerError

__all__ = ["tim", "tim_matrix", "tim_reference", "tim_positions"]

# pixels per block: the block's temporaries (~0.3 MB) stay in cache and off the page-fault path
_CHUNK = 512


def _check(frames: np.ndarray, m: int) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim < 1 or frames.shape[0] < 1:
        raise MerError("TIM needs an array of at least one frame, shape (n, ...)",
                       fix="pass the clip's frames stacked along axis 0")
    if not (np.issubdtype(frames.dtype, np.integer) or np.issubdtype(frames.dtype, np.floating)):
        raise MerError(f"TIM got frames of dtype {frames.dtype}",
                       fix="pass integer or floating-point frames")
    try:
        ok = int(m) == m and m >= 2
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise MerError(f"TIM cannot resample to {m!r} frames",
                       fix="ask for an integer number of at least 2 frames "
                           "(the first and last are always kept)")


def tim_positions(n: int, m: int) -> np.ndarray:
    """The m synthesis positions, evenly from 1/n (first frame) to 1 (last frame). (m,) float64"""
    return np.linspace(1.0 / n, 1.0, m)


def _curves(n: int, t: np.ndarray) -> np.ndarray:
    """The Laplacian eigen-curves y_1..y_{n-1} evaluated at positions ``t``. (len(t), n-1)"""
    k = np.arange(1, n, dtype=np.float64)
    return np.sin(np.pi * np.outer(t, k) + np.pi * (n - k) / (2 * n))


@lru_cache(maxsize=64)
def tim_matrix(n: int, m: int) -> np.ndarray:
    """Closed-form TIM: ``tim(x, m) == tim_matrix(n, m) @ x``. (m, n) float64, read-only"""
    if n < 1 or m < 2:
        raise MerError(f"no TIM matrix for {n} -> {m} frames", fix="use n >= 1 and m >= 2")
    y_in = _curves(n, np.arange(1, n + 1) / n)            # (n, n-1)
    y_out = _curves(n, tim_positions(n, m))              # (m, n-1)
    mat = 1.0 / n + (2.0 / n) * (y_out @ y_in.T)         # (m, n)
    mat.setflags(write=False)
    return mat


@lru_cache(maxsize=64)
def _butterfly(n: int, m: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Half-size operators for mirrored sums (even part) and differences (odd part).

    even: (ceil(m/2), ceil(n/2)) acting on [x_i + x_{n-1-i} for i < n//2] (+ the middle frame when
    n is odd); odd: (m//2, n//2) acting on [x_i - x_{n-1-i}].  Output row j < m//2 is
    even_j + odd_j and row m-1-j is even_j - odd_j; the middle row of an odd m is even_j alone.
    """
    mat = tim_matrix(n, m)
    h, mh = n // 2, m // 2
    mirrored = mat[:, ::-1]                                                 # M[j, n-1-i]
    even = np.empty(((m + 1) // 2, (n + 1) // 2))
    even[:, :h] = (mat[: (m + 1) // 2, :h] + mirrored[: (m + 1) // 2, :h]) / 2
    if n % 2:
        even[:, h] = mat[: (m + 1) // 2, h]
    odd = (mat[:mh, :h] - mirrored[:mh, :h]) / 2
    return even.astype(dtype), odd.astype(dtype)


@njit(cache=True)
def _split(x, lo, hi, even, odd):  # pragma: no cover - compiled
    """even[i] = x[i] + x[n-1-i], odd[i] = x[i] - x[n-1-i] on pixels [lo, hi) (+ odd n's middle)."""
    n = x.shape[0]
    h = n // 2
    for i in range(h):
        a = x[i, lo:hi]  # sliced views keep indices non-negative: the loops vectorise
        b = x[n - 1 - i, lo:hi]
        e = even[i]
        o = odd[i]
        for p in range(hi - lo):
            u = e.dtype.type(a[p])
            v = e.dtype.type(b[p])
            e[p] = u + v
            o[p] = u - v
    if n % 2:
        a = x[h, lo:hi]
        e = even[h]
        for p in range(hi - lo):
            e[p] = a[p]


@njit(cache=True)
def _merge(s, d, out, lo, bounds, rounded):  # pragma: no cover - compiled
    """Rows j and m-1-j of ``out[:, lo:]`` from s[j] + d[j] and s[j] - d[j].

    Integer outputs are clipped to ``bounds[:2]`` and rounded half up: floor(clip(v) + 0.5), with
    0.5 = ``bounds[2]`` in the working dtype (a float64 literal would drag float32 work to float64).
    """
    m = out.shape[0]
    mh = d.shape[0]
    w = s.shape[1]
    vlo, vhi, half = bounds[0], bounds[1], bounds[2]
    for j in range(s.shape[0]):
        a = s[j]
        b = d[j] if j < mh else d[0] * 0  # the middle row of an odd m has no odd part
        top = out[j, lo:lo + w]
        bot = out[m - 1 - j, lo:lo + w]
        if rounded:
            for p in range(w):
                top[p] = np.floor(min(max(a[p] + b[p], vlo), vhi) + half)
                bot[p] = np.floor(min(max(a[p] - b[p], vlo), vhi) + half)
        else:
            for p in range(w):
                top[p] = a[p] + b[p]
                bot[p] = a[p] - b[p]


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    """float32 is exact enough for 8-bit pixels and float32 frames; everything else gets float64."""
    small = dtype.itemsize == 1 or dtype == np.float32
    return np.dtype(np.float32 if small else np.float64)


def _finish(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast float results to the input dtype with the rounding rule of :func:`_merge`."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.floor(np.clip(values, info.min, info.max) + 0.5)
    return values.astype(dtype)


def tim(frames: np.ndarray, m: int) -> np.ndarray:
    """Resample a clip to ``m`` frames with the closed-form TIM. (n, ...) -> (m, ...), same dtype

    Integer frames are clipped to their dtype's range and rounded half up; uint8/int8 (and
    float16/32) are computed in float32, other dtypes in float64.
    """
    _check(frames, m)
    if frames.dtype == np.float16:  # the compiled kernels do not take half floats
        return tim(frames.astype(np.float32), m).astype(np.float16)
    m = int(m)
    n = frames.shape[0]
    x = np.ascontiguousarray(frames, dtype=frames.dtype.newbyteorder("=")).reshape(n, -1)  # (n, D)
    work = _compute_dtype(frames.dtype)
    even_op, odd_op = _butterfly(n, m, work.name)
    out = np.empty((m, x.shape[1]), dtype=x.dtype)                        # (m, D)
    rounded = bool(np.issubdtype(frames.dtype, np.integer))
    info = np.iinfo(frames.dtype) if rounded else None
    bounds = np.array([info.min, info.max, 0.5] if rounded else [0, 0, 0.5], dtype=work)
    width = min(_CHUNK, x.shape[1])
    # flat buffers viewed C-contiguous per block: BLAS and the compiled loops need unit strides
    bufs = [np.empty(rows * width, dtype=work) for rows in
            (even_op.shape[1], odd_op.shape[1], even_op.shape[0], odd_op.shape[0])]
    full = [b.reshape(-1, width) for b in bufs]
    for lo in range(0, x.shape[1], width):
        w = min(width, x.shape[1] - lo)
        even, odd, s, d = (full if w == width
                           else [b[: b.size // width * w].reshape(-1, w) for b in bufs])
        _split(x, lo, lo + w, even, odd)           # (ceil(n/2), w), (n//2, w)
        np.matmul(even_op, even, out=s)            # (ceil(m/2), w)
        np.matmul(odd_op, odd, out=d)              # (m//2, w)
        _merge(s, d, out, lo, bounds, rounded)
    return out.reshape((m,) + frames.shape[1:])


def tim_reference(frames: np.ndarray, m: int) -> np.ndarray:
    """TIM as originally formulated, step by step: slow, kept to pin :func:`tim` down.

    Centre the frames and project them on their principal components (SVD; components below
    numpy's rank tolerance are dropped, which is what makes duplicated frames work); compute the
    eigenvectors of the path-graph Laplacian numerically; fit the linear map W with
    Q^T W = Y (least squares); read each eigenvector's scale and sign against the analytic
    sinusoid at t = 1/n; evaluate the sinusoids at the new positions; invert the map by least
    squares and add the mean back.  The scale is read from the eigenvector itself rather than
    from the fitted embedding of frame 1 (the original code's choice): the two agree whenever the
    frames are linearly independent, and only the former stays right when they are not.
    Float64 throughout; the result is cast to the input dtype like :func:`tim`.
    """
    _check(frames, m)
    m = int(m)
    n = frames.shape[0]
    x = frames.reshape(n, -1).astype(np.float64).T                         # (D, n) columns = frames
    mean = x.mean(axis=1, keepdims=True)                                   # (D, 1)
    centred = x - mean
    u, sv, vt = np.linalg.svd(centred, full_matrices=False)               # (D, n), (n,), (n, n)
    rank = int(np.sum(sv > sv.max(initial=0.0) * max(centred.shape) * np.finfo(np.float64).eps))
    if rank == 0 or n == 1:                                    # a constant clip, or a single frame
        return _finish(np.repeat(mean.T, m, axis=0), frames.dtype).reshape((m,) + frames.shape[1:])
    u, q = u[:, :rank], sv[:rank, None] * vt[:rank]                        # (D, r), (r, n)

    adjacency = np.zeros((n, n))
    idx = np.arange(n - 1)
    adjacency[idx, idx + 1] = adjacency[idx + 1, idx] = 1.0
    laplacian = np.diag(adjacency.sum(axis=1)) - adjacency
    _, vecs = np.linalg.eigh(laplacian)                                    # ascending eigenvalues
    y = vecs[:, 1:]                                            # (n, n-1) without the constant
    w = np.linalg.solve(q @ q.T, q @ y)                                    # (r, n-1)

    k = np.arange(1, n)
    scale = y[0] / np.sin(np.pi * k / n + np.pi * (n - k) / (2 * n))       # (n-1,)
    y_new = scale * np.sin(np.pi * np.outer(tim_positions(n, m), k)
                           + np.pi * (n - k) / (2 * n))                    # (m, n-1)
    z = np.linalg.lstsq(w.T, y_new.T, rcond=None)[0]                       # (r, m)
    out = (u @ z + mean).T                                                 # (m, D)
    return _finish(out, frames.dtype).reshape((m,) + frames.shape[1:])
