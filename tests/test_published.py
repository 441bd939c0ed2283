"""results/published.yaml: every preset it names composes, every method has a published row, and
`mer reproduce` on a machine without corpora reports every row as not run, with the link command."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mer.config import compose_params
from mer.eval.reproduce import load_published, reproduce, select_cells
from mer.methods.registry import METHODS, _import_all

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = load_published(ROOT / "results/published.yaml")
PRESETS = sorted({p for paper in PUBLISHED.values() for table in paper["tables"].values()
                  for row in table["rows"] for p in (row.get("presets") or {}).values()})


def test_every_registered_method_has_a_published_row():
    _import_all()
    ours = {row.get("ours") for paper in PUBLISHED.values() for table in paper["tables"].values()
            for row in table["rows"]}
    missing = sorted(m for m in METHODS if not m.startswith("_") and m not in ours)
    assert not missing, f"methods without a row in results/published.yaml: {missing}"


def test_every_preset_exists_composes_and_names_itself():
    assert PRESETS
    for preset in PRESETS:
        assert (ROOT / "conf/experiment" / f"{preset}.yaml").exists(), preset
        params = yaml.safe_load(compose_params([f"+experiment={preset}"], conf_dir=ROOT / "conf"))
        assert params["preset"] == preset
        on_synthme = yaml.safe_load(compose_params([f"+experiment={preset}", "dataset=synthme"],
                                                   conf_dir=ROOT / "conf"))
        assert on_synthme["preset"] == preset


def test_published_numbers_are_fractions_and_every_table_prints_some():
    for paper, info in PUBLISHED.items():
        for name, table in info["tables"].items():
            values = [v for row in table["rows"] for cell in row["cells"].values()
                      for v in (cell or {}).values()]
            numbers = [v for v in values if v is not None]   # null: a bar whose value is not printed
            assert numbers, f"{paper}.{name} has no number"
            assert all(0 <= v <= 1 for v in numbers), f"{paper}.{name}: accuracy as a fraction"


@pytest.mark.parametrize("paper", sorted(PUBLISHED))
def test_reproduce_without_corpora_marks_every_row_not_run(paper, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)          # presets compose from conf/; corpora roots are data/raw/<name>
    absent = [c for c in select_cells(PUBLISHED, paper)[2]]
    if any(Path(ROOT / "data/raw" / d).exists() for d in ("casme2", "samm", "smic", "casme", "casme3")):
        pytest.skip("a real corpus is linked in data/raw: rows would run")
    path = reproduce(paper, out_dir=tmp_path)
    text = path.read_text()
    with_preset = [c for c in absent if c.preset]
    assert text.count("| not run: corpus absent") == len(with_preset)
    assert text.count("| not run: no preset yet") == len(absent) - len(with_preset)
    assert not with_preset or "ln -s /path/to/your/" in text


def test_a_composite_member_column_reads_that_corpus_sub_score():
    """MoExt Table 6: the SMIC-HS column is the composite run's SMIC clips, not its pooled score."""
    from mer.eval.reproduce import _read_scores
    cells = {c.column: c for c in select_cells(PUBLISHED, "moext:table6")[2]}
    assert cells["smic"].part == "smic" and cells["combined"].part == ""
    metrics = {"protocol": "loso", "pooled": {"uf1": 0.9, "uar": 0.8}, "pooled_std": {"uf1": 0.01, "uar": 0.02},
               "corpora": {"smic": {"uf1": 0.5, "uar": 0.4}, "casme2": {"uf1": 0.7, "uar": 0.6}}}
    _read_scores(cells["smic"], metrics)
    _read_scores(cells["combined"], metrics)
    _read_scores(cells["samm"], metrics)                  # a member the run did not score
    assert cells["smic"].ours == {"uf1": 0.5, "uar": 0.4}
    assert cells["combined"].ours == {"uf1": 0.9, "uar": 0.8}
    assert cells["samm"].ours == {}
