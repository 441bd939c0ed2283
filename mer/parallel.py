"""Per-clip parallelism with a progress bar and flat memory.

Stages hand :func:`map_clips` a picklable function and a list of small work items (paths and
parameters, never pixel arrays).  Each worker reads its clip, writes its own artifact and returns a
small record, so memory does not grow with the corpus; results come back in input order.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Callable, Iterator, Sequence, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")


def resolve_workers(workers: int | None) -> int:
    """``workers`` <= 0 or None means one per available core."""
    if workers is None or workers <= 0:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return workers


def map_clips(fn: Callable[[T], R], items: Sequence[T], workers: int | None = 1,
              desc: str = "clips", unit: str = "clip") -> list[R]:
    """Apply ``fn`` to every item, in ``workers`` processes, showing progress; keep input order."""
    return list(imap_clips(fn, items, workers, desc, unit))


def imap_clips(fn: Callable[[T], R], items: Sequence[T], workers: int | None = 1,
               desc: str = "clips", unit: str = "clip") -> Iterator[R]:
    """Lazy :func:`map_clips`: yields results one by one, in input order."""
    n = resolve_workers(workers)
    bar = tqdm(total=len(items), desc=desc, unit=unit, dynamic_ncols=True,
               disable=os.environ.get("MER_PROGRESS", "1") == "0")
    try:
        if n == 1 or len(items) <= 1:
            for item in items:
                yield fn(item)
                bar.update()
            return
        # fork keeps start-up cheap; every worker builds its own detectors lazily
        with mp.get_context("fork").Pool(min(n, len(items))) as pool:
            for result in pool.imap(fn, items, chunksize=1):
                yield result
                bar.update()
    finally:
        bar.close()

