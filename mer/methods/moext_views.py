"""MoExt's two kinds of image augmentation, kept apart because they serve different ends.

* :func:`augment_pairs`, the training-set expansion of §4.1.2: every (onset, apex) pair is
  mirrored and rotated in [-10, 10] degrees into ``copies`` versions (the paper: tenfold).  The
  same transform is applied to both frames of a pair, so the motion between them is unchanged.
  Objective learning expands its training set once, offline (the paper's "ten times the original
  data size"); pre-training draws the copies afresh for each batch (same count per epoch, memory
  of one copy: a tenfold CAS(ME)^3 pool at 224 px would not fit).
* :func:`expansion_sets`, the view expansion sets of §3.5 for the contrastive losses: view 0 is the
  frame itself; each further view applies one photometric operation (random noise, contrast
  increase, grayscale), the operations drawn at random without replacement per input set (the
  paper: two of the three, m = 3).  An input set's onset and apex get the same operations (the
  noise itself is drawn per image), so the operation never differs between the two frames.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

#: the photometric operations of the view expansion sets, in the order of their index
OPERATIONS = ("noise", "contrast", "grayscale")
#: BT.601 luma of RGB (the crop artifacts are RGB)
LUMA = (0.299, 0.587, 0.114)


def draw_transforms(n: int, max_rotation: float, mirror: bool,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n,) mirror flags (probability 0.5 when ``mirror``) and (n,) angles, uniform in
    +-``max_rotation`` degrees."""
    flips = rng.random(n) < 0.5 if mirror else np.zeros(n, bool)
    return flips, rng.uniform(-max_rotation, max_rotation, n)


def transform_pairs(pairs: np.ndarray, flips: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Mirror and rotate each pair about the centre, both frames alike (border replicated):
    (N, 2, S, S, 3) uint8 -> same; a pair with no flip and angle 0 is left as it is."""
    out = pairs.copy()
    s = pairs.shape[2]
    for k, (flip, angle) in enumerate(zip(flips, angles)):
        if not flip and angle == 0:
            continue
        rot = cv2.getRotationMatrix2D(((s - 1) / 2, (s - 1) / 2), float(angle), 1.0)   # (2, 3)
        for f in range(2):
            img = pairs[k, f, :, ::-1] if flip else pairs[k, f]         # (S, S, 3)
            out[k, f] = cv2.warpAffine(np.ascontiguousarray(img), rot, (s, s),
                                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def augment_pairs(pairs: np.ndarray, copies: int, max_rotation: float, mirror: bool,
                  rng: np.random.Generator) -> np.ndarray:
    """(N, 2, S, S, 3) uint8 pairs -> (N * copies, 2, S, S, 3): copy 0 of each pair is the pair
    itself, the others mirrored and rotated (:func:`draw_transforms`).  Output: pair-major."""
    out = np.repeat(pairs, copies, axis=0)                          # (N * copies, 2, S, S, 3)
    flips, angles = draw_transforms(len(out), max_rotation, mirror, rng)
    first = np.arange(len(out)) % copies == 0                       # the originals
    flips[first], angles[first] = False, 0.0
    return transform_pairs(out, flips, angles)


def photometric(x: torch.Tensor, noise_sigma: float, contrast: float,
                gen: torch.Generator) -> torch.Tensor:
    """Every operation applied to every image: (B, 3, H, W) in [0, 1] -> (3, B, 3, H, W)."""
    noisy = x + noise_sigma * torch.randn(x.shape, generator=gen).to(x.device)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)                      # (B, 1, 1, 1)
    contrasted = (x - mean) * contrast + mean
    luma = torch.tensor(LUMA, dtype=x.dtype, device=x.device)[None, :, None, None]
    gray = (x * luma).sum(1, keepdim=True).expand_as(x)             # (B, 3, H, W)
    return torch.stack([noisy, contrasted, gray]).clamp(0, 1)       # (3, B, 3, H, W)


def draw_operations(batch: int, m: int, gen: torch.Generator) -> torch.Tensor:
    """(B, m - 1) operation indices into :data:`OPERATIONS`, distinct within each row."""
    if not 1 <= m <= len(OPERATIONS) + 1:
        raise ValueError(f"m = {m}: views are the frame plus at most {len(OPERATIONS)} operations")
    keys = torch.rand(batch, len(OPERATIONS), generator=gen)        # (B, 3)
    return keys.argsort(dim=1)[:, :m - 1]                           # (B, m - 1)


def expansion_sets(onset: torch.Tensor, apex: torch.Tensor, m: int, gen: torch.Generator,
                   noise_sigma: float = 0.05, contrast: float = 1.5) -> torch.Tensor:
    """The input sets of §3.5: (B, 3, H, W) onset and apex -> (B, 2m, 3, H, W), per set
    ``[onset view 0..m-1, apex view 0..m-1]`` with view 0 the frame itself."""
    ops = draw_operations(len(onset), m, gen).to(onset.device)      # (B, m - 1)
    rows = torch.arange(len(onset), device=onset.device)[:, None]   # (B, 1)
    sets = []
    for frame in (onset, apex):
        done = photometric(frame, noise_sigma, contrast, gen)       # (3, B, 3, H, W)
        views = done[ops, rows]                                     # (B, m - 1, 3, H, W)
        sets.append(torch.cat([frame[:, None], views], 1))          # (B, m, 3, H, W)
    return torch.cat(sets, 1)                                       # (B, 2m, 3, H, W)
