"""TGSR's salient facial regions drawn over a face, one panel per grid scale (the paper's Fig. 2).

TGSR keeps kappa of the 85 LBP-TOP blocks; ||C_i||_F says how much block i weighs in the
prediction.  Each panel shows one grid (1x1, 2x2, 4x4, 8x8) over the face, with every selected
block shaded in proportion to its weight relative to the heaviest block, so the picture reads as
"where on the face the classifier looks".  Blocks follow :mod:`mer.features.lbptop`'s layout and
geometry: grids in order, blocks row-major, block (i, j) of a g x g grid covering the pixels with
``y*g // H == i`` and ``x*g // W == j``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mer.errors import MerError

SHADE = np.array([255, 40, 40], np.float64)      # RGB of a selected block at full weight
GRID_LINE = np.array([255, 255, 255], np.float64)
MAX_ALPHA = 0.7                                  # opacity of the heaviest block
GAP = 6                                          # white pixels between panels


def grids_for(n_blocks: int) -> tuple[int, ...]:
    """The grids (1x1, 2x2, 4x4, ...) of the lbptop stage that give ``n_blocks`` blocks: 85 ->
    (1, 2, 4, 8).  Other grid lists cannot be told apart from the weights alone: pass them."""
    grids: tuple[int, ...] = ()
    while sum(g * g for g in grids) < n_blocks:
        grids += (2 ** len(grids),)
    if sum(g * g for g in grids) != n_blocks:
        raise MerError(f"{n_blocks} blocks are not grids 1, 2, 4, ... (1, 5, 21, 85, 341 blocks)",
                       fix="pass the lbptop.grids used for the features")
    return grids


def _check(weights: np.ndarray, face: np.ndarray, grids: tuple[int, ...]) -> np.ndarray:
    weights = np.asarray(weights, np.float64)
    n_blocks = sum(g * g for g in grids)
    if weights.shape != (n_blocks,) or not np.isfinite(weights).all() or (weights < 0).any():
        raise MerError(f"region weights must be {n_blocks} finite non-negative values (one per "
                       f"block of grids {list(grids)}), got shape {weights.shape}",
                       fix="pass TGSR's group_weights_ (||C_i|| per block)")
    if face.dtype != np.uint8 or face.ndim not in (2, 3) or (face.ndim == 3 and face.shape[2] != 3):
        raise MerError(f"the face must be an (H, W, 3) or (H, W) uint8 image, got {face.dtype} "
                       f"{face.shape}", fix="pass a cropped face frame, e.g. from the tim stage")
    if min(face.shape[:2]) < max(grids):
        raise MerError(f"the face ({face.shape[0]}x{face.shape[1]}) is smaller than the "
                       f"{max(grids)}x{max(grids)} grid", fix="pass a larger face image")
    return weights


def draw_salient_regions(weights: np.ndarray, face: np.ndarray,
                         grids: Sequence[int] = (1, 2, 4, 8)) -> np.ndarray:
    """Selected blocks over ``face``, one panel per grid, side by side. -> (H, W', 3) uint8 RGB

    weights: (sum g*g,) ||C_i||_F per block (0 = not selected); face: (H, W, 3) or (H, W) uint8.
    W' = len(grids) * W + (len(grids) - 1) * GAP.  A selected block is blended towards
    :data:`SHADE` with opacity MAX_ALPHA * weight / max weight and outlined; every block boundary
    is drawn thin, so unselected blocks stay visible as the grid.
    """
    grids = tuple(int(g) for g in grids)
    weights = _check(weights, face, grids)
    rgb = np.repeat(face[:, :, None], 3, 2) if face.ndim == 2 else face
    base = rgb.astype(np.float64)                                              # (H, W, 3)
    h, w = face.shape[:2]
    top = weights.max()
    rows, cols = np.arange(h), np.arange(w)
    panels, start = [], 0
    for g in grids:
        block = weights[start:start + g * g].reshape(g, g)                    # (g, g) row-major
        start += g * g
        by, bx = rows * g // h, cols * g // w                                 # pixel -> block
        alpha = MAX_ALPHA * block[by[:, None], bx[None, :]] / top if top > 0 else np.zeros((h, w))
        panel = base * (1 - alpha[:, :, None]) + SHADE * alpha[:, :, None]    # (H, W, 3)
        edge_y = np.flatnonzero(np.diff(by)) + 1                               # first row of a block
        edge_x = np.flatnonzero(np.diff(bx)) + 1
        panel[edge_y] = 0.5 * panel[edge_y] + 0.5 * GRID_LINE
        panel[:, edge_x] = 0.5 * panel[:, edge_x] + 0.5 * GRID_LINE
        panel = np.clip(np.round(panel), 0, 255).astype(np.uint8)
        y0 = np.concatenate([[0], edge_y])
        y1 = np.concatenate([edge_y, [h]]) - 1
        x0 = np.concatenate([[0], edge_x])
        x1 = np.concatenate([edge_x, [w]]) - 1
        for i, j in zip(*np.nonzero(block > 0)):                              # outline selected
            cv2.rectangle(panel, (int(x0[j]), int(y0[i])), (int(x1[j]), int(y1[i])),
                          tuple(int(v) for v in SHADE), 1)
        cv2.putText(panel, f"{g}x{g}", (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (255, 255, 255), 1, cv2.LINE_AA)
        panels.append(panel)
    gap = np.full((h, GAP, 3), 255, np.uint8)
    out = [panels[0]]
    for panel in panels[1:]:
        out += [gap, panel]
    return np.concatenate(out, 1)
