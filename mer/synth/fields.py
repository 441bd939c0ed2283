"""Smooth displacement fields from a few control points: the one kernel behind morphs and AUs.

Each control point i sits at p_i and moves by v_i; its influence at x is the Gaussian
w_i(x) = exp(-|x - p_i|^2 / 2 sigma^2).  The field is

    d(x) = sum_i w_i(x) v_i / max(1, sum_i w_i(x))

Where the influences overlap (sum > 1) this is a weighted *average* of the control displacements,
so |d| never exceeds the largest |v_i|: overlapping Gaussians cannot add up to a larger movement
(an unnormalised sum did, and broke face detection).  Away from the points (sum < 1) it fades
smoothly to zero, so the rest of the face stays still.

Fields are evaluated on a pixel grid with two matrix products, since a 2-D Gaussian separates into
x and y factors: sum_i gy_i(y) gx_i(x) v_i = Gy^T diag(v) Gx.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _influence(coords: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    """(K, N) Gaussian factors of K centres along one axis at N coordinates."""
    diff = coords[None, :] - centres[:, None]  # (K, N)
    return np.exp(-0.5 * (diff / sigma) ** 2)


def field_on_grid(points: np.ndarray, vectors: np.ndarray, sigma: float, xs: np.ndarray,
                  ys: np.ndarray) -> np.ndarray:
    """The normalised field at every (x, y) of the grid ``xs`` x ``ys``: (len(ys), len(xs), 2).

    points, vectors: (K, 2) float, x then y, in pixels.  Computed in float32 (the result is a
    sub-pixel warp; 1e-7 relative error is far below anything visible).
    """
    points = np.asarray(points, np.float32).reshape(-1, 2)
    vectors = np.asarray(vectors, np.float32).reshape(-1, 2)
    out = np.zeros((len(ys), len(xs), 2), np.float32)
    if len(points) == 0:
        return out
    gx = _influence(np.asarray(xs, np.float32), points[:, 0], np.float32(sigma))  # (K, W)
    gy = _influence(np.asarray(ys, np.float32), points[:, 1], np.float32(sigma)).T.copy()  # (H, K)
    inv = 1.0 / np.maximum(gy @ gx, 1.0)  # (H, W)
    out[..., 0] = (gy @ (gx * vectors[:, 0:1])) * inv
    out[..., 1] = (gy @ (gx * vectors[:, 1:2])) * inv
    return out


def field_at(points: np.ndarray, vectors: np.ndarray, sigma: float,
             where: np.ndarray) -> np.ndarray:
    """The same field at scattered positions ``where`` (N, 2): (N, 2) float64."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    vectors = np.asarray(vectors, np.float64).reshape(-1, 2)
    where = np.asarray(where, np.float64).reshape(-1, 2)
    if len(points) == 0:
        return np.zeros_like(where)
    d2 = ((where[:, None, :] - points[None, :, :]) ** 2).sum(-1)  # (N, K)
    w = np.exp(-0.5 * d2 / sigma**2)
    return (w @ vectors) / np.maximum(w.sum(1, keepdims=True), 1.0)


@dataclass(frozen=True)
class Layer:
    """One set of control points with their displacements and reach."""

    points: np.ndarray  # (K, 2) float, pixels
    vectors: np.ndarray  # (K, 2) float, pixels
    sigma: float  # pixels


@dataclass(frozen=True)
class Field:
    """A displacement field made of normalised layers that add up (e.g. coarse + fine morph)."""

    layers: tuple[Layer, ...]

    def on_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """(len(ys), len(xs), 2) float32."""
        out = np.zeros((len(ys), len(xs), 2), np.float32)
        for layer in self.layers:
            out += field_on_grid(layer.points, layer.vectors, layer.sigma, xs, ys)
        return out

    def at(self, where: np.ndarray) -> np.ndarray:
        """(N, 2) float64 at scattered positions."""
        where = np.asarray(where, np.float64).reshape(-1, 2)
        out = np.zeros_like(where)
        for layer in self.layers:
            out += field_at(layer.points, layer.vectors, layer.sigma, where)
        return out

    def follow(self, targets: np.ndarray, iterations: int = 50, tol: float = 1e-4) -> np.ndarray:
        """Where content from ``targets`` lands after a backward warp by this field.

        A backward warp shows, at pixel y, the content that sat at y - d(y).  The content of
        ``t`` therefore appears at the y solving y = t + d(y); a fixed-point iteration converges
        because the fields used here have a spatial gradient well below 1.  Returns (N, 2).
        """
        targets = np.asarray(targets, np.float64).reshape(-1, 2)
        y = targets.copy()
        for _ in range(iterations):
            y, prev = targets + self.at(y), y
            if np.abs(y - prev).max() < tol:
                break
        return y
