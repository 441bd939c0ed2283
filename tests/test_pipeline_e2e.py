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
