"""MoExt's two hot spots: reading a clip's onset and apex from its crop artifact, and L_ss.

* ``moext_key_frames``: :func:`mer.methods.moext.key_frames` seeks to the two frames inside the
  uncompressed npz; the reference loads the whole (T, 224, 224, 3) array (what ``load_npz`` does)
  and indexes it.  A LOSO run reads every clip's pair once per process, the pre-training corpus's
  too, so this is the data-loading cost of the method (a SynthME clip: ~10 MB, its pair 0.3 MB).
* ``moext_shape_shape_loss``: eq. 8 on a paper-sized batch (20 input sets, m = 3, 128-dim f
  outputs) as one tensor expression against the triple loop of the printed equation.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_kernels import Case, agree_within
from mer.io import load_npz, save_npz
from mer.methods.moext import key_frames
from mer.methods.moext_losses import shape_shape_loss, shape_shape_loss_loop

_DIR = Path(tempfile.mkdtemp(prefix="bench_moext_"))


def _crop_file() -> tuple:
    path = _DIR / "clip.npz"
    if not path.exists():
        rng = np.random.default_rng(0)
        frames = rng.integers(0, 256, (60, 224, 224, 3), dtype=np.uint8)    # (T, S, S, 3)
        save_npz(path, compress=False, frames=frames, apex_index=np.int64(31),
                 landmarks=np.zeros((60, 68, 2), np.float32))
    return (path,)


def _ours_frames(path: Path) -> np.ndarray:
    return key_frames(path)[0]


def _full_load(path: Path) -> np.ndarray:
    data = load_npz(path)
    return data["frames"][[0, int(data["apex_index"])]]


def _agree_frames(ours: np.ndarray, ref: np.ndarray) -> str:
    assert ours.shape == ref.shape and np.array_equal(ours, ref)
    return f"identical {ours.shape} uint8 (max |diff| 0)"


def _features() -> tuple:
    g = torch.Generator().manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(20, 6, 128, generator=g), dim=-1)
    return f, 0.3


def _ours_loss(f: torch.Tensor, eps: float) -> float:
    return float(shape_shape_loss(f, eps))


def _agree_loss(ours: float, ref: float) -> str:
    return agree_within(1e-5 * abs(ref))(np.array([ours]), np.array([ref])) + f" (loss {ours:.6f})"


CASES = [
    Case("moext_key_frames", "onset + apex of a 60-frame 224-px crop npz: seek vs whole array",
         _crop_file, _ours_frames, _full_load, _agree_frames, min_ratio=5.0),
    Case("moext_shape_shape_loss", "L_ss (eq. 8), 20 sets x 2m = 6 x 128: tensor vs loop",
         _features, _ours_loss, shape_shape_loss_loop, _agree_loss, min_ratio=10.0),
]
