"""End to end: `dvc repro` of the real dvc.yaml on a tiny SynthME, in a scratch copy of the repo.

Checks what a newcomer relies on: every stage runs, metrics and the summary are written, and a
second `dvc repro` is a no-op (outputs are deterministic and nothing recomputes).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mer.config import compose_params

ROOT = Path(__file__).resolve().parents[1]
TINY = ["synthesize.n_subjects=3", "synthesize.clips_per_subject=4",
        "synthesize.duration_s=[0.1,0.15]", "synthesize.neutral_frames=[2,3]",
        "eval.seeds=[0]", "models.lbptop_svm.C=[0.1]", "workers=2"]


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               MER_PROGRESS="0")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", "stages", "conf", "mer", "results"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(
            src, work / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if src.is_dir() else {}))
    (work / "params.yaml").write_text(compose_params(TINY, conf_dir=ROOT / "conf"))
    run(["git", "init", "-q"], work)
    run(["dvc", "init", "-q"], work)
    run(["dvc", "config", "hydra.enabled", "true"], work)
    run(["dvc", "repro"], work)
    return work


def test_repro_writes_metrics_and_summary(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    for method in params["methods"]:
        metrics = json.loads((project / "metrics" / f"{method}.json").read_text())
        assert metrics["n_folds"] == 3 and metrics["n_clips"] > 0
        assert 0 <= metrics["pooled"]["uf1"] <= 1
        assert (project / "models" / method / "predictions.csv").exists()
    summary = (project / "reports" / "summary.md").read_text()
    assert all(f"| {m} |" in summary for m in params["methods"])
    manifest = project / "data/interim/synthme/manifest.csv"
    assert manifest.exists() and len(manifest.read_text().splitlines()) == 1 + 3 * 4
    for folder in ("interim/synthme/magnify", "interim/synthme/flow", "features/synthme/graph"):
        index = (project / "data" / folder / "index.csv").read_text().splitlines()
        assert len(index) == 1 + 3 * 4 and all(line.endswith(",ok") for line in index[1:]), folder
    assert (project / "reports/tgsr/salient_regions_mean.png").stat().st_size > 0


def test_second_repro_is_a_fast_no_op(project):
    start = time.perf_counter()
    out = run(["dvc", "repro"], project).stdout
    assert "Running stage" not in out, out
    assert time.perf_counter() - start < 30
    status = run(["dvc", "status"], project).stdout
    assert "changed" not in status, status


def test_reproduce_marks_absent_corpora_and_runs_a_preset_through_the_dvc_queue(project):
    """`mer reproduce`: rows needing absent corpora are "not run" with the link command; with
    --dataset synthme a preset runs as a queued DVC experiment and its metrics come back."""
    (project / "conf/experiment/tiny_svm.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /dataset: casme2\n  - override /model: lbptop_svm\n"
        "preset: tiny_svm\n")
    (project / "conf/experiment/tiny_svm_samm.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /dataset: samm\n  - override /model: lbptop_svm\n"
        "preset: tiny_svm_samm\n")
    published = {"paperx": {"paper": "A paper", "tables": {"t1": {
        "caption": "LOSO", "protocol": "loso", "metrics": {"uf1": "UF1", "accuracy": "Acc"},
        "columns": {"casme2": {"dataset": "casme2"}, "samm": {"dataset": "samm"}},
        "rows": [{"method": "LBP-TOP", "ours": "lbptop_svm",
                  "cells": {"casme2": {"uf1": 0.5, "accuracy": 0.6}, "samm": {"uf1": 0.4, "accuracy": 0.5}},
                  "presets": {"casme2": "tiny_svm", "samm": "tiny_svm_samm"}},
                 {"method": "Other", "cells": {"casme2": {"uf1": 0.7, "accuracy": 0.7}}}]}}}}
    (project / "results/published.yaml").write_text(yaml.safe_dump(published))
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.org", "commit", "-qm", "tiny"], project)
    mer = [sys.executable, "-m", "mer", "reproduce", "paperx:t1"]
    run(mer, project)
    report = (project / "reports/reproduce/paperx-t1.md").read_text()
    assert report.count("not run: corpus absent") == 2
    assert "ln -s /path/to/your/samm data/raw/samm" in report
    overrides = [a for o in TINY for a in ("-S", o)]
    run([*mer, "--dataset", "synthme", "--only", "tiny_svm", *overrides], project)
    report = (project / "reports/reproduce/paperx-t1-synthme.md").read_text()
    row = next(line for line in report.splitlines() if "`tiny_svm`" in line)
    assert "ran on synthme" in row and "tiny_svm_samm" not in report
    assert f"`-S {TINY[0]}`" in report                  # the overrides are on record
    logs = run(["dvc", "queue", "logs", "tiny_svm-synthme"], project).stdout
    assert "Running stage 'train@lbptop_svm'" in logs
    assert "Running stage 'synthesize@synthme'" not in logs   # unchanged stages are not forced
    assert "not run: corpus absent" in (project / "reports/reproduce/paperx-t1.md").read_text()
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    exps = {r["name"]: r for c in shown for e in (c.get("experiments") or []) for r in e["revs"]}
    uf1 = exps["tiny_svm-synthme"]["data"]["metrics"]["metrics/lbptop_svm.json"]["data"]["pooled"]["uf1"]
    assert f"{uf1:.4f}" in row
    assert (project / "reports/reproduce/paperx-t1-synthme.png").stat().st_size > 0
    # a commit made after the run hides it from `dvc exp show`; --collect still finds it
    (project / "NOTES.md").write_text("a commit made while the queue ran\n")
    run(["git", "add", "NOTES.md"], project)
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.org", "commit", "-qm", "later"], project)
    run([*mer, "--dataset", "synthme", "--only", "tiny_svm", "--collect", *overrides], project)
    report = (project / "reports/reproduce/paperx-t1-synthme.md").read_text()
    assert f"{uf1:.4f}" in next(line for line in report.splitlines() if "`tiny_svm`" in line)
