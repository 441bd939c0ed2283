"""The annotation-mimicking method's WSCL loss (eq. 4-5): one matrix expression against the pair loop.

The paper insists that the AU similarity w_ij must not slow training down; the loop reference is
eq. 5 exactly as printed (one Jaccard and one log-softmax term per pair), on a paper-sized batch
(128 clips, 1024-dimensional X_F, CASME II-like AU sets).
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.bench_kernels import Case
from mer.methods.mimic_losses import wscl, wscl_loop

TAU = 0.07


def _batch() -> tuple:
    rng = np.random.default_rng(0)
    vocab = ["1", "2", "4", "6", "7", "9", "10", "12", "14", "15", "17", "24", "25"]
    sets = [set(rng.choice(vocab, size=int(rng.integers(1, 4)), replace=False)) for _ in range(128)]
    au = torch.tensor([[a in s for a in vocab] for s in sets])                 # (128, 13) bool
    feats = torch.as_tensor(rng.random((128, 1024)), dtype=torch.float32)     # (128, 1024) X_F
    return feats, au, sets


def _ours(feats: torch.Tensor, au: torch.Tensor, sets: list) -> float:
    return float(wscl(feats, au, TAU))


def _loop(feats: torch.Tensor, au: torch.Tensor, sets: list) -> float:
    return float(wscl_loop(feats, sets, TAU))


def _agree(ours: float, ref: float) -> str:
    assert abs(ours - ref) <= 1e-5 * abs(ref), (ours, ref)
    return f"max |diff| {abs(ours - ref):.1e} (loss {ours:.6f} vs {ref:.6f})"


CASES = [
    Case("mimic_wscl_128", "WSCL (eq. 5) on 128 x 1024 X_F with Jaccard AU weights, vs the pair loop",
         _batch, _ours, _loop, _agree, min_ratio=100.0, reference_runs=3),
]
