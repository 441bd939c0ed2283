"""The fold loop shared by every method: folds, a fresh model per fold, pooled metrics, controls.

Rules enforced here rather than trusted to each method (see ARCHITECTURE.md, Evaluation rules):

* a new model per fold and seed, fitted on the training subjects only;
* test samples reach ``predict_proba`` (and a transductive method's ``fit``) with ``y = None``;
* primary metrics are computed on predictions pooled over folds; fold means are secondary; under
  the cross-database protocol (cdmer) each experiment is scored on its own, keyed by its name;
* every seed is a full repeat (a method that declares itself deterministic runs once); the
  label-permutation control reruns the identical loop on labels shuffled within each dataset, and
  must land at chance;
* hyper-parameters chosen on target labels (the TGSR paper's search) exist only as the separately
  recorded oracle variant (``eval.oracle``), never in the primary numbers.
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
from mer.eval.executors import run_folds
from mer.eval.metrics import scores
from mer.eval.protocols import Fold, make_folds
from mer.io import atomic_path, write_text
from mer.methods.registry import Samples, build, get_method

METRIC_NAMES = ("accuracy", "uf1", "uar")


def dataset_schemes(datasets: list[str], scheme: str, schemes: dict[str, str] | None = None
                    ) -> dict[str, str]:
    """The label scheme of each dataset: ``schemes[dataset]``, else ``scheme``.

    Corpora name emotions differently (CASME II's 'happiness' is SMIC's 'positive'), so a protocol
    across corpora maps each through its own scheme onto one shared class list; the class lists
    must then be identical, in the same order.
    """
    chosen = {d: (schemes or {}).get(d, scheme) for d in datasets}
    reference = get_scheme(chosen[datasets[0]]).classes
    for d, s in chosen.items():
        if get_scheme(s).classes != reference:
            raise MerError(f"scheme '{s}' of dataset '{d}' has classes {get_scheme(s).classes}, but "
                           f"'{chosen[datasets[0]]}' of '{datasets[0]}' has {reference}",
                           "params.yaml", "give every dataset in eval.schemes a scheme with the same "
                           "classes")
    return chosen


def load_samples(datasets: list[str], scheme: str, inputs: tuple[str, ...],
                 schemes: dict[str, str] | None = None) -> tuple[Samples, int]:
    """Clips of ``datasets`` labelled under their scheme whose ``inputs`` exist; and #skipped clips.

    A clip the scheme drops is not a sample.  A clip that a preprocessing stage recorded as skipped
    (``index.csv`` status) is left out and counted; a missing artifact is an error.
    """
    per_dataset = dataset_schemes(datasets, scheme, schemes)
    classes = get_scheme(per_dataset[datasets[0]]).classes
    rows, paths, skipped = [], {k: [] for k in inputs}, 0
    for dataset in datasets:
        scheme = per_dataset[dataset]
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
                         "subject": clip.subject, "aus": list(clip.aus), "label": label})
            for kind in inputs:
                paths[kind].append(artifacts.artifact_path(kind, dataset, clip.clip_id))
    meta = pd.DataFrame(rows, columns=["clip_id", "dataset", "corpus", "subject", "aus", "label"])
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


def _fitted(task: Task):
    """A fresh model fitted on the fold's training clips, and the fold's test clips (no labels).

    A transductive method (``transductive = True``, e.g. TGSR's MMD term) also receives the test
    clips at fit time, with their labels hidden like at prediction time.
    """
    model = build(task.method, task.section)
    rng = np.random.default_rng([task.seed, task.fold_index])
    train = task.samples.subset(task.fold.train)
    test = task.samples.subset(task.fold.test, hide_labels=True)
    if getattr(model, "transductive", False):
        model.fit(train, rng, unlabeled=test)
    else:
        model.fit(train, rng)
    return model, train, test


def _check_proba(method: str, proba: np.ndarray, n: int, k: int) -> np.ndarray:
    proba = np.asarray(proba, float)
    if proba.shape != (n, k):
        raise AssertionError(f"{method}.predict_proba returned {proba.shape}, expected {(n, k)}")
    return proba


def run_task(task: Task) -> tuple[np.ndarray, dict | None]:
    """(n_test, n_classes) probabilities, and the fitted model's ``explain()`` if it has one."""
    model, _, test = _fitted(task)
    proba = _check_proba(task.method, model.predict_proba(test), len(test), len(task.samples.classes))
    return proba, (model.explain() if hasattr(model, "explain") else None)


def predict_all(method: str, section: dict, samples: Samples, folds: list[Fold], seed: int,
                ev: EvalParams, explanations: dict | None = None) -> pd.DataFrame:
    """Pooled out-of-fold predictions of one seed: one row per test clip.

    ``explanations``, when given, receives each fold's ``explain()`` output by fold name.
    """
    tasks = [Task(method, section, samples, f, seed, i) for i, f in enumerate(folds)]
    results = run_folds(ev.executor, run_task, tasks, f"{method} seed {seed}", ev.ray)
    frames = []
    for fold, (proba, explained) in zip(folds, results):
        if explanations is not None and explained is not None:
            explanations[fold.name] = explained
        part = samples.meta.iloc[fold.test][["clip_id", "dataset", "corpus", "subject"]]
        part = part.reset_index(drop=True)
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


def oracle_task(task: Task) -> dict:
    """The oracle variant of one cross-database experiment: every point of the method's own grid,
    scored on the target's labels, and the best kept (macro F1, then accuracy; ties to the first).

    This is how the TGSR paper chose its hyper-parameters.  It runs only under the explicitly named
    variant (``eval.oracle``), its numbers are recorded apart from the label-free ones with
    ``"selection": "oracle"``, and the labels reach this function, never the method.
    """
    model = build(task.method, task.section)
    train = task.samples.subset(task.fold.train)
    test = task.samples.subset(task.fold.test, hide_labels=True)
    truth = task.samples.y[task.fold.test]
    k = len(task.samples.classes)
    best, n_points = None, 0
    for point, proba in model.oracle_path(train, test):
        n_points += 1
        s = scores(truth, _check_proba(task.method, proba, len(test), k).argmax(1), k)
        if best is None or (s["uf1"], s["accuracy"]) > (best[1]["uf1"], best[1]["accuracy"]):
            best = (point, s)
    if best is None:
        raise AssertionError(f"{task.method}.oracle_path yielded no grid point")
    return {**{m: round(float(best[1][m]), 4) for m in METRIC_NAMES},
            "selected": best[0], "grid_points": n_points}


def _experiment_scores(pred: pd.DataFrame, classes: list[str], aliases: dict[str, str]) -> dict:
    """cdmer: scores of each experiment (mean over seeds), keyed by the experiment's name."""
    out = {}
    for name, g in pred.groupby("fold", sort=False):
        per_seed = pd.DataFrame([_scores(gs, classes) for _, gs in g.groupby("seed")])
        source, target = name.split("->")
        out[name] = {"source": source, "target": target,
                     "short": f"{aliases.get(source, source)}->{aliases.get(target, target)}",
                     **{m: round(float(per_seed[m].mean()), 4) for m in METRIC_NAMES},
                     "n_test": int(len(g) // g["seed"].nunique())}
    return out


def summarise_experiments(pred: pd.DataFrame, control: pd.DataFrame | None, classes: list[str],
                          aliases: dict[str, str]) -> dict:
    """metrics JSON of the cdmer protocol: each experiment on its own, and their mean.

    Experiments are separate problems (other source, other target), so their predictions are not
    pooled; the mean over experiments is what the TGSR paper's tables average too.
    """
    experiments = _experiment_scores(pred, classes, aliases)
    out: dict[str, Any] = {
        "experiments": experiments,
        "mean": {m: round(float(np.mean([e[m] for e in experiments.values()])), 4)
                 for m in METRIC_NAMES}}
    if control is not None:
        ctl = _experiment_scores(control, classes, aliases)
        out["control"] = {"permuted_labels": {m: round(float(np.mean([e[m] for e in ctl.values()])), 4)
                                              for m in METRIC_NAMES},
                          "experiments": {n: e["uf1"] for n, e in ctl.items()}}
    return out


def permuted(samples: Samples, seed: int) -> Samples:
    """The permutation control's samples: annotations shuffled within each dataset.

    A clip's label and its action units move together (AUs are the annotation a label is coded
    from: shuffling labels alone would leave a method trained on AUs a path to the true classes).
    """
    rng = np.random.default_rng([seed, 7919])
    order = np.arange(len(samples))
    datasets = samples.meta["dataset"].astype(str).to_numpy()
    for d in dict.fromkeys(datasets):
        idx = np.flatnonzero(datasets == d)
        order[idx] = idx[rng.permutation(len(idx))]
    meta = samples.meta.copy()
    if "aus" in meta:
        meta["aus"] = meta["aus"].to_numpy()[order]
    return Samples(meta, samples.y[order], samples.classes, samples.paths)


def _write_figures(method: str, explanations: dict, samples: Samples, out: Path) -> None:
    """``reports/<method>/``: the method's own figures (``render``), listed in ``README.md``."""
    cls = get_method(method)
    with atomic_path(out, is_dir=True) as tmp:
        made = cls.render(explanations, samples, tmp) if hasattr(cls, "render") and explanations else []
        lines = [f"# {method}: figures", ""]
        lines += [f"- [{name}]({name}): {caption}" for name, caption in made] or [
            f"{method} draws no figures."]
        (tmp / "README.md").write_text("\n".join(lines) + "\n")


def train(method: str, params: dict, out_dir: Path, metrics_path: Path,
          figures_dir: Path | None = None) -> dict:
    """Run ``method`` under ``params['eval']``; write predictions, folds, metrics; return metrics.

    ``out_dir`` receives ``predictions.csv`` (seed, fold, clip, subject, true, predicted, one
    probability column per class), ``folds.csv`` (the test groups of every fold) and
    ``control_predictions.csv`` (the permutation control); ``metrics_path`` the metrics JSON;
    ``figures_dir`` (default ``reports/<method>``) the method's figures, if it draws any.
    """
    ev = validate(params.get("eval"), EvalParams, "eval")
    section = (params.get("models") or {}).get(method) or {}
    build(method, section)  # validate hyper-parameters before any work
    cls = get_method(method)
    samples, skipped = load_samples(ev.datasets, ev.scheme, cls.inputs, ev.schemes)
    if len(samples) == 0:
        raise MerError(f"no labelled clips for scheme '{ev.scheme}' in {ev.datasets}", "params.yaml",
                       "check eval.datasets and eval.scheme")
    folds = make_folds(ev.protocol, samples.meta, k=ev.k, seed=params.get("seed", 0),
                       experiments=ev.experiments)
    # a deterministic method gives the same predictions under every seed: one repeat is all there is
    seeds = ev.seeds[:1] if getattr(cls, "deterministic", False) else ev.seeds
    explanations: dict = {}
    preds = [predict_all(method, section, samples, folds, s, ev,
                         explanations if i == 0 else None) for i, s in enumerate(seeds)]
    pred = pd.concat(preds, ignore_index=True)
    control = None
    if ev.permutation_control:
        control = pd.concat([predict_all(method, section, permuted(samples, s),
                                         folds, s, ev) for s in seeds], ignore_index=True)
    cross = ev.protocol == "cdmer"
    metrics = {"method": method, "preset": params.get("preset", ""), "datasets": ",".join(ev.datasets), "protocol": ev.protocol,
               "scheme": ",".join(dict.fromkeys(dataset_schemes(ev.datasets, ev.scheme,
                                                                ev.schemes).values())),
               "classes": ",".join(samples.classes), "n_clips": len(samples),
               "n_skipped": skipped, "n_folds": len(folds), "n_seeds": len(seeds),
               "selection": getattr(cls, "selection", "train-only"),
               **(summarise_experiments(pred, control, samples.classes, ev.aliases) if cross
                  else summarise(pred, control, samples.classes))}
    if ev.oracle and not cross:
        raise MerError(f"eval.oracle is a variant of the cdmer protocol, not of '{ev.protocol}'",
                       "params.yaml", "set eval.oracle: false (or -S dataset=cdmer)")
    if ev.oracle and hasattr(cls, "oracle_path"):   # methods without a paper grid have no variant
        tasks = [Task(method, section, samples, f, seeds[0], i) for i, f in enumerate(folds)]
        found = run_folds(ev.executor, oracle_task, tasks, f"{method} oracle", ev.ray)
        metrics["oracle_variant"] = {
            "protocol": "cdmer_oracle", "selection": "oracle",
            "experiments": {f.name: r for f, r in zip(folds, found)},
            "mean": {m: round(float(np.mean([r[m] for r in found])), 4) for m in METRIC_NAMES}}
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
    _write_figures(method, explanations, samples, figures_dir or artifacts.REPORTS / method)
    write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    return metrics
