"""Where folds run: ``eval.executor`` names one of :data:`EXECUTORS`.

Folds are independent (a fresh model each, seeded by ``[seed, fold_index]``), so any executor gives
the same predictions as ``serial``; only the wall-clock time changes.

* ``serial``: in this process, one fold after another (the default: easiest to debug);
* ``process``: local worker processes, one per core (:func:`mer.parallel.map_clips`);
* ``ray``: one Ray task per fold on an existing Ray cluster (``eval.ray.address``, else the
  ``RAY_ADDRESS`` environment variable, else a local instance started for the run), each task
  asking for ``cpus_per_task`` CPUs and ``gpus_per_task`` GPUs.  Every node must see the
  repository and its ``data/`` at the same absolute path (a shared filesystem) and have the same
  environment (``make setup``): tasks carry file paths, never arrays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from mer.errors import MerError
from mer.parallel import map_clips

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class RayParams:
    """``eval.ray``: how folds are shipped to a Ray cluster (``eval.executor: ray``)."""

    address: str = ""           # ray://host:10001 or host:6379; '' = RAY_ADDRESS, else a local instance
    cpus_per_task: float = 1.0  # the resource request of one fold
    gpus_per_task: float = 0.0  # 1 for a method that trains on a GPU


def _serial(fn, tasks, desc, ray_params):
    return map_clips(fn, tasks, workers=1, desc=desc, unit="fold")


def _process(fn, tasks, desc, ray_params):
    return map_clips(fn, tasks, workers=0, desc=desc, unit="fold")


def _absolute(task):
    """The task with its samples' artifact paths made absolute: Ray workers start elsewhere."""
    samples = task.samples
    paths = {k: [Path(p).resolve() for p in v] for k, v in samples.paths.items()}
    return replace(task, samples=replace(samples, paths=paths))


def _ray(fn, tasks, desc, ray_params: RayParams):
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is in requirements.txt
        raise MerError("eval.executor is 'ray' but ray is not installed", "params.yaml",
                       "run: make setup (or pip install ray), or set eval.executor: serial") from None
    started = not ray.is_initialized()
    if started:
        address = ray_params.address or os.environ.get("RAY_ADDRESS") or None
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": os.cpu_count()}))
    try:
        remote = ray.remote(num_cpus=ray_params.cpus_per_task, num_gpus=ray_params.gpus_per_task)(fn)
        refs = [remote.remote(_absolute(t) if hasattr(t, "samples") else t) for t in tasks]
        return ray.get(refs)          # in task order, like the other executors
    finally:
        if started:
            ray.shutdown()


EXECUTORS: dict[str, Callable] = {"serial": _serial, "process": _process, "ray": _ray}


def run_folds(executor: str, fn: Callable[[T], R], tasks: Sequence[T], desc: str,
              ray_params: RayParams | None = None) -> list[R]:
    """``fn`` over every task on ``executor``; results in task order."""
    if executor not in EXECUTORS:
        raise MerError(f"unknown executor '{executor}'", "params.yaml",
                       f"set eval.executor to one of: {', '.join(EXECUTORS)}")
    return EXECUTORS[executor](fn, list(tasks), desc, ray_params or RayParams())
