"""``mer reproduce <paper>[:<table>]``: rerun the published rows we implement and lay them out beside
the paper's numbers.

Every cell of our rows (``ours: <method>``) in ``results/published.yaml`` that names a preset
(``presets: {column: preset}``) is one DVC experiment: ``dvc exp run --queue -n <preset> -S +experiment=<preset>``, run by ``dvc queue
start -j N`` and read back from ``dvc exp show --json``.  Going through DVC's queue and not a loop
of our own keeps each row an ordinary experiment a user can inspect, apply, push or rerun.

Before queueing, each preset is composed to learn which corpora it needs; a corpus whose root is
missing makes the row "not run: corpus absent", with the ``ln -s`` command that links it.  With
``--dataset synthme`` every preset runs on SynthME instead (the CI's tiny reproduction): the
machinery is the same, and the published numbers become a reference for the layout only.

Status of a row: ``reproduced`` when every metric is within the table's ``tolerance`` (absolute,
default 0.05) of the published value, ``differs`` otherwise, ``not run: ...`` or ``failed: ...``.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mer import artifacts
from mer.config import compose_params
from mer.errors import MerError
from mer.eval.report import PUBLISHED
from mer.io import atomic_path, write_text

OUT = artifacts.REPORTS / "reproduce"
DEFAULT_TOLERANCE = 0.05


@dataclass
class Cell:
    """One published number pair of ours to rerun: (table row, column) and the preset for it."""

    paper: str
    table: str
    row: str
    column: str
    method: str                         # our registry name (the row's ``ours``)
    preset: str
    published: dict[str, float]
    part: str = ""                      # a composite's member corpus: its sub-score, not the pooled one
    experiment: str = ""                # DVC experiment name
    status: str = "queued"
    ours: dict[str, float] = field(default_factory=dict)       # metric -> mean over seeds
    ours_std: dict[str, float] = field(default_factory=dict)
    oracle: dict[str, float] = field(default_factory=dict)     # cdmer oracle variant, if any


def load_published(path: Path = PUBLISHED) -> dict:
    if not path.exists():
        raise MerError("published numbers not found", path, "run from the repository root")
    return yaml.safe_load(path.read_text()) or {}


def select_cells(published: dict, target: str) -> tuple[str, list[str], list[Cell]]:
    """``paper`` or ``paper:table`` -> (paper, tables, the cells of our rows that name a preset)."""
    paper, _, table = target.partition(":")
    if paper not in published:
        raise MerError(f"no paper '{paper}' in the published numbers", PUBLISHED,
                       f"pick one of: {', '.join(published)}")
    tables = published[paper].get("tables", {})
    names = [table] if table else list(tables)
    if table and table not in tables:
        raise MerError(f"paper '{paper}' has no table '{table}'", PUBLISHED,
                       f"pick one of: {', '.join(tables)}")
    cells = []
    for name in names:
        for row in tables[name]["rows"]:
            if "ours" not in row:
                continue
            presets = row.get("presets") or {}
            columns = tables[name].get("columns") or {}
            for column, values in row["cells"].items():
                printed = {k: v for k, v in (values or {}).items() if v is not None}
                cells.append(Cell(paper, name, row["method"], column, row["ours"],
                                  presets.get(column, ""), printed,
                                  part=(columns.get(column) or {}).get("part", "")))
    return paper, names, cells


def _synthetic_names(params: dict) -> set[str]:
    base = params.get("synthesize") or {}
    return {"synthme", *(base.get("variants") or {})}


def missing_corpora(params: dict) -> list[tuple[str, str]]:
    """(dataset, root) of every corpus the composed params need whose root is not there."""
    built = set(params.get("synthetic") or []) & _synthetic_names(params)
    missing = []
    for dataset in dict.fromkeys([*params.get("datasets", []), *params["eval"]["datasets"]]):
        root = artifacts.dataset_config(params, dataset).get("root", f"data/raw/{dataset}")
        if dataset not in built and not Path(root).exists():
            missing.append((dataset, root))
    return missing


def _dvc(*args: str) -> str:
    proc = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise MerError(f"dvc {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()[-800:]}",
                       "dvc.yaml", "run `dvc doctor` and fix the reported problem")
    return proc.stdout


def _wait_for_queue(poll_s: float = 5.0) -> None:
    """Until no queued or running experiment is left."""
    while True:
        status = _dvc("queue", "status")
        if not any(word in status for word in ("Queued", "Running")):
            return
        time.sleep(poll_s)


def _exp_metrics(baseline: str = "") -> dict[str, dict]:
    """Experiment name -> {'metrics': {file: data}} from ``dvc exp show --json``.

    DVC files an experiment under the commit it was queued from, and ``exp show`` lists only
    HEAD's: ``baseline`` is that commit (a commit made while a long run waits does not hide its
    results); without one every commit is searched and the newest run of a name wins.
    """
    where = ["--rev", baseline] if baseline else ["--all-commits"]
    found, when = {}, {}
    for commit in json.loads(_dvc("exp", "show", "--json", "--no-fetch", *where) or "[]"):
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                name = rev.get("name")
                data = rev.get("data") or {}
                stamp = data.get("timestamp") or ""
                if name and stamp >= when.get(name, ""):
                    when[name] = stamp
                    found[name] = {"metrics": {f: (v or {}).get("data", {})
                                               for f, v in (data.get("metrics") or {}).items()}}
    return found


def _read_scores(cell: Cell, metrics: dict) -> None:
    """Fill ``cell.ours`` from a metrics JSON: pooled (within corpus) or the experiment's (cdmer)."""
    keys = list(cell.published) or ["uf1", "accuracy"]
    if metrics.get("protocol") == "cdmer":
        exp = next(iter(metrics["experiments"].values()))
        cell.ours = {k: exp[k] for k in keys if k in exp}
        oracle = metrics.get("oracle_variant")
        if oracle:
            cell.oracle = {k: next(iter(oracle["experiments"].values()))[k] for k in keys}
    elif cell.part:                     # e.g. MEGC2019's SMIC-HS column: that corpus's clips only
        scores = (metrics.get("corpora") or {}).get(cell.part, {})
        cell.ours = {k: scores[k] for k in keys if k in scores}
    else:
        cell.ours = {k: metrics["pooled"][k] for k in keys if k in metrics["pooled"]}
        cell.ours_std = {k: metrics.get("pooled_std", {}).get(k, 0.0) for k in cell.ours}


def reproduce(target: str, jobs: int = 1, dataset: str = "", overrides: list[str] | None = None,
              dry_run: bool = False, only: list[str] | None = None, out_dir: Path = OUT,
              published_path: Path = PUBLISHED, collect: bool = False) -> Path:
    """Queue, run and collect every preset of ``target`` (or the ``only`` ones); write the report.

    ``collect``: queue and run nothing, read the newest finished experiment of each row (after an
    interrupted wait, or a queue that ran on another day).
    """
    published = load_published(published_path)
    paper, tables, cells = select_cells(published, target)
    if only:
        unknown = sorted(set(only) - {c.preset for c in cells})
        if unknown:
            raise MerError(f"presets {unknown} are not rows of '{target}'", published_path,
                           f"pick from: {', '.join(sorted({c.preset for c in cells}))}")
        cells = [c for c in cells if c.preset in only]
    if not cells:
        raise MerError(f"'{target}' has no row of ours (`ours:`)", published_path,
                       "mark the rows this project implements with `ours: <method>`")
    extra = ([f"dataset={dataset}"] if dataset else []) + list(overrides or [])
    queued: dict[str, str] = {}         # experiment name -> preset (a preset serving several cells runs once)
    for cell in cells:
        if not cell.preset:
            cell.status = f"not run: no preset yet (method '{cell.method}' or this row not implemented)"
            continue
        params = yaml.safe_load(compose_params([f"+experiment={cell.preset}", *extra]))
        missing = missing_corpora(params)
        if missing:
            cell.status = "not run: corpus absent (" + "; ".join(
                f"ln -s /path/to/your/{d} {root}" for d, root in missing) + ")"
            continue
        cell.experiment = f"{cell.preset}-{dataset}" if dataset else cell.preset
        queued[cell.experiment] = cell.preset
    if queued and not dry_run:
        if collect:
            found = _exp_metrics()
        else:
            baseline = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                      check=True).stdout.strip()
            # a rerun replaces the experiment of the same name.  Not `dvc exp run -f`: that flag
            # also forces every stage to run again, the whole preprocessing included.
            stale = sorted(set(queued) & set(_exp_metrics(baseline)))
            if stale:
                _dvc("exp", "remove", *stale)
            for name, preset in queued.items():
                _dvc("exp", "run", "--queue", "-n", name, "-S", f"+experiment={preset}",
                     *[a for o in extra for a in ("-S", o)])
            _dvc("queue", "start", "-j", str(jobs))
            _wait_for_queue()
            found = _exp_metrics(baseline)
        for cell in cells:
            if not cell.experiment:
                continue
            run = found.get(cell.experiment)
            metrics = (run or {}).get("metrics", {}).get(f"metrics/{cell.method}.json")
            if not metrics:
                cell.status = f"failed: see `dvc queue logs {cell.experiment}`"
                continue
            _read_scores(cell, metrics)
            if not cell.ours:
                cell.status = f"failed: the run has no scores for '{cell.part or cell.column}'"
                continue
            cell.status = _status(cell, published[paper]["tables"][cell.table], dataset)
    elif dry_run:
        for cell in cells:
            if cell.experiment:
                cell.status = "would run"
    return write_report(paper, tables, cells, published[paper], out_dir, dataset, overrides)


def _status(cell: Cell, table: dict, dataset: str) -> str:
    if dataset:
        return f"ran on {dataset} (layout check, not comparable)"
    if not cell.published:              # e.g. a bar of a figure without its value printed
        return "ran (the paper prints no number)"
    tolerance = float(table.get("tolerance", DEFAULT_TOLERANCE))
    ours = cell.oracle if table.get("selection") == "oracle" and cell.oracle else cell.ours
    worst = max(abs(ours[k] - v) for k, v in cell.published.items() if k in ours)
    return "reproduced" if worst <= tolerance else f"differs (max |Δ| {worst:.3f} > {tolerance})"


def _fmt(values: dict, key: str, std: dict | None = None) -> str:
    if key not in values:
        return "-"
    s = f"{values[key]:.4f}"
    return s + (f" ± {std[key]:.4f}" if std and key in std else "")


def write_report(paper: str, tables: list[str], cells: list[Cell], info: dict, out_dir: Path,
                 dataset: str = "", overrides: list[str] | None = None) -> Path:
    """``<out_dir>/<paper>[-<table>][-<dataset>].md`` (+ ``.png``): published, ours, difference,
    status, and the overrides the presets ran with (a run on SynthME never replaces the report of
    a run on the real corpora)."""
    name = (paper if len(tables) != 1 else f"{paper}-{tables[0]}") + (f"-{dataset}" if dataset else "")
    lines = [f"# Reproduction: {paper}" + (f" ({', '.join(tables)})" if tables else ""), "",
             f"Paper: {' '.join(str(info.get('paper', '')).split())}", ""]
    if dataset:
        lines += [f"Every preset ran on **{dataset}** (`--dataset {dataset}`): the published numbers "
                  "were measured on the real corpora and show the layout only.", ""]
    if overrides:
        lines += ["Every preset ran with these overrides: "
                  + " ".join(f"`-S {o}`" for o in overrides) + ".", ""]
    for table in tables:
        meta = info["tables"][table]
        metrics = list(meta.get("metrics", {"uf1": "UF1", "accuracy": "ACC"}))
        labels = meta.get("metrics", {})
        lines += [f"## {table}: {' '.join(str(meta.get('caption', '')).split())}", ""]
        head = ["row", "column", "preset", *(f"{labels.get(m, m)} published" for m in metrics),
                *(f"{labels.get(m, m)} ours" for m in metrics), *(f"Δ {labels.get(m, m)}" for m in metrics),
                "status"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c in [c for c in cells if c.table == table]:
            delta = [f"{c.ours[m] - c.published[m]:+.4f}" if m in c.ours and m in c.published else "-"
                     for m in metrics]
            lines.append("| " + " | ".join([c.row, c.column, f"`{c.preset}`" if c.preset else "-",
                                            *(_fmt(c.published, m) for m in metrics),
                                            *(_fmt(c.ours, m, c.ours_std) for m in metrics),
                                            *delta, c.status]) + " |")
            if c.oracle:
                lines.append("| " + " | ".join([f"{c.row} (oracle variant)", c.column, f"`{c.preset}`",
                                                *("" for _ in metrics),
                                                *(_fmt(c.oracle, m) for m in metrics),
                                                *(f"{c.oracle[m] - c.published[m]:+.4f}"
                                                  if m in c.published else "-" for m in metrics),
                                                "selection on target labels"]) + " |")
        lines.append("")
    lines += ["Ours: pooled over folds, mean ± std over seeds (cdmer: the experiment's score). "
              "Rerun one row: `dvc exp run -S +experiment=<preset>`.", ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.md"
    if any(c.ours for c in cells):
        _plot(cells, out_dir / f"{name}.png")
        lines += [f"![published vs ours]({name}.png)", ""]
    write_text(path, "\n".join(lines))
    return path


def _plot(cells: list[Cell], path: Path) -> None:
    """Published against ours, one point per cell and metric: the diagonal is exact reproduction."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for key, marker in (("uf1", "o"), ("accuracy", "s"), ("uar", "^")):
        pts = [(c.published[key], c.ours[key]) for c in cells if key in c.ours and key in c.published]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, label=key, alpha=0.8)
    ax.plot([0, 1], [0, 1], color="gray", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="published", ylabel="ours", aspect="equal")
    ax.legend(loc="lower right")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def drifted(path: Path) -> list[str]:
    """Rows of a written report whose status is ``differs`` or ``failed`` (for ``--check``)."""
    return [line for line in path.read_text().splitlines()
            if line.startswith("|") and ("| differs" in line or "| failed" in line)]
