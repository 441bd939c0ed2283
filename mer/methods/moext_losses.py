"""MoExt's pre-training losses (paper §3.5, eq. 5-9) as small pure functions.

Shapes: a batch of ``n`` input sets; each set is the onset expansion set and the apex expansion
set, ``m`` views each, so ``2m`` instances per set.  Instance order within a set is
``[onset view 0..m-1, apex view 0..m-1]`` (:func:`expansion_labels` gives each instance's frame).

``f`` (the paper's map "into the high-dimensional space") is the caller's projection head; these
functions take its outputs.  The paper does not say whether f's outputs are normalised; a margin
eps in [0.2, 0.5] only has a fixed meaning on a bounded scale, so the method L2-normalises them
(distances in [0, 2]) before calling these functions.  The ``*_loop`` twins are the equations
written term by term, for the tests.
"""

from __future__ import annotations

import torch


def expansion_labels(m: int) -> torch.Tensor:
    """(2m,) frame of each instance of a set: 0 = onset expansion set, 1 = apex expansion set."""
    return torch.cat([torch.zeros(m, dtype=torch.long), torch.ones(m, dtype=torch.long)])


def reconstruction_loss(apex: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
    """L_re (eq. 5): mean absolute difference between the apex frames and their reconstructions.

    The paper's 1/n sum |X_a - X~_a| leaves the per-image norm unspecified; the mean over pixels
    and channels keeps the loss on the image's scale whatever the input size.  (N, 3, H, W) x2.
    """
    return (apex - reconstructed).abs().mean()


def shape_texture_loss(f_anchor: torch.Tensor, f_shape: torch.Tensor, f_texture: torch.Tensor,
                       eps: float) -> torch.Tensor:
    """L_st (eq. 6): max(0, ||f(S_bar) - f(S_ij)|| - ||f(S_ij) - f(T_ij)|| + eps), averaged.

    ``f_anchor`` (D,) is f of the batch-mean shape feature S_bar (eq. 7); ``f_shape`` and
    ``f_texture`` (n, 2m, D) are f of every instance's shape and texture features.
    """
    to_anchor = (f_shape - f_anchor).norm(dim=-1)               # (n, 2m)
    to_texture = (f_shape - f_texture).norm(dim=-1)             # (n, 2m)
    return torch.relu(to_anchor - to_texture + eps).mean()


def shape_shape_loss(f_shape: torch.Tensor, eps: float) -> torch.Tensor:
    """L_ss (eq. 8): within a set, instances of the same expansion set are pulled together
    (distance), of different sets pushed at least ``eps`` apart (hinge); mean over n, 2m, 2m.

    ``f_shape`` (n, 2m, D) in the order of :func:`expansion_labels`.
    """
    two_m = f_shape.shape[1]
    y = expansion_labels(two_m // 2).to(f_shape.device)         # (2m,)
    same = (y[:, None] == y[None, :]).to(f_shape.dtype)         # (2m, 2m)
    diff = f_shape[:, :, None, :] - f_shape[:, None, :, :]      # (n, 2m, 2m, D)
    # the norm's gradient at 0 (j = k) is undefined: a tiny floor keeps it finite
    d = (diff.pow(2).sum(-1) + 1e-12).sqrt()                    # (n, 2m, 2m)
    return (same * d + (1 - same) * torch.relu(eps - d)).mean()


def pretraining_loss(l_re: torch.Tensor, l_st: torch.Tensor, l_ss: torch.Tensor,
                     alpha: tuple[float, float]) -> torch.Tensor:
    """L = L_re + alpha_1 L_st + alpha_2 L_ss (eq. 9)."""
    return l_re + alpha[0] * l_st + alpha[1] * l_ss


# ------------------------------------------------------------------ loop references (tests)
def shape_texture_loss_loop(f_anchor, f_shape, f_texture, eps: float) -> float:
    n, two_m, _ = f_shape.shape
    total = 0.0
    for i in range(n):
        for j in range(two_m):
            a = float(torch.linalg.norm(f_anchor - f_shape[i, j]))
            t = float(torch.linalg.norm(f_shape[i, j] - f_texture[i, j]))
            total += max(0.0, a - t + eps)
    return total / n / two_m


def shape_shape_loss_loop(f_shape, eps: float) -> float:
    n, two_m, _ = f_shape.shape
    frame = [0] * (two_m // 2) + [1] * (two_m // 2)
    total = 0.0
    for i in range(n):
        for j in range(two_m):
            for k in range(two_m):
                d = float(torch.linalg.norm(f_shape[i, j] - f_shape[i, k]))
                total += d if frame[j] == frame[k] else max(0.0, eps - d)
    return total / n / two_m / two_m
