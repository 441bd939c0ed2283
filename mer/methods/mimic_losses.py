"""Losses of the annotation-mimicking network (registry name ``mimic``): pure functions of tensors.

* :func:`jaccard` -- the AU similarity w_ij = |AU_i ∩ AU_j| / |AU_i ∪ AU_j| (eq. 4) of every pair
  of a batch, from multi-hot AU rows: one matrix product, no loop over pairs (the paper stresses
  that w_ij must not slow training down).
* :func:`wscl` -- the weighted supervised contrastive loss (eq. 5) on the fused features X_F,
  vectorised; :func:`wscl_loop` is the same sum written pair by pair, the reference the tests and
  the benchmark compare against.
* :func:`weighted_ce` -- the class-weighted cross-entropy of one head (eq. 7 is its sum over the
  eyes and mouth heads); the weights are eq. 6 (``mer.nn.fit.class_weights``).

Conventions where the printed equations leave a choice (written once here, used by both WSCL forms):

* X_F is L2-normalised before the dot products, as in supervised contrastive learning (SCL), which
  eq. 5 extends: X_F is a non-negative 1024-vector of unbounded scale, and exp(X_F^i X_F^j / tau)
  of raw features overflows float32 at any useful tau.
* The anchor itself is left out of the softmax denominator and of the normaliser sum_k w_ik (SCL's
  convention; the numerator already excludes j = i): with the anchor kept, the constant term
  exp(1/tau) would dominate every denominator at tau < 1.
* An anchor that shares no AU with any other sample of the batch (sum_k w_ik = 0) has no positive
  and adds nothing; the loss is the mean over the batch's N anchors (eq. 5 prints a sum; a mean
  keeps lambda's balance with the mean cross-entropy independent of the batch size).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def jaccard(au: torch.Tensor) -> torch.Tensor:
    """Eq. 4 for every pair: (N, A) multi-hot AU rows -> (N, N) in [0, 1]; 0 where both are empty."""
    au = au.float()                                                         # (N, A)
    inter = au @ au.T                                                       # (N, N) |AU_i ∩ AU_j|
    size = au.sum(1)                                                        # (N,)
    union = size[:, None] + size[None, :] - inter                           # (N, N)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def wscl(features: torch.Tensor, au: torch.Tensor, tau: float) -> torch.Tensor:
    """Weighted supervised contrastive loss (eq. 5), vectorised: () scalar.

    ``features`` (N, D) are the fused features X_F, ``au`` (N, A) multi-hot AU sets.
    """
    n = features.shape[0]
    z = F.normalize(features, dim=1)                                        # (N, D)
    logits = z @ z.T / tau                                                  # (N, N)
    self_mask = torch.eye(n, dtype=torch.bool, device=features.device)      # (N, N)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)        # (N, N), -inf on diag
    w = jaccard(au).masked_fill(self_mask, 0.0)                             # (N, N) w_ij, i != j
    norm = w.sum(1)                                                         # (N,) sum_k w_ik
    weighted = (w * log_prob.masked_fill(self_mask, 0.0)).sum(1)            # (N,)
    per_anchor = torch.where(norm > 0, -weighted / norm.clamp(min=1e-12), torch.zeros_like(norm))
    return per_anchor.mean()


def wscl_loop(features: torch.Tensor, au_sets: list[set[str]], tau: float) -> torch.Tensor:
    """Eq. 5 written as the paper prints it, one pair at a time (the tests' reference; slow)."""
    n = features.shape[0]
    z = F.normalize(features, dim=1)
    total = features.new_zeros(())
    for i in range(n):
        others = [k for k in range(n) if k != i]
        w = {j: (len(au_sets[i] & au_sets[j]) / len(au_sets[i] | au_sets[j])
                 if au_sets[i] | au_sets[j] else 0.0) for j in others}
        norm = sum(w.values())
        if norm == 0:
            continue
        denom = torch.logsumexp(torch.stack([z[i] @ z[k] / tau for k in others]), 0)
        for j in others:
            if w[j] > 0:
                total = total - w[j] / norm * (z[i] @ z[j] / tau - denom)
    return total / n


def weighted_ce(logits: torch.Tensor, y: torch.Tensor, class_w: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with class weights w_c (eq. 6-7 for one head): () scalar.

    Normalised by the summed weights of the batch's labels (PyTorch's weighted mean), so the loss
    scale does not change with the batch's class mix.  ``logits`` (N, K), ``y`` (N,), ``class_w`` (K,).
    """
    return F.cross_entropy(logits, y, weight=class_w)
