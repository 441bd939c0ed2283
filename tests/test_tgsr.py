"""TGSR: the ALM solver against its dense reference and the optimality conditions, the simplex
projection, recovery of informative blocks on a synthetic problem, the method interface and the
salient-region figure."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from mer.errors import MerError
from mer.io import save_npz
from mer.methods.registry import Samples, build
from mer.methods.tgsr import PAPER_XI, TGSR, XI_13, XI_125, XI_DECADES
from mer.methods.tgsr_regions import GAP, draw_salient_regions
from mer.methods.tgsr_solver import (
    ALMParams,
    Design,
    design,
    group_norms,
    labels_tilde,
    mmd_basis,
    one_hot,
    project_simplex,
    solve,
    solve_dense,
    solve_designs,
)

K = 85


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small products: threaded BLAS only adds contention on a shared machine."""
    with threadpool_limits(1):
        yield


def _problem(seed: int = 0, d: int = 4, n: int = 30, n_t: int = 20, xi: float = 0.5):
    """A small random eq.-2 problem: X̃ (K d, n + 1), L̃ (3, n + 1)."""
    rng = np.random.default_rng(seed)
    xs, xt = rng.random((n, K * d)), rng.random((n_t, K * d)) + 0.1
    y = np.arange(n) % 3
    return design(xs, xt, xi), labels_tilde(y, 3)


def _kkt(X: np.ndarray, L: np.ndarray, C: np.ndarray, lam: float):
    """Relative KKT residuals of eq. 2 at lambda: active groups' gradient + lam C_i/||C_i||, and
    the largest gradient norm of a zero group (must not exceed lam)."""
    grad = (-2.0 * X @ (L.T - X.T @ C)).reshape(K, -1)            # gradient of the smooth part
    blocks = C.reshape(K, -1)
    norms = np.linalg.norm(blocks, axis=1)
    on = norms > 0
    active = np.abs(grad[on] + lam * blocks[on] / norms[on, None]).max() / lam
    inactive = np.linalg.norm(grad[~on], axis=1).max() / lam
    return active, inactive


# --------------------------------------------------------------------------- solver
@pytest.mark.parametrize("kappa", [1, 3, 10, 40, 85])
def test_woodbury_equals_dense_reference(kappa):
    X, L = _problem()
    fast, dense = solve(X, L, [kappa], K), solve_dense(X, L, kappa, K)
    assert fast.converged[0] and dense.converged[0]
    assert fast.iterations[0] == dense.iterations[0]
    assert np.abs(fast.C[0] - dense.C[0]).max() < 1e-6
    assert fast.lam[0] == pytest.approx(dense.lam[0], rel=1e-9, abs=1e-12)


def test_batched_designs_equal_separate_fits():
    """Folds x xi x kappa in one batch (shared basis) == each fit on its own X̃."""
    rng = np.random.default_rng(1)
    xs, xt = rng.random((40, K * 3)), rng.random((15, K * 3)) + 0.2
    y = np.arange(40) % 3
    subsets = [np.arange(0, 26), np.arange(14, 40)]
    designs = [Design(np.append(sub, 40 + j), np.append(np.ones(sub.size), np.sqrt(xi)),
                      labels_tilde(y[sub], 3), (7, 1, 20))
               for j, sub in enumerate(subsets) for xi in (0.3, 50.0)]
    sols = solve_designs(mmd_basis(xs, xt, subsets), designs, K)
    pairs = [(sub, xi) for sub in subsets for xi in (0.3, 50.0)]
    for sol, (sub, xi) in zip(sols, pairs):
        ref = solve(design(xs[sub], xt, xi), labels_tilde(y[sub], 3), [7, 1, 20], K)
        assert np.abs(sol.C - ref.C).max() < 1e-10
        assert (sol.iterations == ref.iterations).all() and list(sol.kappa) == [7, 1, 20]


@pytest.mark.parametrize("kappa", [1, 2, 7, 30, 84])
def test_exactly_kappa_groups_survive(kappa):
    X, L = _problem(seed=2)
    sol = solve(X, L, [kappa], K)
    assert (group_norms(sol.C[0], K) > 0).sum() == kappa


def test_kkt_conditions_at_the_solution():
    """C solves eq. 2 at the final lambda: active groups satisfy grad_i + lam C_i/||C_i|| = 0 and
    zero groups have ||grad_i|| <= lam, the largest one exactly at lam (kappa's knot)."""
    X, L = _problem(seed=3)
    tight = ALMParams(rho=1.01, max_iter=5000)
    for kappa in (1, 3, 10):
        sol = solve(X, L, [kappa], K, tight)
        active, inactive = _kkt(X, L, sol.C[0], sol.lam[0])
        assert sol.converged[0] and active < 1e-3
        assert inactive == pytest.approx(1.0, abs=1e-3)
    # the authors' rho = 1.1 stops earlier: the same conditions hold to a few percent
    sol = solve(X, L, [3], K)
    active, inactive = _kkt(X, L, sol.C[0], sol.lam[0])
    assert active < 0.1 and inactive == pytest.approx(1.0, abs=1e-3)


def test_algorithm1_printed_multiplier_sign_diverges():
    """Why the solver uses P += mu (C - D): Algorithm 1's printed P += mu (D - C) blows up."""
    X, L = _problem(seed=0, d=2, n=20, n_t=10)
    kd = X.shape[0]
    C, P, mu = np.zeros((kd, 3)), np.zeros((kd, 3)), 1e-3
    with np.errstate(all="ignore"):
        for _ in range(200):
            D = np.linalg.solve(mu * np.eye(kd) + 2 * X @ X.T, 2 * X @ L.T + P + mu * C)
            E = (D - P / mu).reshape(K, -1)
            norms = np.linalg.norm(E, axis=1)
            thr = np.sort(norms)[::-1][3]
            C = (E * np.where(norms > thr, 1 - thr / norms, 0)[:, None]).reshape(kd, 3)
            P = P + mu * (D - C)
            mu *= 1.1
    assert not np.abs(C).max() < 1e6                     # diverged (or overflowed to inf/nan)
    ours = solve(X, L, [3], K)
    assert ours.converged[0] and np.abs(ours.C).max() < 1.0


def test_max_iter_stops_and_says_so():
    X, L = _problem()
    sol = solve(X, L, [2, 85], K, ALMParams(max_iter=5))
    assert list(sol.iterations) == [5, 1] and list(sol.converged) == [False, True]
    assert (group_norms(sol.C[0], K) > 0).sum() == 2


def test_solver_rejects_bad_input():
    X, L = _problem()
    with pytest.raises(MerError, match="kappa"):
        solve(X, L, [0], K)
    with pytest.raises(MerError, match="kappa"):
        solve(X, L, [86], K)
    with pytest.raises(MerError, match="blocks"):
        solve(X[:-1], L, [3], K)
    with pytest.raises(MerError, match="columns"):
        solve(X, L[:, :-1], [3], K)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(MerError, match="NaN"):
        solve(bad, L, [3], K)
    with pytest.raises(MerError, match="rho"):
        solve(X, L, [3], K, ALMParams(rho=1.0))


# --------------------------------------------------------------------------- simplex
def _simplex_reference(v: np.ndarray) -> np.ndarray:
    """argmin ||l - v||^2 s.t. l >= 0, sum l = 1, by a general-purpose solver (SLSQP)."""
    res = minimize(lambda l: ((l - v) ** 2).sum(), np.full(v.size, 1 / v.size),
                   jac=lambda l: 2 * (l - v), method="SLSQP", bounds=[(0, None)] * v.size,
                   constraints=[{"type": "eq", "fun": lambda l: l.sum() - 1,
                                 "jac": lambda l: np.ones_like(l)}],
                   options={"ftol": 1e-14, "maxiter": 500})
    return res.x


def test_simplex_projection_matches_a_generic_solver():
    rng = np.random.default_rng(4)
    v = np.concatenate([rng.normal(0, 1, (40, 3)), rng.normal(0, 0.01, (10, 3)),
                        rng.normal(0, 10, (10, 3)), [[0.2, 0.3, 0.5], [5, 5, -5], [0, 0, 0]]])
    p = project_simplex(v)
    ref = np.stack([_simplex_reference(row) for row in v])
    assert np.abs(p - ref).max() < 1e-6
    assert np.allclose(p.sum(1), 1, atol=1e-12) and (p >= 0).all()
    assert np.allclose(project_simplex(p), p, atol=1e-12)               # idempotent
    assert np.allclose(p[-3], [0.2, 0.3, 0.5]) and np.allclose(p[-2], [0.5, 0.5, 0])
    assert np.allclose(p[-1], 1 / 3)


def test_simplex_projection_is_the_nearest_point():
    rng = np.random.default_rng(5)
    v = rng.normal(0, 2, (200, 5))
    p = project_simplex(v)
    others = rng.dirichlet(np.ones(5), (200, 50))                       # (200, 50, 5) simplex points
    assert (((v - p) ** 2).sum(1)[:, None] <= ((v[:, None] - others) ** 2).sum(2) + 1e-12).all()
    assert (p.argmax(1) == v.argmax(1)).all()                           # order preserved (eq. 9)


# --------------------------------------------------------------------------- synthetic recovery
INFORMATIVE = [5, 40, 77]


def _shifted_domains(seed: int = 0, d: int = 6, n: int = 120):
    """Labels live in 3 blocks, each holding two noisy copies of the one-hot label; the target
    domain offsets the second copy, so a regression that leans on it is biased on the target."""
    rng = np.random.default_rng(seed)

    def make(shift):
        y = np.arange(n) % 3
        x = rng.normal(0, 1, (n, K, d))
        for g in INFORMATIVE:
            x[:, g, :3] += one_hot(y, 3).T
            x[:, g, 3:] += one_hot(y, 3).T + shift
        return x.reshape(n, K * d), y

    xs, ys = make(0.0)
    xt, yt = make(np.array([1.5, -0.75, -0.75]))
    return xs, ys, xt, yt


def test_recovers_informative_blocks_and_mmd_helps_the_target():
    xs, ys, xt, yt = _shifted_domains()
    acc = {}
    for xi in (0.0, 100.0):
        sol = solve(design(xs, xt, xi), labels_tilde(ys, 3), [3], K)
        assert list(np.flatnonzero(sol.group_norms(K)[0] > 0)) == INFORMATIVE
        acc[xi] = (project_simplex(xt @ sol.C[0]).argmax(1) == yt).mean()
    assert acc[100.0] >= acc[0.0] + 0.15, acc


# --------------------------------------------------------------------------- the method
def _samples(tmp_path, name: str, n_subjects: int, per_subject: int, shift: float, seed: int,
             labelled: bool = True) -> Samples:
    """Clips with full-size LBP-TOP-like features (85 blocks x 3 planes x 59 bins, each plane
    histogram normalised); the label raises a few bins of blocks 10, 50 and 80."""
    rng = np.random.default_rng(seed)
    n = n_subjects * per_subject
    y = np.arange(n) % 3
    hist = rng.gamma(2.0, 1.0, (n, K, 3, 59))
    for g in (10, 50, 80):
        hist[np.arange(n), g, 0, 5 + y] += 6.0
        hist[:, g, 1, 20] += shift
    hist /= hist.sum(-1, keepdims=True)
    folder = tmp_path / name
    folder.mkdir()
    paths = []
    for i in range(n):
        paths.append(folder / f"c{i}.npz")
        save_npz(paths[-1], feature=hist[i].ravel().astype(np.float32))
    meta = pd.DataFrame({"clip_id": [f"{name}{i}" for i in range(n)], "dataset": name,
                         "corpus": name, "subject": [f"s{i // per_subject}" for i in range(n)]})
    return Samples(meta, y if labelled else None, ["negative", "positive", "surprise"],
                   {"lbptop": paths})


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tgsr")
    source = _samples(tmp, "src", 6, 6, 0.0, 0)
    target = _samples(tmp, "tgt", 4, 6, 3.0, 1)
    return source, target, target.subset(np.arange(len(target)), hide_labels=True)


def test_method_fits_predicts_and_explains(domains):
    source, target, hidden = domains
    model = build("tgsr", {"kappa": [3, 6], "xi": [100.0]})
    assert model.transductive and model.deterministic
    model.fit(source, np.random.default_rng(0), unlabeled=hidden)
    proba = model.predict_proba(hidden)
    assert proba.shape == (len(hidden), 3)
    assert np.allclose(proba.sum(1), 1) and (proba >= 0).all()
    assert model.group_weights_.shape == (K,)
    assert (model.group_weights_ > 0).sum() == model.kappa_ in (3, 6)
    assert model.converged_ and (proba.argmax(1) == target.y).mean() > 0.8
    info = json.loads(json.dumps(model.explain()))
    assert info["kappa"] == model.kappa_ and len(info["group_weights"]) == K
    assert set(info["inner_scores"]) == {"xi=100,kappa=3", "xi=100,kappa=6"}
    again = build("tgsr", {"kappa": [3, 6], "xi": [100.0]}).fit(source, None, unlabeled=hidden)
    assert np.array_equal(again.predict_proba(hidden), proba)              # deterministic


def test_method_without_target_and_with_zscore(domains):
    source, _, hidden = domains
    model = build("tgsr", {"kappa": [4], "xi": [10.0], "standardize": "zscore"})
    model.fit(source, None)                                                # MMD term off
    assert model.xi_ == 0.0 and (model.group_weights_ > 0).sum() == 4
    assert model.predict_proba(hidden).shape == (len(hidden), 3)


def test_oracle_path_yields_every_grid_point(domains):
    source, _, hidden = domains
    model = build("tgsr", {"oracle_xi": [0.0, 100.0], "oracle_kappa": [2, 85]})
    points = list(model.oracle_path(source, hidden))
    assert [p for p, _ in points] == [{"xi": 0.0, "kappa": 2}, {"xi": 0.0, "kappa": 85},
                                      {"xi": 100.0, "kappa": 2}, {"xi": 100.0, "kappa": 85}]
    for _, proba in points:
        assert proba.shape == (len(hidden), 3) and np.allclose(proba.sum(1), 1)
    grid = list(model.oracle_path(source, hidden, {"xi": [1.0], "kappa": [3]}))
    fixed = build("tgsr", {"kappa": [3], "xi": [1.0]}).fit(source, None, unlabeled=hidden)
    assert len(grid) == 1 and np.allclose(grid[0][1], fixed.predict_proba(hidden))


def test_paper_grids():
    assert len(PAPER_XI) == 271 and PAPER_XI[0] == 0.001 and PAPER_XI[-1] == 1000.0
    for sub, n in ((XI_DECADES, 7), (XI_13, 13), (XI_125, 19)):
        assert set(sub) <= set(PAPER_XI) and len(sub) == n and min(sub) == 0.001
    assert TGSR.Params().oracle_xi == XI_DECADES


@pytest.mark.parametrize("section, match", [
    ({"kappa": [0]}, "kappa"), ({"oracle_kappa": [86]}, "oracle_kappa"),
    ({"standardize": "pca"}, "standardize"), ({"xi": [-1.0]}, "xi"), ({"rho": 0.9}, "rho"),
    ({"kapa": [3]}, "did you mean"), ({"xi": []}, "empty")])
def test_bad_params_are_one_clear_error(domains, section, match):
    source, _, hidden = domains
    with pytest.raises(MerError, match=match):
        build("tgsr", section).fit(source, None, unlabeled=hidden)


def test_default_params_are_documented_values():
    p = TGSR.Params()
    assert (p.rho, p.mu0, p.tol) == (1.1, 1e-3, 1e-8)
    assert p.oracle_kappa == list(range(1, 86))


# --------------------------------------------------------------------------- figure
def test_salient_regions_figure():
    rng = np.random.default_rng(6)
    face = rng.integers(0, 256, (96, 80, 3), dtype=np.uint8)
    weights = np.zeros(K)
    weights[21 + 18] = 2.0          # 8x8 grid, block (2, 2): rows 24..35, columns 20..29
    weights[21 + 45] = 1.0          # 8x8 grid, block (5, 5): rows 60..71, columns 50..59
    img = draw_salient_regions(weights, face)
    assert img.dtype == np.uint8 and img.shape == (96, 4 * 80 + 3 * GAP, 3)
    panel = img[:, 3 * (80 + GAP):].astype(int)
    inner = (slice(26, 34), slice(22, 28))
    weak = (slice(62, 70), slice(52, 58))
    quiet = (slice(50, 58), slice(22, 28))                                 # block (4, 2): unselected
    redness = lambda s: (panel[s][..., 0] - face[s][..., 0].astype(int)).mean()
    assert redness(inner) > redness(weak) > 20
    assert np.array_equal(panel[quiet], face[quiet].astype(int))
    assert np.array_equal(img[50:60, 10:30], face[50:60, 10:30])          # 1x1 panel interior
    with pytest.raises(MerError, match="85"):
        draw_salient_regions(np.ones(84), face)
    with pytest.raises(MerError, match="uint8"):
        draw_salient_regions(weights, face.astype(float))
