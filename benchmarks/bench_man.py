"""MAN's pre-network kernels against straightforward per-clip / per-frame references.

``man_aggregate``: eq. 4 over a LOSO fold's worth of clips (250 clips x 64 frames x 64 features),
one vectorised call against a loop that computes each clip's statistics on its own.
``man_faces``: the 120 x 140 face of 64 TIM frames (128 px crops), one affine warp per frame
against a reference that crops the window with sub-pixel bilinear sampling written in numpy.
``man_train_steps``: eight training steps of the quick profile's network (4 branches, width 8,
batches of 64 frames at 2-pixel cells) as :meth:`MAN.fit` runs them (channels-last, no NaN fill
of new tensors) against torch's defaults under deterministic algorithms (contiguous, NaN fill);
both from the same initial weights and dropout masks, so the losses of every step must agree.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from benchmarks.bench_kernels import Case, agree_within
from mer.methods.man import aggregate, no_nan_fill
from mer.methods.man_model import MAN as MANNet
from mer.methods.man_rois import BRANCHES, face_window, faces_from_crops, roi_slices


def _features() -> tuple:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(250, 64, 64)).astype(np.float32),)             # (n, T, D)


def _aggregate_loop(s: np.ndarray) -> np.ndarray:
    rows = []
    for clip in s:                                                            # (T, D)
        rows.append(np.concatenate([clip.mean(0), clip.std(0), np.median(clip, 0)]))
    return np.stack(rows)                                                     # (n, 3 D)


def _crops() -> tuple:
    rng = np.random.default_rng(1)
    # smooth like a face: OpenCV samples at 1/32-pixel steps, which on pixel noise alone would
    # differ from exact bilinear weights by up to 8 levels
    base = cv2.GaussianBlur(rng.uniform(0, 255, (128, 128, 3)).astype(np.float32), (0, 0), 2.0)
    frames = np.clip(base[None] * np.linspace(0.9, 1.1, 64)[:, None, None, None], 0, 255).astype(np.uint8)
    return (frames,)                                                          # (T, S, S, 3)


def _faces_ours(frames: np.ndarray) -> np.ndarray:
    return faces_from_crops(frames, 0.32, 0.30, 10)


def _faces_reference(frames: np.ndarray) -> np.ndarray:
    """Bilinear sampling of the face window at each face pixel's centre, border replicated."""
    t, s = frames.shape[:2]
    left, top, width, height = face_window(s, 0.32, 0.30)
    u = (np.arange(120) + 0.5) * width / 120 + left - 0.5                    # (120,) crop x
    v = (np.arange(140) + 0.5) * height / 140 + top - 0.5                    # (140,) crop y
    x0, y0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fx, fy = (u - x0)[None, :, None], (v - y0)[:, None, None]
    out = np.empty((t, 140, 120, 3), np.uint8)
    for i in range(t):
        img = frames[i].astype(np.float64)                                    # (S, S, 3)
        rows = [img[np.clip(y0 + dy, 0, s - 1)] for dy in (0, 1)]             # 2 x (140, S, 3)
        left_px, right_px = np.clip(x0, 0, s - 1), np.clip(x0 + 1, 0, s - 1)
        top_row = rows[0][:, left_px] * (1 - fx) + rows[0][:, right_px] * fx  # (140, 120, 3)
        bottom = rows[1][:, left_px] * (1 - fx) + rows[1][:, right_px] * fx
        out[i] = np.clip(np.round(top_row * (1 - fy) + bottom * fy), 0, 255).astype(np.uint8)
    return out


def _agree_faces(ours: np.ndarray, ref: np.ndarray) -> str:
    diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
    assert ours.shape == ref.shape and diff.max() <= 2, diff.max()   # OpenCV: 5-bit weights
    return f"max |diff| {diff.max()} gray levels, mean {diff.mean():.3f}"


CASES = [
    Case("man_aggregate", "MAN eq. 4 [mean, std, median], 250 clips x 64 frames x 64 features: "
         "vectorised vs per-clip loop", _features, aggregate, _aggregate_loop, agree_within(1e-5),
         min_ratio=1.5),
    Case("man_faces", "MAN 120x140 face of 64 TIM frames (128 px): cv2.warpAffine vs numpy "
         "bilinear sampling", _crops, _faces_ours, _faces_reference, _agree_faces, min_ratio=3.0),
]


def _steps_args() -> tuple:
    rng = np.random.default_rng(2)
    faces = torch.from_numpy(rng.normal(size=(8, 64, 28, 24, 3)).astype(np.float32))  # (steps, b, h, w, 3)
    labels = torch.from_numpy(rng.integers(0, 5, (8, 64)))                       # (steps, b)
    torch.manual_seed(0)
    state = MANNet(BRANCHES, 5, 8, (1,), True).state_dict()
    return faces, labels, state


def _train_steps(faces: torch.Tensor, labels: torch.Tensor, state: dict, fast: bool) -> np.ndarray:
    """The loss of each of the Adam steps (one per batch); one thread, deterministic algorithms.

    Losses, not weights: Adam's first steps move every weight by about ``lr`` whatever the size of
    its gradient, so a float-rounding difference in a near-zero gradient flips a whole step."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    net = MANNet(BRANCHES, 5, 8, (1,), True)
    net.load_state_dict(state)
    if fast:
        net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.003, weight_decay=1e-4)
    net.train()
    torch.manual_seed(1)                                                         # the same dropout masks
    losses = []
    for x, y in zip(faces, labels):
        x = x.permute(0, 3, 1, 2)                                                # (b, 3, h, w) channels-last view
        x = x if fast else x.contiguous()
        inputs = {name: x[:, :, rows, cols] for name in BRANCHES
                  for rows, cols in [roi_slices(name, 2)]}                       # name -> (b, 3, h_r, w_r)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(inputs), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return np.array(losses)                                                      # (steps,)


def _steps_ours(faces, labels, state) -> np.ndarray:
    with no_nan_fill():
        return _train_steps(faces, labels, state, fast=True)


def _steps_reference(faces, labels, state) -> np.ndarray:
    return _train_steps(faces, labels, state, fast=False)


CASES.append(Case("man_train_steps", "MAN quick network, 8 Adam steps of 64 frames (4 branches, width 8, "
                  "28x24 face): channels-last without NaN fill vs torch defaults", _steps_args,
                  _steps_ours, _steps_reference, agree_within(1e-4), min_ratio=1.1))
