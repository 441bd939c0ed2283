"""reports/summary.md: published rows beside a preset's run, and differences flagged only beyond noise."""

from __future__ import annotations

import json

import numpy as np

from mer.eval.report import compare, published_cells, write_summary


def _metrics(tmp_path, name: str, fold_uf1: np.ndarray, std: float, preset: str = "") -> None:
    folds = {f"s/{i:02d}": {"accuracy": float(v), "uf1": float(v), "uar": float(v), "n": 10}
             for i, v in enumerate(fold_uf1)}
    pooled = {k: float(np.mean(fold_uf1)) for k in ("accuracy", "uf1", "uar")}
    m = {"method": name, "preset": preset, "datasets": "synthme", "protocol": "loso",
         "scheme": "casme2_5class", "n_clips": 100, "n_folds": len(fold_uf1), "n_seeds": 3,
         "selection": "train-only", "pooled": pooled, "pooled_std": {k: std for k in pooled},
         "folds": folds, "control": {"permuted_labels": {"uf1": 0.2}}}
    (tmp_path / f"{name}.json").write_text(json.dumps(m))


def test_difference_is_flagged_only_beyond_fold_and_seed_noise(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.4, 0.8, 20)
    _metrics(tmp_path, "a", base + 0.1, 0.01)
    _metrics(tmp_path, "b", base, 0.01)
    _metrics(tmp_path, "c", base + rng.normal(0, 0.05, 20), 0.01)   # same mean, fold noise
    _metrics(tmp_path, "d", base + 0.1, 0.2)                         # consistent, but seeds disagree
    table = compare(["a", "b", "c", "d"], tmp_path)
    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in table.splitlines()[2:]}
    assert rows["a vs b"] == "differ"
    assert rows["b vs c"] == "within noise"
    assert rows["b vs d"] == "within noise"
    assert compare(["a"], tmp_path) == ""


def test_a_preset_run_shows_the_published_cell_it_reproduces(tmp_path):
    published = tmp_path / "published.yaml"
    published.write_text("p:\n  tables:\n    t:\n      rows:\n"
                         "        - {method: Ours full, ours: a, cells: {casme2: {uf1: 0.71, accuracy: 0.8}},"
                         " presets: {casme2: a_full}}\n"
                         "        - {method: Other, cells: {casme2: {uf1: 0.5}}}\n")
    assert published_cells("a", "a_full", published) == [("p:t Ours full (casme2)",
                                                           {"uf1": 0.71, "accuracy": 0.8})]
    assert published_cells("b", "a_full", published) == []
    assert published_cells("a", "", published) == []
    _metrics(tmp_path, "a", np.full(6, 0.6), 0.0, preset="a_full")
    text = write_summary(["a"], tmp_path / "summary.md", tmp_path, published)
    assert "| paper: p:t Ours full (casme2) |" in text and "| 0.800 | 0.710 | - | - | published |" in text


def test_a_published_cell_without_a_printed_number_shows_a_dash(tmp_path):
    """MAN's Fig. 4 prints no value for its RoI bars (null): the summary still renders."""
    published = tmp_path / "published.yaml"
    published.write_text("p:\n  tables:\n    f:\n      rows:\n"
                         "        - {method: Mouth, ours: a, cells: {merged: {accuracy: null}},"
                         " presets: {merged: a_mouth}}\n")
    _metrics(tmp_path, "a", np.full(6, 0.6), 0.0, preset="a_mouth")
    text = write_summary(["a"], tmp_path / "summary.md", tmp_path, published)
    assert "| paper: p:f Mouth (merged) |" in text and "| - | - | - | - | published |" in text
