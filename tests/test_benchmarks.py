"""The benchmark command runs, checks agreement with its references and reports every case.

Speed targets themselves are not asserted here (a shared CI machine makes timings noisy);
`make bench` prints them with the ratio measured in one run, and `--strict` fails on a miss.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_run_and_report_ratios(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--rounds", "2", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert {"tim_100_to_64", "lbptop_r1"} <= set(rows)
    for row in rows.values():
        assert row["ours_ms"] > 0 and row["reference_ms"] > 0
        assert row["ratio"] == pytest.approx(row["reference_ms"] / row["ours_ms"], rel=1e-3)
        assert "identical" in row["agreement"] or "max |diff|" in row["agreement"]
    assert "ratio" in proc.stdout
