"""DeRe-GRL's constraints on action features and weights (eq. 7-10), as small pure functions.

Centres are batch statistics, never learned parameters: the mean centre loss's c_i is "the mean
of F_A^i in a mini-batch" (eq. 7), and the weight centre loss uses the same rule per class (the
mean W of the batch's clips of that class), so a batch's loss is its within-class scatter of W.
The centres are not detached: the gradient moves every sample towards its centre and the centre
towards them, which is the gradient of that scatter.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def mean_centre_loss(actions: torch.Tensor) -> torch.Tensor:
    """L_MC (eq. 7) of action features ``(N, K, D)``: ``1/(2N) sum_n sum_i ||F_A^{n,i} - c_i||^2``."""
    centres = actions.mean(0, keepdim=True)                             # (1, K, D) c_i
    return (actions - centres).pow(2).sum() / (2 * actions.shape[0])


def weight_centre_loss(weights: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L_WC (eq. 8) of weights ``(N, K)`` with labels ``(N,)``: mean ``||W_i - W_{l_i}||^2``, the
    class centre W_{l_i} being the batch mean of W over the clips of class l_i."""
    classes, inverse = torch.unique(y, return_inverse=True)             # (k',), (N,)
    sums = torch.zeros(len(classes), weights.shape[1], dtype=weights.dtype,
                       device=weights.device).index_add(0, inverse, weights)  # (k', K)
    counts = torch.bincount(inverse, minlength=len(classes)).to(weights.dtype)  # (k',)
    centres = sums / counts[:, None]                                    # (k', K)
    return (weights - centres[inverse]).pow(2).sum(1).mean()


def balance_loss(weights: torch.Tensor) -> torch.Tensor:
    """L_B (eq. 9) of weights ``(N, K)``: ``||mean_n W_n - 1/K||^2``, towards uniform weights."""
    k = weights.shape[1]
    return (weights.mean(0) - 1.0 / k).pow(2).sum()


def total_loss(logits: torch.Tensor, y: torch.Tensor, actions: torch.Tensor | None,
               weights: torch.Tensor | None, lambdas: tuple[float, float, float],
               class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 10: ``L_ME + l1 L_MC + l2 L_WC + l3 L_B``; terms whose tensor the ablation lacks (no
    ADM: no action features; no RRM: no weights) or whose lambda is 0 are left out."""
    l1, l2, l3 = lambdas
    loss = F.cross_entropy(logits, y, weight=class_weight)
    if actions is not None and l1:
        loss = loss + l1 * mean_centre_loss(actions)
    if weights is not None and l2:
        loss = loss + l2 * weight_centre_loss(weights, y)
    if weights is not None and l3:
        loss = loss + l3 * balance_loss(weights)
    return loss
