"""``reports/summary.md``: one row per method, in the order of params ``methods``.

Within-corpus protocols (LOSO, k-fold, composite) give one table of pooled metrics.  The
cross-database protocol (cdmer) gives a table in the TGSR paper's layout: one column pair
(M-F1, ACC) per experiment, our label-free rows, the oracle variant's rows (hyper-parameters
picked on the target labels, as the paper did) and, beside them, the paper's own rows from
``results/published.yaml``.  On SynthME the published rows are a reference for the layout and the
orders of magnitude only: they were measured on the real SMIC and CASME II.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from mer import artifacts
from mer.errors import MerError
from mer.io import write_text

PUBLISHED = Path("results/published.yaml")


def _cell(metrics: dict, name: str) -> str:
    mean, std = metrics["pooled"][name], metrics["pooled_std"][name]
    return f"{mean:.3f} ± {std:.3f}" if metrics["n_seeds"] > 1 else f"{mean:.3f}"


def _num(cell: dict, key: str) -> str:
    """A published number, or '-' when the paper prints none (null: e.g. MAN's Fig. 4 RoI bars)."""
    return f"{cell[key]:.3f}" if cell.get(key) is not None else "-"


def _load(method: str, metrics_dir: Path) -> dict:
    path = metrics_dir / f"{method}.json"
    if not path.exists():
        raise MerError("metrics not found", path, f"run: dvc repro train@{method}")
    return json.loads(path.read_text())


def summary_table(methods: list[str], metrics_dir: Path = artifacts.METRICS,
                  published: Path = PUBLISHED) -> str:
    """Markdown table of pooled metrics (mean ± std over seeds) and the permutation control."""
    lines = ["| method | dataset | protocol | scheme | clips | folds | seeds | accuracy | UF1 | UAR |"
             " control UF1 | selection |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method in methods:
        m = _load(method, metrics_dir)
        control = m.get("control", {}).get("permuted_labels", {}).get("uf1")
        lines.append(
            f"| {method} | {m['datasets']} | {m['protocol']} | {m['scheme']} | {m['n_clips']} | "
            f"{m['n_folds']} | {m['n_seeds']} | {_cell(m, 'accuracy')} | {_cell(m, 'uf1')} | "
            f"{_cell(m, 'uar')} | {'-' if control is None else f'{control:.3f}'} | {m['selection']} |")
        for label, cell in published_cells(method, m.get("preset", ""), published):
            lines.append(f"| paper: {label} | | | | | | | {_num(cell, 'accuracy')} | {_num(cell, 'uf1')} "
                         f"| {_num(cell, 'uar')} | - | published |")
    return "\n".join(lines) + "\n"


def published_cells(method: str, preset: str, path: Path = PUBLISHED) -> list[tuple[str, dict]]:
    """The published cells that ``preset`` reproduces for ``method``: (label, {metric: value})."""
    if not preset or not path.exists():
        return []
    found = []
    for paper, info in (yaml.safe_load(path.read_text()) or {}).items():
        for table, meta in info.get("tables", {}).items():
            for row in meta["rows"]:
                for column, p in (row.get("presets") or {}).items():
                    if p == preset and row.get("ours") == method and row["cells"].get(column):
                        found.append((f"{paper}:{table} {row['method']} ({column})", row["cells"][column]))
    return found


def compare(methods: list[str], metrics_dir: Path = artifacts.METRICS, metric: str = "uf1",
            alpha: float = 0.05) -> str:
    """Pairwise differences, flagged only beyond the noise: a Wilcoxon signed-rank test over the
    folds both methods share (each fold's score averaged over seeds), and a pooled difference
    larger than twice the larger seed standard deviation.  Empty when fewer than two methods."""
    from scipy.stats import wilcoxon

    runs = {m: _load(m, metrics_dir) for m in methods}
    lines = []
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            fa, fb = runs[a].get("folds", {}), runs[b].get("folds", {})
            shared = [f for f in fa if f in fb]
            if len(shared) < 5:
                continue
            diffs = [fa[f][metric] - fb[f][metric] for f in shared]
            p = wilcoxon(diffs).pvalue if any(diffs) else 1.0
            delta = runs[a]["pooled"][metric] - runs[b]["pooled"][metric]
            noise = 2 * max(runs[a]["pooled_std"][metric], runs[b]["pooled_std"][metric])
            verdict = ("differ" if p < alpha and abs(delta) > noise else "within noise")
            lines.append(f"| {a} vs {b} | {delta:+.3f} | {noise:.3f} | {p:.3g} | {len(shared)} | "
                         f"{verdict} |")
    if not lines:
        return ""
    head = ["| pair | Δ pooled UF1 | 2 × seed std | Wilcoxon p (folds) | folds | verdict |",
            "|---|---|---|---|---|---|"]
    return "\n".join(head + lines) + "\n"


def _published_cdmer(path: Path) -> tuple[dict, list[dict]]:
    """The TGSR paper's experiment columns ('H->V' -> 'Exp.1') and its rows."""
    if not path.exists():
        return {}, []
    table = (yaml.safe_load(path.read_text()) or {}).get("tgsr", {}).get("tables", {}).get("cdmer")
    if not table:
        return {}, []
    columns = {f"{c['source']}->{c['target']}": key for key, c in table["columns"].items()}
    return columns, table["rows"]


def cdmer_table(methods: list[str], metrics_dir: Path = artifacts.METRICS,
                published: Path = PUBLISHED) -> str:
    """The cross-database table: experiments as columns (M-F1 / ACC), ours then the paper's."""
    runs = {m: _load(m, metrics_dir) for m in methods}
    first = next(iter(runs.values()))
    experiments = list(first["experiments"])
    shorts = [first["experiments"][e]["short"] for e in experiments]
    columns, paper_rows = _published_cdmer(published)
    titles = [f"Exp.{columns[s][3:]} ({s})" if s in columns else s for s in shorts]
    head = ["method", "selection", *(f"{t} M-F1 / ACC" for t in titles), "mean M-F1 / ACC",
            "control M-F1"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(name: str, selection: str, cells: list[dict | None], mean: dict | None, control: str):
        fmt = [("-" if c is None else f"{c['uf1']:.4f} / {100 * c['accuracy']:.2f}") for c in cells]
        avg = "-" if mean is None else f"{mean['uf1']:.4f} / {100 * mean['accuracy']:.2f}"
        lines.append("| " + " | ".join([name, selection, *fmt, avg, control]) + " |")

    for method, m in runs.items():
        if m["protocol"] != "cdmer" or list(m["experiments"]) != experiments:
            raise MerError(f"metrics of '{method}' are not of the same cdmer experiments",
                           metrics_dir / f"{method}.json", "run every method under one eval section")
        control = m.get("control", {}).get("permuted_labels", {}).get("uf1")
        row(method, m["selection"], [m["experiments"][e] for e in experiments], m["mean"],
            "-" if control is None else f"{control:.3f}")
        if "oracle_variant" in m:
            oracle = m["oracle_variant"]
            row(f"{method} (oracle variant)", "oracle", [oracle["experiments"][e] for e in experiments],
                oracle["mean"], "-")
    for paper in paper_rows:
        cells = [paper["cells"].get(columns[s]) if s in columns else None for s in shorts]
        known = [c for c in cells if c is not None]
        mean = ({k: sum(c[k] for c in known) / len(known) for k in ("uf1", "accuracy")}
                if len(known) == len(cells) else None)
        row(f"paper: {paper['method']}", "published", cells, mean, "-")
    return "\n".join(lines) + "\n"


def write_summary(methods: list[str], out: Path = artifacts.REPORTS / "summary.md",
                  metrics_dir: Path = artifacts.METRICS, published: Path = PUBLISHED) -> str:
    cross = [m for m in methods if _load(m, metrics_dir)["protocol"] == "cdmer"]
    within = [m for m in methods if m not in cross]
    text, tables = "# Results\n", ""
    if within:
        table = summary_table(within, metrics_dir, published)
        text += ("\nPooled over all folds (primary metrics); mean ± std over seeds. Control: the "
                 "same loop on labels permuted within each corpus (chance level).\n\n" + table)
        tables += table
        pairs = compare(within, metrics_dir)
        if pairs:
            text += ("\nDifferences between methods, flagged only beyond the noise: a Wilcoxon "
                     "signed-rank test over the shared folds (fold UF1, mean over seeds; α = 0.05) "
                     "and a pooled difference above twice the larger seed standard deviation.\n\n"
                     + pairs)
    if cross:
        table = cdmer_table(cross, metrics_dir, published)
        text += ("\n## Cross-database experiments (cdmer)\n\nEach experiment trains on the labelled "
                 "source and predicts the unlabelled target: macro F1 (the paper's M-F1) / accuracy "
                 "(%). Rows 'selection: train-only' choose every hyper-parameter without target "
                 "labels; the oracle variant picks them on the target labels, as the TGSR paper did, "
                 "and is shown apart. Paper rows ('published') come from results/published.yaml "
                 "and were measured on the real SMIC and CASME II.\n\n" + table)
        tables += table
    write_text(out, text)
    return tables
