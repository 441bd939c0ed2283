"""Motion magnification against its straightforward references, timed in the same run.

* ``evm_64x140x120``: linear EVM of a 64-frame 140x120 RGB clip (the defaults: ideal 0.5-15 Hz
  band at 200 fps, alpha 3, lambda_c 16, 6 levels).  Ours filters every frame of a level as one
  multi-channel OpenCV image, applies the temporal filter as one matrix product and skips levels
  whose amplification is 0; the reference builds and collapses a pyramid per frame in a Python
  loop and filters each level with an FFT.
* ``magnet_224``: MagNet on one 224x224 pair.  Ours runs under ``torch.inference_mode`` with
  channels-last tensors and the network's in-place activations; the reference is one plain
  ``model(a, b, alpha)`` call under ``torch.no_grad`` on contiguous NCHW tensors.  Convolutions
  are ~85% of the time, so there is little to win on a CPU; the ratio shows how little.  Listed
  only when the MIT weights are found (``MER_FIXTURES``, else ``../shared/fixtures``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmarks.bench_kernels import Case, agree_within
from mer.motion.evm import evm, evm_reference

FIXTURES = Path(os.environ.get("MER_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures"))
WEIGHTS = FIXTURES / "models" / "magnet_epoch12_loss7.28e-02.pth"


def _evm_args() -> tuple:
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (64, 140, 120, 3), dtype=np.uint8)     # (T, H, W, 3) RGB
    return clip, 200.0, 3.0




def _magnet_case() -> Case:
    import torch

    from mer.motion.magnet import load_magnet, magnet_pairs, magnet_pairs_reference

    models: dict[str, object] = {}

    def make_args() -> tuple:
        models["plain"] = load_magnet(WEIGHTS, "cpu")
        models["fast"] = load_magnet(WEIGHTS, "cpu").to(memory_format=torch.channels_last)
        rng = np.random.default_rng(2)
        onset = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        apex = np.clip(np.roll(onset.astype(np.int16), 1, axis=1) + rng.integers(-3, 4, onset.shape),
                       0, 255).astype(np.uint8)
        return onset, apex[None], 3.0                                    # (224, 224, 3), (1, ...)

    def ours(onset, targets, alpha):
        return magnet_pairs(models["fast"], onset, targets, alpha)

    def reference(onset, targets, alpha):
        return magnet_pairs_reference(models["plain"], onset, targets, alpha)

    return Case("magnet_224", "MagNet one 224x224 pair, alpha 3, CPU (inference_mode, channels-last)",
                make_args, ours, reference, agree_within(1e-4))


CASES: list[Case] = [
    Case("evm_64x140x120", "EVM 64 frames 140x120 RGB, alpha 3, ideal 0.5-15 Hz, 6 levels",
         _evm_args, evm, evm_reference, agree_within(1e-3), min_ratio=2.0),
]
if WEIGHTS.is_file():
    CASES.append(_magnet_case())
