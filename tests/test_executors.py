"""Executors: every way of running folds gives byte-identical outputs to ``serial``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from mer.errors import MerError
from mer.eval.executors import RayParams, run_folds
from mer.eval.runner import train
from mer.methods.registry import Samples, register
from test_runner import fake_dataset, params


@register("_seeded_noise")
class _SeededNoise:
    """Predictions drawn from the fold's rng: any executor that seeded differently would show."""

    inputs = ("lbptop",)

    @dataclass
    class Params:
        pass

    def __init__(self, params):
        pass

    def fit(self, train: Samples, rng: np.random.Generator):
        self.rng, self.k = rng, len(train.classes)
        return self

    def predict_proba(self, test: Samples) -> np.ndarray:
        p = self.rng.random((len(test), self.k))
        return p / p.sum(1, keepdims=True)


def _outputs(tmp_path, executor: str, method: str, seeds=(0, 1)) -> dict[str, bytes]:
    out = tmp_path / executor
    p = params(executor=executor, seeds=list(seeds))
    p["eval"]["ray"] = {"address": "", "cpus_per_task": 1.0, "gpus_per_task": 0.0}
    train(method, p, out / "models", out / "metrics.json", out / "reports")
    return {name: (out / "models" / name).read_bytes()
            for name in ("predictions.csv", "control_predictions.csv", "folds.csv")}


def test_process_executor_matches_serial_byte_for_byte(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_dataset(tmp_path, n_subjects=4, per_subject=5)
    serial = _outputs(tmp_path, "serial", "_seeded_noise")
    assert _outputs(tmp_path, "process", "_seeded_noise") == serial
    assert serial != _outputs(tmp_path / "other", "serial", "_seeded_noise", seeds=[2, 3])


def test_ray_executor_matches_serial_byte_for_byte(tmp_path, monkeypatch):
    """On a local Ray instance (workers import mer afresh, so the method is a registered one)."""
    pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)
    fake_dataset(tmp_path, n_subjects=4, per_subject=5)
    assert _outputs(tmp_path, "ray", "lbptop_svm") == _outputs(tmp_path, "serial", "lbptop_svm")


def test_unknown_executor_is_one_clear_error():
    with pytest.raises(MerError, match="serial, process, ray"):
        run_folds("dask", len, [[1]], "x", RayParams())
