"""SynthME's difficulty curve: the baseline's pooled UF1 against the micro-expression amplitude.

Each point rebuilds SynthME with every clip at one fixed apex amplitude (a fraction of the face
width) and runs the whole pipeline (ingest, crop, TIM, LBP-TOP, the method under the configured
protocol) in a scratch folder, so the curve measures exactly what ``dvc repro`` would.  Smaller
amplitudes give a harder corpus; the curve tells a user which amplitude matches the difficulty
they want to study.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

from mer import artifacts
from mer.data import stage as ingest
from mer.face import stage as crop
from mer.features import stage as lbptop
from mer.synth import stage as synthesize
from mer.temporal import stage as tim
from mer.eval.runner import train
from mer.io import write_text


def difficulty_curve(params: dict, amplitudes: list[float], method: str = "lbptop_svm",
                     scratch: Path | None = None) -> list[dict]:
    """Pooled metrics of ``method`` on SynthME rebuilt at each amplitude (one row per amplitude)."""
    rows = []
    cwd = Path.cwd()
    for amplitude in amplitudes:
        p = copy.deepcopy(params)
        p["synthesize"] = {**(p.get("synthesize") or {}), "amplitude": [amplitude, amplitude]}
        p["datasets"], p["eval"] = ["synthme"], {**p["eval"], "datasets": ["synthme"]}
        with tempfile.TemporaryDirectory(dir=scratch) as work:  # ~4 GB per point, freed at once
            os.chdir(work)
            try:
                synthesize.run(p)
                for stage in (ingest, crop, tim, lbptop):
                    stage.run(p, "synthme")
                m = train(method, p, artifacts.MODELS / method, artifacts.METRICS / f"{method}.json")
            finally:
                os.chdir(cwd)
        control = m.get("control", {}).get("permuted_labels", {}).get("uf1")
        rows.append({"amplitude": amplitude, **m["pooled"], "uf1_std": m["pooled_std"]["uf1"],
                     "control_uf1": control})
    return rows


def write_curve(rows: list[dict], out: Path, method: str) -> str:
    """Markdown table + PNG plot of the curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = ["| amplitude (face width) | accuracy | UF1 | UAR | control UF1 |", "|---|---|---|---|---|"]
    for r in rows:
        ctl = "-" if r["control_uf1"] is None else f"{r['control_uf1']:.3f}"
        lines.append(f"| {r['amplitude']:.3f} | {r['accuracy']:.3f} | {r['uf1']:.3f} ± "
                     f"{r['uf1_std']:.3f} | {r['uar']:.3f} | {ctl} |")
    table = "\n".join(lines) + "\n"
    write_text(out, f"# SynthME difficulty curve ({method})\n\n{table}")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.errorbar([r["amplitude"] * 100 for r in rows], [r["uf1"] for r in rows],
                yerr=[r["uf1_std"] for r in rows], marker="o", label=f"{method} UF1")
    if all(r["control_uf1"] is not None for r in rows):
        ax.plot([r["amplitude"] * 100 for r in rows], [r["control_uf1"] for r in rows], "x--",
                label="permuted labels")
    ax.set_xlabel("apex amplitude (% of face width)")
    ax.set_ylabel("pooled LOSO UF1")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    plt.close(fig)
    return table
