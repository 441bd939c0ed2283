"""The fixed-epoch training loop of every neural method, with its device and seeding rules.

Why a hand-written loop and not a trainer library: a fold is a few hundred clips that fit in memory
as tensors, the loop is twenty lines, and MER's evaluation rules (no validation on the test fold,
no checkpoint picked by a test score) are easiest to audit when nothing else can do it for us.
Epochs are fixed by params; a method that wants early stopping splits its *training subjects*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from mer.errors import MerError


@dataclass
class TrainParams:
    """Keys every neural method's params section has (its ``Params`` inherits them)."""

    epochs: int = 30            # fixed: never chosen on the test fold
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    device: str = "auto"        # auto (CUDA when present, else CPU) | cpu | cuda | cuda:<n>


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MerError(f"device '{name}' requested but torch sees no CUDA device", "params.yaml",
                       "set the method's device: auto (or cpu)")
    return torch.device(name)


def seeded(rng: np.random.Generator, threads: int = 1) -> torch.Generator:
    """Seed torch from the fold's numpy generator; return a generator for shuffling and dropout.

    Weight initialisation draws from torch's global generator, so it is seeded too; deterministic
    algorithms are requested so a fold repeats bit for bit on the same machine.  The fold's CPU
    thread count is fixed as well (default 1): a float sum split over another number of threads
    rounds differently, so outputs would depend on the machine and executor; and the small MER
    networks gain little from more threads while parallel folds (``eval.executor``) would
    oversubscribe the cores (measured under load: 370 ms a step with 2 threads, 50 ms with 1).
    """
    seed = int(rng.integers(2**62))
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """w_c = max_c' n_c' / n_c (the annotation-mimicking paper's eq. 6); 0 for absent classes."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)   # (k,)
    w = np.divide(counts.max(), counts, out=np.zeros_like(counts), where=counts > 0)
    return torch.as_tensor(w, dtype=torch.float32)


def batches(n: int, batch_size: int, gen: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Index batches over ``n`` samples: shuffled with ``gen``, in order without it; the last batch
    may be short (a batch of one is merged into the previous one: batch norm needs two samples)."""
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    cuts = list(range(0, n, batch_size))
    if len(cuts) > 1 and n - cuts[-1] == 1:
        cuts.pop()
    for i, start in enumerate(cuts):
        stop = cuts[i + 1] if i + 1 < len(cuts) else n
        yield order[start:stop]


def train_epochs(module: nn.Module, loss_of: Callable[[torch.Tensor], torch.Tensor], n: int,
                 params: TrainParams, gen: torch.Generator,
                 optimizer: torch.optim.Optimizer | None = None,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> list[float]:
    """Train ``module`` for ``params.epochs`` epochs; return the mean training loss of each epoch.

    ``loss_of(idx)`` computes the loss of the samples ``idx`` (a LongTensor of batch indices): the
    method owns data, augmentation and loss, the loop owns order, steps and the schedule.  The
    default optimizer is Adam with ``params.lr`` and ``params.weight_decay``; a scheduler steps
    once per epoch.
    """
    optimizer = optimizer or torch.optim.Adam(module.parameters(), lr=params.lr,
                                              weight_decay=params.weight_decay)
    history = []
    module.train()
    for _ in range(params.epochs):
        total, seen = 0.0, 0
        for idx in batches(n, params.batch_size, gen):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of(idx)
            if not torch.isfinite(loss):
                raise MerError(f"training diverged: loss {loss.item()} in epoch {len(history) + 1}",
                               "params.yaml", "lower the method's lr")
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        if scheduler is not None:
            scheduler.step()
        history.append(total / seen)
    module.eval()
    return history


@torch.no_grad()
def predict_in_batches(forward: Callable[[torch.Tensor], torch.Tensor], n: int,
                       batch_size: int) -> torch.Tensor:
    """``forward(idx)`` over every sample in order, concatenated: (n, ...) on the CPU."""
    return torch.cat([forward(idx).cpu() for idx in batches(n, batch_size)])
