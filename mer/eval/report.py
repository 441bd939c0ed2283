"""``reports/summary.md``: one row per method, in the order of params ``methods``."""

from __future__ import annotations

import json
from pathlib import Path

from mer import artifacts
from mer.errors import MerError
from mer.io import write_text


def _cell(metrics: dict, name: str) -> str:
    mean, std = metrics["pooled"][name], metrics["pooled_std"][name]
    return f"{mean:.3f} ± {std:.3f}" if metrics["n_seeds"] > 1 else f"{mean:.3f}"


def summary_table(methods: list[str], metrics_dir: Path = artifacts.METRICS) -> str:
    """Markdown table of pooled metrics (mean ± std over seeds) and the permutation control."""
    lines = ["| method | dataset | protocol | scheme | clips | folds | seeds | accuracy | UF1 | UAR |"
             " control UF1 | selection |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method in methods:
        path = metrics_dir / f"{method}.json"
        if not path.exists():
            raise MerError("metrics not found", path, f"run: dvc repro train@{method}")
        m = json.loads(path.read_text())
        control = m.get("control", {}).get("permuted_labels", {}).get("uf1")
        lines.append(
            f"| {method} | {m['datasets']} | {m['protocol']} | {m['scheme']} | {m['n_clips']} | "
            f"{m['n_folds']} | {m['n_seeds']} | {_cell(m, 'accuracy')} | {_cell(m, 'uf1')} | "
            f"{_cell(m, 'uar')} | {'-' if control is None else f'{control:.3f}'} | {m['selection']} |")
    return "\n".join(lines) + "\n"


def write_summary(methods: list[str], out: Path = artifacts.REPORTS / "summary.md") -> str:
    table = summary_table(methods)
    text = ("# Results\n\nPooled over all folds (primary metrics); mean ± std over seeds. "
            "Control: the same loop on labels permuted across the corpus (chance level).\n\n" + table)
    write_text(out, text)
    return table
