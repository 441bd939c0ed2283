"""TGSR's solver: the inexact ALM of the paper's Algorithm 1, fast (Woodbury) and naive (dense).

The problem (paper eq. 2): with K blocks of d features, X̃ = [X^s, sqrt(xi) (mean_s - mean_t)]
(Kd x M, M = N_s + 1) and L̃ = [L^s, 0] (c x M, one-hot),

    min_C  ||L̃ - Cᵀ X̃||_F² + lambda sum_i ||C_i||_F,      C = [C_1; ...; C_K]  (Kd x c),

solved by splitting C = D (Algorithm 1): a D-step with the Kd x Kd matrix (mu I + 2 X̃ X̃ᵀ), a
group shrinkage of D - P/mu whose threshold lambda/mu is set every iteration to the (kappa+1)-th
largest group norm (so exactly kappa groups survive), a multiplier step, mu = min(rho mu, mu_max),
until ||C - D||_inf < tol.

Sign of the multiplier step.  The paper's Lagrangian (eq. 3) carries + tr[Pᵀ(C - D)], its D-step
uses + P and its C-step shrinks D - P/mu; the multiplier ascent consistent with these is
P += mu (C - D).  Algorithm 1 prints P += mu (D - C): run as printed, the iteration diverges
(|C| overflows within ~100 iterations on LBP-TOP features), so both solvers here use
P += mu (C - D).  At a fixed point C = D, P = gradient of the smooth part and -P_i lies in
lambda * subgradient of ||C_i||: the KKT conditions of eq. 2 at the final lambda.

Why Woodbury and no Kd x Kd matrix.  Kd = 15,045 while M is ~70-170.  Two identities make every
iteration cost O(Kd M c):

* push-through: X̃ᵀ (mu I + 2 X̃X̃ᵀ)⁻¹ = (mu I + 2 G)⁻¹ X̃ᵀ with G = X̃ᵀX̃ (M x M), and one
  eigendecomposition G = V diag(s) Vᵀ serves every mu;
* D - P/mu = C + X̃ y with y = 2 (mu I + 2G)⁻¹ (L̃ᵀ - X̃ᵀC - X̃ᵀP/mu) (M x c): rearranging the
  D-step's normal equations, mu (D - P/mu - C) = 2 X̃ (L̃ᵀ - X̃ᵀD).

So D itself is never formed: the solver keeps C, Z = C_new - (D - P/mu) (the multiplier is
P = mu Z) and the M x c products u = X̃ᵀC, w = X̃ᵀZ; an iteration is two products with X̃
(X̃ y and X̃ᵀ C_new) plus elementwise work, and ||C - D||_inf = ||Z_new - (mu_prev/mu) Z||_inf is
exact.  Algebraically it is the same iteration as :func:`solve_dense`, which forms and
Cholesky-factors the Kd x Kd matrix for every mu (the naive reference, for tests and benchmarks).

Batching.  Every fit starts at mu0 and multiplies mu by rho, so all fits share mu at every
iteration and can run as one batch: the two products become BLAS-3 (Kd x N) @ (N x B c) matrix
products, and a fit leaves the batch when it converges.  Fits on different X̃ batch too when
their X̃ are scaled column subsets of one matrix A (:class:`Design`): several kappa of one xi;
several xi (only the MMD column's scale differs); inner cross-validation folds (subsets of the
source clips, one MMD column per fold).  Each design keeps its own eigendecomposition.

Cost: one iteration is O(Kd N c) per fit plus two memory passes over Kd x c arrays; a fit takes
~50-200 iterations with rho = 1.1 (small kappa the most).  Measured on one core with N = 164:
~0.1 s per fit in batches of 85 (~9 s for kappa = 1..85), against ~30 s for ONE iteration of the
dense reference at Kd = 15,045.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.linalg import cho_factor, cho_solve

from mer.errors import MerError

__all__ = [
    "ALMParams",
    "Design",
    "Solution",
    "design",
    "group_norms",
    "labels_tilde",
    "mmd_basis",
    "one_hot",
    "project_simplex",
    "solve",
    "solve_dense",
    "solve_designs",
]


@dataclass(frozen=True)
class ALMParams:
    """Algorithm 1's scalars (see :class:`mer.methods.tgsr.TGSR.Params` for the chosen values)."""

    rho: float = 1.1          # mu growth per iteration
    mu0: float = 1e-3         # initial penalty
    mu_max: float = 1e8       # penalty cap
    tol: float = 1e-8         # stop when ||C - D||_inf < tol
    max_iter: int = 1000      # hard stop (the fit then reports converged = False)

    def check(self) -> ALMParams:
        if not (self.rho > 1 and 0 < self.mu0 <= self.mu_max and self.tol > 0 and self.max_iter >= 1):
            raise MerError(f"TGSR solver parameters out of range: {self}",
                           fix="use rho > 1, 0 < mu0 <= mu_max, tol > 0, max_iter >= 1")
        return self


@dataclass
class Solution:
    """Solved regression matrices of the fits of one design (one fit per kappa)."""

    C: np.ndarray              # (B, Kd, c) float64
    kappa: np.ndarray          # (B,) int
    iterations: np.ndarray     # (B,) int: iterations run
    lam: np.ndarray            # (B,) float: lambda = mu d_(kappa+1) of the last iteration
    converged: np.ndarray      # (B,) bool: ||C - D||_inf < tol reached before max_iter

    def group_norms(self, n_groups: int) -> np.ndarray:
        """||C_i||_F of every group. (B, K)"""
        return group_norms(self.C, n_groups)


@dataclass(frozen=True)
class Design:
    """One X̃ as columns of a shared matrix A: X̃ = A[:, columns] * weights, with its L̃.

    Sharing A lets fits on different X̃ (inner folds, several xi) run their big products together.
    """

    columns: np.ndarray        # (M,) int: columns of A
    weights: np.ndarray        # (M,) float: column scales (sqrt(xi) on the MMD column, else 1)
    labels: np.ndarray         # (c, M) L̃
    kappas: tuple[int, ...]    # one fit per kappa


def group_norms(C: np.ndarray, n_groups: int) -> np.ndarray:
    """Frobenius norm of each block of rows: (..., Kd, c) -> (..., K)."""
    shape = C.shape[:-2] + (n_groups, -1)
    return np.sqrt(np.einsum("...ij,...ij->...i", C.reshape(shape), C.reshape(shape)))


def one_hot(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Labels as the paper's L^s: (N,) int -> (c, N) float64."""
    out = np.zeros((n_classes, len(y)))
    out[np.asarray(y, int), np.arange(len(y))] = 1.0
    return out


def labels_tilde(y: np.ndarray, n_classes: int) -> np.ndarray:
    """L̃ = [L^s, 0] of eq. 2: (N_s,) int -> (c, N_s + 1)."""
    return np.concatenate([one_hot(y, n_classes), np.zeros((n_classes, 1))], 1)


def _mean_gap(source: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    """mean_s - mean_t (Kd,); zeros without a target (the MMD term is then off)."""
    if target is None:
        return np.zeros(source.shape[1])
    return source.mean(0) - np.asarray(target, np.float64).mean(0)


def design(source: np.ndarray, target: np.ndarray | None, xi: float) -> np.ndarray:
    """X̃ of eq. 2: source features as columns plus the scaled mean difference. -> (Kd, N_s + 1)

    source: (N_s, Kd), target: (N_t, Kd) or None (no target: the MMD column is zero, xi is moot).
    """
    if xi < 0:
        raise MerError(f"TGSR xi must be >= 0, got {xi}", fix="use xi >= 0 (0 switches the MMD term off)")
    source = np.asarray(source, np.float64)
    gap = np.sqrt(xi) * _mean_gap(source, target)
    return np.ascontiguousarray(np.concatenate([source, gap[None]], 0).T)   # (Kd, M)


def mmd_basis(source: np.ndarray, target: np.ndarray | None,
              subsets: Sequence[np.ndarray]) -> np.ndarray:
    """A = [X^s, gap_1, ..., gap_F]: every source clip, then mean(source[subset_j]) - mean_t.

    source: (N_s, Kd) -> (Kd, N_s + F).  The design of subset j with weight xi is
    ``Design(concat(subset_j, [N_s + j]), concat(ones, [sqrt(xi)]), ...)``.
    """
    source = np.asarray(source, np.float64)
    gaps = [_mean_gap(source[np.asarray(sub)], target) for sub in subsets]
    return np.ascontiguousarray(np.concatenate([source, np.stack(gaps)], 0).T)


def _check_kappas(kappas: Sequence[int], n_groups: int) -> np.ndarray:
    k = np.asarray(kappas, int).ravel()
    if k.size == 0 or (k < 1).any() or (k > n_groups).any():
        raise MerError(f"TGSR kappa must be in 1..{n_groups}, got {list(k)}",
                       fix=f"choose kappa between 1 and {n_groups}")
    return k


def _check(X: np.ndarray, n_groups: int) -> None:
    if X.ndim != 2 or X.shape[0] % n_groups:
        raise MerError(f"TGSR: features of shape {X.shape} do not split into {n_groups} equal "
                       "blocks of rows", fix="check the LBP-TOP grids (85 blocks for 1x1, 2x2, 4x4, 8x8)")
    if not np.isfinite(X).all():
        raise MerError("TGSR features contain NaN or infinite values", fix="re-run the lbptop stage")


@njit(cache=True)
def _add_and_norms(E, C, d, norms):  # pragma: no cover - compiled
    """E += C in place and the squared Frobenius norm of every group of every fit.

    E, C: (Kd, B, c); norms: (K, B) out.  One pass over E: this and :func:`_shrink_step` are the
    memory-bound part of an iteration, fused so that each big array is read once.
    """
    kd, b, c = E.shape
    norms[:] = 0.0
    for r in range(kd):
        g = r // d
        for j in range(b):
            acc = 0.0
            for k in range(c):
                e = E[r, j, k] + C[r, j, k]
                E[r, j, k] = e
                acc += e * e
            norms[g, j] += acc


@njit(cache=True)
def _shrink_step(E, C, Z, scale, ratio, d, resid):  # pragma: no cover - compiled
    """Group shrinkage and multiplier bookkeeping of one iteration, in one pass.

    C = scale_g E (the new C), Z = C - E (P_new / mu), resid[b] = max |Z_new - ratio Z_old|
    = ||C - D||_inf of fit b.  E, C, Z: (Kd, B, c); scale: (K, B).
    """
    kd, b, c = E.shape
    resid[:] = 0.0
    for r in range(kd):
        g = r // d
        for j in range(b):
            a = scale[g, j]
            for k in range(c):
                e = E[r, j, k]
                cn = a * e
                zn = cn - e
                gap = abs(zn - ratio * Z[r, j, k])
                resid[j] = max(resid[j], gap)
                C[r, j, k] = cn
                Z[r, j, k] = zn


def _thresholds(sq_norms: np.ndarray, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 1 step 2's rule: lambda/mu = d_(kappa+1), the (kappa+1)-th largest group norm.

    sq_norms: (K, B) squared norms of D - P/mu -> (scale (K, B) applied to each group, d_(kappa+1)
    (B,)).  Groups at or below the threshold get scale 0, the others 1 - d_(kappa+1)/d_i; with
    kappa = K nothing is shrunk.
    """
    norms = np.sqrt(sq_norms)
    b = norms.shape[1]
    ranked = -np.sort(-norms, axis=0)                                           # (K, B) descending
    padded = np.concatenate([ranked, np.zeros((1, b))], 0)
    thr = padded[kappa, np.arange(b)]                                           # (B,)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norms > thr, 1.0 - thr / norms, 0.0)                 # (K, B)
    return scale, thr


def _sparse_xt_c(X: np.ndarray, C: np.ndarray, scale: np.ndarray, d: int) -> np.ndarray:
    """X̃ᵀ C for a batch of group-sparse C, skipping the zero groups. -> (M, B, c)

    X: (Kd, M), C: (Kd, B, c), scale: (K, B) (0 = the group is zero in that fit).  Fits are kept
    sorted by kappa, and a group survives in roughly the fits of kappa above some rank, so the
    fits where group g is non-zero span a short contiguous range: one strided product per group on
    that range (zeros inside it are harmless).  Small-kappa fits, which run the most iterations,
    then cost a fraction of the dense product.
    """
    m = X.shape[1]
    _, b, c = C.shape
    out = np.zeros((m, b, c))
    active = scale > 0                                                          # (K, B)
    first = active.argmax(1)
    last = b - active[:, ::-1].argmax(1)
    for g in np.flatnonzero(active.any(1)):
        lo, hi = first[g], last[g]
        rows = slice(g * d, (g + 1) * d)
        out[:, lo:hi] += (X[rows].T @ C[rows, lo:hi].reshape(d, -1)).reshape(m, hi - lo, c)
    return out


class _DesignState:
    """One design's small-space quantities: X̃ᵀX̃ (M x M), its eigendecomposition, L̃."""

    def __init__(self, d: Design, AtA: np.ndarray, n_cols: int):
        cols = np.asarray(d.columns, int)
        wts = np.asarray(d.weights, np.float64)
        labels = np.asarray(d.labels, np.float64)
        if cols.ndim != 1 or cols.shape != wts.shape or labels.shape[1:] != cols.shape \
                or len(set(cols.tolist())) != cols.size or cols.min() < 0 or cols.max() >= n_cols:
            raise MerError("TGSR design: columns, weights and labels disagree",
                           fix="build designs with mmd_basis() / labels_tilde()")
        self.cols, self.wts, self.L = cols, wts, labels
        self.G = AtA[np.ix_(cols, cols)] * np.outer(wts, wts)                   # (M, M) X̃ᵀX̃
        s, self.V = np.linalg.eigh(self.G)
        self.s = np.clip(s, 0.0, None)                                          # (M,)
        self.m, self.c = cols.size, labels.shape[0]


def solve_designs(A: np.ndarray, designs: Sequence[Design], n_groups: int = 85,
                  params: ALMParams = ALMParams()) -> list[Solution]:
    """Algorithm 1 for every (design, kappa), via Woodbury, all fits iterating together.

    Every fit runs exactly the iteration of :func:`solve_dense` on its own X̃ (same mu schedule,
    same stopping rule); the fits only share the two big products with A per iteration.  Fits sit
    in slots ordered by design then kappa; a finished fit keeps its slot (ignored) until a quarter
    of the slots are finished, then the arrays are compacted: copying the big arrays at every
    finish would cost more than the idle slots.
    """
    params = params.check()
    _check(A, n_groups)
    A = np.ascontiguousarray(A, np.float64)                                     # (Kd, N_A)
    kd, n_a = A.shape
    d = kd // n_groups
    AtA = A.T @ A                                                               # (N_A, N_A)
    states = [_DesignState(ds, AtA, n_a) for ds in designs]
    if not states or len({st.c for st in states}) != 1:
        raise MerError("TGSR needs at least one design, all with the same classes")
    c = states[0].c
    kappa_lists = [_check_kappas(ds.kappas, n_groups) for ds in designs]
    order = [np.argsort(k, kind="stable") for k in kappa_lists]                 # slots by kappa
    slot_design = np.concatenate([np.full(k.size, i) for i, k in enumerate(kappa_lists)])
    slot_fit = np.concatenate([o for o in order])                              # index within design
    slot_kappa = np.concatenate([k[o] for k, o in zip(kappa_lists, order)])
    n = slot_kappa.size

    C = np.zeros((kd, n, c))        # the regression matrices
    Z = np.zeros((kd, n, c))        # C - (D - P/mu) of the last step: P = mu_prev Z
    u = [np.zeros((st.m, k.size, c)) for st, k in zip(states, kappa_lists)]    # X̃ᵀ C
    w = [np.zeros((st.m, k.size, c)) for st, k in zip(states, kappa_lists)]    # X̃ᵀ Z
    running = np.ones(n, bool)
    out = [np.zeros((k.size, kd, c)) for k in kappa_lists]
    iters = [np.zeros(k.size, int) for k in kappa_lists]
    lam = [np.zeros(k.size) for k in kappa_lists]
    done = [np.zeros(k.size, bool) for k in kappa_lists]
    sq, resid = np.zeros((n_groups, n)), np.zeros(n)
    mu, ratio = params.mu0, 0.0     # ratio = mu_prev / mu (0 at the start: P = 0)
    for it in range(1, params.max_iter + 1):
        bounds = np.searchsorted(slot_design, np.arange(len(states) + 1))      # design slot ranges
        # step 1 in the small spaces: y = 2 (mu I + 2G)^-1 (L̃ᵀ - X̃ᵀC - X̃ᵀP/mu), scattered to A
        Y = np.zeros((n_a, slot_kappa.size, c))
        ys = []
        for i, st in enumerate(states):
            lo, hi = bounds[i], bounds[i + 1]
            if lo == hi:
                ys.append(None)
                continue
            rhs = (st.L.T[:, None, :] - u[i] - ratio * w[i]).reshape(st.m, -1)
            y = 2.0 * (st.V @ ((st.V.T @ rhs) / (mu + 2.0 * st.s)[:, None]))  # (M, B c)
            ys.append(y)
            Y[st.cols, lo:hi] = (st.wts[:, None] * y).reshape(st.m, hi - lo, c)
        E = (A @ Y.reshape(n_a, -1)).reshape(kd, -1, c)                        # X̃ y per slot
        _add_and_norms(E, C, d, sq)                                             # E = D - P/mu
        scale, thr = _thresholds(sq, slot_kappa)                                # step 2
        _shrink_step(E, C, Z, scale, ratio, d, resid)                           # C, Z updated
        AtC = _sparse_xt_c(A, C, scale * running, d)                            # (N_A, S, c)
        for i, st in enumerate(states):
            lo, hi = bounds[i], bounds[i + 1]
            if lo == hi:
                continue
            u_new = st.wts[:, None, None] * AtC[st.cols, lo:hi]                # X̃ᵀ C_new
            w[i] = u_new - u[i] - (st.G @ ys[i]).reshape(st.m, hi - lo, c)      # X̃ᵀ Z_new
            u[i] = u_new
        for i in np.unique(slot_design[running]):
            sel = running & (slot_design == i)
            lam[i][slot_fit[sel]] = mu * thr[sel]
            iters[i][slot_fit[sel]] = it
        stop = running & ((resid < params.tol) | (it == params.max_iter))       # step 4
        if stop.any():
            for i in np.unique(slot_design[stop]):
                sel = stop & (slot_design == i)
                out[i][slot_fit[sel]] = C[:, sel].transpose(1, 0, 2)
                done[i][slot_fit[sel]] = resid[sel] < params.tol
            running &= ~stop
            if not running.any():
                break
            if (~running).sum() * 4 >= running.size:                            # compact
                keep = running
                C, Z = np.ascontiguousarray(C[:, keep]), np.ascontiguousarray(Z[:, keep])
                for i in range(len(states)):
                    mine = keep[slot_design == i]
                    u[i], w[i] = u[i][:, mine], w[i][:, mine]
                slot_design, slot_fit = slot_design[keep], slot_fit[keep]
                slot_kappa, running = slot_kappa[keep], running[keep]
                sq, resid = np.zeros((n_groups, keep.sum())), np.zeros(keep.sum())
        mu_next = min(params.rho * mu, params.mu_max)                           # step 3
        ratio, mu = mu / mu_next, mu_next
    return [Solution(out[i], kappa_lists[i].copy(), iters[i], lam[i], done[i])
            for i in range(len(states))]


def solve(X: np.ndarray, L: np.ndarray, kappas: Sequence[int], n_groups: int = 85,
          params: ALMParams = ALMParams()) -> Solution:
    """Algorithm 1 on one X̃ (Kd, M) and L̃ (c, M), one fit per kappa, via Woodbury."""
    X, L = np.asarray(X, np.float64), np.asarray(L, np.float64)
    if X.ndim != 2 or L.ndim != 2 or X.shape[1] != L.shape[1]:
        raise MerError(f"TGSR got X̃ {X.shape} and L̃ {L.shape}: they need the same number of columns",
                       fix="build them with design() and labels_tilde() from the same source clips")
    m = X.shape[1]
    return solve_designs(X, [Design(np.arange(m), np.ones(m), L, tuple(int(k) for k in np.ravel(kappas)))],
                         n_groups, params)[0]


def solve_dense(X: np.ndarray, L: np.ndarray, kappa: int, n_groups: int = 85,
                params: ALMParams = ALMParams(), XXt: np.ndarray | None = None) -> Solution:
    """Algorithm 1 transcribed literally, with the Kd x Kd solve of its D-step (the reference).

    ``XXt`` = X̃X̃ᵀ (Kd x Kd) may be passed precomputed (it does not depend on mu).  Cost per
    iteration: one Cholesky factorisation of a Kd x Kd matrix, O((Kd)^3).
    """
    params = params.check()
    X = np.asarray(X, np.float64)
    _check(X, n_groups)
    k = int(_check_kappas([kappa], n_groups)[0])
    kd, c = X.shape[0], L.shape[0]
    XXt = X @ X.T if XXt is None else XXt                                       # (Kd, Kd)
    XL2 = 2.0 * X @ L.T                                                         # (Kd, c)
    C, P, mu = np.zeros((kd, c)), np.zeros((kd, c)), params.mu0
    lam, it, converged = 0.0, 0, False
    diagonal = np.arange(kd)
    for it in range(1, params.max_iter + 1):
        A = np.multiply(XXt, 2.0)
        A[diagonal, diagonal] += mu                                             # mu I + 2 X̃X̃ᵀ
        D = cho_solve(cho_factor(A, overwrite_a=True), XL2 + P + mu * C)       # step 1
        del A
        E = D - P / mu
        norms = group_norms(E, n_groups)[:, None] ** 2                         # (K, 1)
        scale, thr = _thresholds(norms, np.array([k]))                          # step 2
        C = (E.reshape(n_groups, -1, c) * scale[:, :, None]).reshape(kd, c)
        lam = mu * float(thr[0])
        P = P + mu * (C - D)                                                    # step 3 (sign: see top)
        mu = min(params.rho * mu, params.mu_max)
        if np.abs(C - D).max() < params.tol:                                    # step 4
            converged = True
            break
    return Solution(C[None], np.array([k]), np.array([it]), np.array([lam]), np.array([converged]))


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row onto the probability simplex (eq. 8). (n, c) -> (n, c)

    Sort-based algorithm (Held et al. 1974; Duchi et al. 2008): with u the row sorted in
    decreasing order, the largest j with u_j - (sum_{i<=j} u_i - 1)/j > 0 fixes the shift
    theta = (sum_{i<=j} u_i - 1)/j, and the projection is max(v - theta, 0).
    """
    v = np.asarray(v, np.float64)
    if v.ndim != 2:
        raise MerError(f"simplex projection needs an (n, c) array, got shape {v.shape}")
    u = -np.sort(-v, axis=1)                                                    # (n, c) descending
    excess = np.cumsum(u, axis=1) - 1.0                                         # (n, c)
    j = np.arange(1, v.shape[1] + 1)
    support = (u - excess / j > 0).sum(axis=1)                                  # (n,) >= 1
    theta = excess[np.arange(len(v)), support - 1] / support                    # (n,)
    return np.maximum(v - theta[:, None], 0.0)
