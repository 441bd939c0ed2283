"""The fold loop shared by every method: folds, a fresh model per fold, pooled metrics, controls.

Rules enforced here rather than trusted to each method (see ARCHITECTURE.md, Evaluation rules):

* a new model per fold and seed, fitted on the training subjects only;
* test samples reach ``predict_proba`` with ``y = None``;
* primary metrics are computed on predictions pooled over folds; fold means are secondary;
* every seed is a full repeat; the label-permutation control reruns the identical loop on labels
  shuffled across the corpus, and must land at chance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer import artifacts
from mer.config import EvalParams, validate
from mer.data.manifest import read_manifest
from mer.data.schemes import get_scheme
from mer.errors import MerError
from mer.eval.metrics import scores
from mer.eval.protocols import Fold, make_folds
from mer.io import atomic_path, write_text
from mer.methods.registry import Samples, build, get_method
from mer.parallel import map_clips

METRIC_NAMES = ("accuracy", "uf1", "uar")


def load_samples(datasets: list[str], scheme: str, inputs: tuple[str, ...]) -> tuple[Samples, int]:
    """Clips of ``datasets`` labelled under ``scheme`` whose ``inputs`` exist; and #skipped clips.

    A clip the scheme drops is not a sample.  A clip that a preprocessing stage recorded as skipped
    (``index.csv`` status) is left out and counted; a missing artifact is an error.
    """
    classes = get_scheme(scheme).classes
    rows, paths, skipped = [], {k: [] for k in inputs}, 0
    for dataset in datasets:
        manifest = artifacts.manifest_path(dataset)
        if not manifest.exists():
            raise MerError("manifest not found", manifest, f"run: dvc repro ingest@{dataset}")
        status = {}
        for kind in inputs:
            index = artifacts.artifact_dir(kind, dataset) / "index.csv"
            if not index.exists():
                raise MerError(f"'{kind}' artifacts not found", index,
                               f"run: dvc repro (the stage writing {artifacts.artifact_dir(kind, dataset)})")
            table = pd.read_csv(index, dtype=str, keep_default_na=False)
            status[kind] = dict(zip(table["clip_id"], table["status"]))
        for clip in read_manifest(manifest):
            label = clip.labels.get(scheme)
            if label is None:
                raise MerError(f"label scheme '{scheme}' is not in the manifest", manifest,
                               "pick a scheme of this corpus in eval.scheme, or re-run ingest")
            if not label:
                continue
            if any(status[k].get(clip.clip_id, "missing") != "ok" for k in inputs):
                missing = [k for k in inputs if clip.clip_id not in status[k]]
                if missing:
                    raise MerError(f"clip {clip.clip_id} has no '{missing[0]}' artifact",
                                   artifacts.artifact_dir(missing[0], dataset), "run: dvc repro")
                skipped += 1
                continue
            rows.append({"clip_id": clip.clip_id, "dataset": dataset, "corpus": clip.corpus,
                         "subject": clip.subject, "label": label})
            for kind in inputs:
                paths[kind].append(artifacts.artifact_path(kind, dataset, clip.clip_id))
    meta = pd.DataFrame(rows, columns=["clip_id", "dataset", "corpus", "subject", "label"])
    unknown = sorted(set(meta["label"]) - set(classes))
    if unknown:
        raise MerError(f"labels {unknown} are not classes of scheme '{scheme}' {classes}",
                       artifacts.manifest_path(datasets[0]), "re-run ingest with the current schemes")
    y = np.array([classes.index(c) for c in meta["label"]], int)
    return Samples(meta.drop(columns="label"), y, list(classes), paths), skipped


@dataclass
class Task:
    """One fit/predict: picklable, so folds can run in other processes."""

    method: str
    section: dict[str, Any]
    samples: Samples
    fold: Fold
    seed: int
    fold_index: int


def run_task(task: Task) -> np.ndarray:
    """Fit a fresh model on the fold's training clips; (n_test, n_classes) probabilities."""
    model = build(task.method, task.section)
    rng = np.random.default_rng([task.seed, task.fold_index])
    model.fit(task.samples.subset(task.fold.train), rng)
    test = task.samples.subset(task.fold.test, hide_labels=True)
    proba = np.asarray(model.predict_proba(test), float)
    if proba.shape != (len(test), len(task.samples.classes)):
        raise AssertionError(f"{task.method}.predict_proba returned {proba.shape}, expected "
                             f"{(len(test), len(task.samples.classes))}")
    return proba


def predict_all(method: str, section: dict, samples: Samples, folds: list[Fold], seed: int,
                executor: str) -> pd.DataFrame:
    """Pooled out-of-fold predictions of one seed: one row per test clip."""
    tasks = [Task(method, section, samples, f, seed, i) for i, f in enumerate(folds)]
    workers = {"serial": 1, "process": 0}.get(executor)
    if workers is None:
        raise MerError(f"unknown executor '{executor}'", "params.yaml",
                       "set eval.executor to serial or process")
    probas = map_clips(run_task, tasks, workers=workers, desc=f"{method} seed {seed}", unit="fold")
    frames = []
    for fold, proba in zip(folds, probas):
        part = samples.meta.iloc[fold.test].reset_index(drop=True).copy()
        part.insert(0, "fold", fold.name)
        part.insert(0, "seed", seed)
        part["true"] = [samples.classes[i] for i in samples.y[fold.test]]
        part["predicted"] = [samples.classes[i] for i in proba.argmax(1)]
        for j, c in enumerate(samples.classes):
            part[f"p_{c}"] = np.round(proba[:, j], 6)
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def _scores(pred: pd.DataFrame, classes: list[str]) -> dict[str, float]:
    index = {c: i for i, c in enumerate(classes)}
    return scores(pred["true"].map(index), pred["predicted"].map(index), len(classes))


def summarise(pred: pd.DataFrame, control: pd.DataFrame | None, classes: list[str]) -> dict:
    """metrics JSON: pooled (mean/std over seeds), per seed, per corpus, per fold, control."""
    per_seed = {str(s): _scores(g, classes) for s, g in pred.groupby("seed")}
    table = pd.DataFrame(per_seed).T
    out: dict[str, Any] = {
        "pooled": {m: round(float(table[m].mean()), 4) for m in METRIC_NAMES},
        "pooled_std": {m: round(float(table[m].std(ddof=0)), 4) for m in METRIC_NAMES},
        "seeds": {s: {m: round(v, 4) for m, v in d.items()} for s, d in per_seed.items()},
    }
    fold_scores = pd.DataFrame([{"seed": s, "fold": f, **_scores(g, classes), "n": len(g)}
                                for (s, f), g in pred.groupby(["seed", "fold"], sort=False)])
    out["fold_mean"] = {m: round(float(fold_scores.groupby("seed")[m].mean().mean()), 4)
                        for m in METRIC_NAMES}
    per_fold = fold_scores.groupby("fold", sort=False)
    out["folds"] = {f: {**{m: round(float(g[m].mean()), 4) for m in METRIC_NAMES},
                        "n": int(g["n"].iloc[0])} for f, g in per_fold}
    if pred["corpus"].nunique() > 1:
        out["corpora"] = {c: {m: round(float(np.mean([_scores(gs, classes)[m]
                                                     for _, gs in g.groupby("seed")])), 4)
                              for m in METRIC_NAMES} for c, g in pred.groupby("corpus")}
    if control is not None:
        ctl = pd.DataFrame({str(s): _scores(g, classes) for s, g in control.groupby("seed")}).T
        out["control"] = {"permuted_labels": {m: round(float(ctl[m].mean()), 4)
                                              for m in METRIC_NAMES}}
    return out


def train(method: str, params: dict, out_dir: Path, metrics_path: Path) -> dict:
    """Run ``method`` under ``params['eval']``; write predictions, folds, metrics; return metrics.

    ``out_dir`` receives ``predictions.csv`` (seed, fold, clip, subject, true, predicted, one
    probability column per class), ``folds.csv`` (the test groups of every fold) and
    ``control_predictions.csv`` (the permutation control); ``metrics_path`` the metrics JSON.
    """
    ev = validate(params.get("eval"), EvalParams, "eval")
    section = (params.get("models") or {}).get(method) or {}
    build(method, section)  # validate hyper-parameters before any work
    inputs = get_method(method).inputs
    samples, skipped = load_samples(ev.datasets, ev.scheme, inputs)
    if len(samples) == 0:
        raise MerError(f"no labelled clips for scheme '{ev.scheme}' in {ev.datasets}", "params.yaml",
                       "check eval.datasets and eval.scheme")
    folds = make_folds(ev.protocol, samples.meta, k=ev.k, seed=params.get("seed", 0),
                       source=ev.source, target=ev.target)
    preds = [predict_all(method, section, samples, folds, s, ev.executor) for s in ev.seeds]
    pred = pd.concat(preds, ignore_index=True)
    control = None
    if ev.permutation_control:
        ctl = []
        for s in ev.seeds:
            shuffled = samples.with_labels(np.random.default_rng([s, 7919]).permutation(samples.y))
            ctl.append(predict_all(method, section, shuffled, folds, s, ev.executor))
        control = pd.concat(ctl, ignore_index=True)
    metrics = {"method": method, "datasets": ",".join(ev.datasets), "protocol": ev.protocol,
               "scheme": ev.scheme, "classes": ",".join(samples.classes), "n_clips": len(samples),
               "n_skipped": skipped, "n_folds": len(folds), "n_seeds": len(ev.seeds),
               "selection": getattr(get_method(method), "selection", "train-only"),
               **summarise(pred, control, samples.classes)}
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {"predictions.csv": pred,
              "folds.csv": pd.DataFrame([{"fold": f.name, "test_groups": " ".join(f.test_groups),
                                          "n_train": len(f.train), "n_test": len(f.test)}
                                         for f in folds])}
    # written even when the control is off (empty), so the stage's outputs never change shape
    tables["control_predictions.csv"] = control if control is not None else pred.iloc[:0]
    for name, table in tables.items():
        with atomic_path(out_dir / name) as tmp:
            table.to_csv(tmp, index=False, lineterminator="\n")
    write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    return metrics
