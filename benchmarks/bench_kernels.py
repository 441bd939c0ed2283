"""Numeric kernels against their straightforward references, timed in the same run.

Each case builds one fixed input, checks that ours and the reference agree on it, then times them
interleaved (rounds of k runs of ours and one of the reference) so that load from other
processes on a shared machine hits both alike; the medians and their ratio are what count.
Numba compilation and the cached TIM matrix are warmed up first and excluded, as in a stage,
which compiles once and then processes many clips.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Callable

import numpy as np

from mer.features.lbptop import lbp_top, lbp_top_reference
from mer.temporal.tim import tim, tim_reference


@dataclass
class Case:
    """One benchmark: ``ours(*args)`` against ``reference(*args)`` on ``make_args()``."""

    name: str
    what: str
    make_args: Callable[[], tuple]
    ours: Callable[..., Any]
    reference: Callable[..., Any]
    agree: Callable[[Any, Any], str]          # raises AssertionError when outputs disagree
    min_ratio: float | None = None            # target: reference / ours, at least
    max_ms: float | None = None               # target: ours' median, at most
    reference_runs: int | None = None         # cap on timed reference runs (a reference of minutes)
    info: dict = field(default_factory=dict)


def _agree_uint8(ours: np.ndarray, ref: np.ndarray) -> str:
    diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
    assert ours.shape == ref.shape and ours.dtype == ref.dtype and diff.max() <= 1, diff.max()
    return f"max |diff| {diff.max()} gray level, {np.mean(diff == 0):.4%} identical"


def agree_within(tol: float):
    """A check for float arrays: same shape, max |ours - ref| <= ``tol``; every module uses it."""
    def agree(ours: np.ndarray, ref: np.ndarray) -> str:
        diff = float(np.abs(ours - ref).max())
        assert ours.shape == ref.shape and diff <= tol, diff
        return f"max |diff| {diff:.1e} over {ours.size} values"
    return agree


_agree_feature = agree_within(1e-7)


def _tim_args() -> tuple:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (100, 140, 120), dtype=np.uint8), 64      # (n, H, W) gray


def _lbp_args(radius: int) -> Callable[[], tuple]:
    def make() -> tuple:
        rng = np.random.default_rng(1)
        vol = rng.integers(0, 256, (16, 112, 112), dtype=np.uint8)           # (T, H, W) gray
        return vol, (radius,) * 3, (1, 2, 4, 8)
    return make


CASES = [
    Case("tim_100_to_64", "TIM 100 -> 64 frames, 140x120 (HxW) gray uint8",
         _tim_args, tim, tim_reference, _agree_uint8, min_ratio=50.0),
    Case("lbptop_r1", "LBP-TOP 16x112x112 uint8, R=1, 85 blocks (15,045 values)",
         _lbp_args(1), lbp_top, lbp_top_reference, _agree_feature, min_ratio=10.0, max_ms=5.0),
    Case("lbptop_r3", "LBP-TOP 16x112x112 uint8, R=3, 85 blocks (no target)",
         _lbp_args(3), lbp_top, lbp_top_reference, _agree_feature),
]


def _time(fn: Callable[..., Any], args: tuple) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def measure(case: Case, rounds: int = 15) -> dict:
    """Check agreement, warm up, then time ours and the reference interleaved. Times in ms."""
    args = case.make_args()
    ours_out = case.ours(*args)                                        # also the warm-up
    start = time.perf_counter()
    ref_out = case.reference(*args)
    first_ref = time.perf_counter() - start
    agreement = case.agree(ours_out, ref_out)
    first_ours = min(_time(case.ours, args) for _ in range(3))
    per_round = int(min(50, max(1, first_ref / max(first_ours, 1e-9))))  # ~equal time for both
    ours_s, ref_s = [], []
    if case.reference_runs is not None:      # a slow reference: its runs so far count
        rounds = max(0, min(rounds, case.reference_runs) - 1)
        ours_s, ref_s = [first_ours], [first_ref]
    for _ in range(rounds):
        ours_s.extend(_time(case.ours, args) for _ in range(per_round))
        ref_s.append(_time(case.reference, args))
    ours_ms, ref_ms = 1e3 * median(ours_s), 1e3 * median(ref_s)
    ratio = ref_ms / ours_ms
    met = ((case.min_ratio is None or ratio >= case.min_ratio)
           and (case.max_ms is None or ours_ms <= case.max_ms))
    return {"name": case.name, "what": case.what, "ours_ms": ours_ms, "reference_ms": ref_ms,
            "ratio": ratio, "min_ratio": case.min_ratio, "max_ms": case.max_ms,
            "target_met": met, "agreement": agreement,
            "runs": {"ours": len(ours_s), "reference": len(ref_s)}}
