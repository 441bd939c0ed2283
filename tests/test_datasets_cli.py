"""``mer datasets check`` / ``mer datasets link`` on fake trees built around the real sheets."""

from __future__ import annotations

import argparse
import collections
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from test_data_casme3 import ME as CASME3_ME
from test_data_casme3 import cfg_a as casme3_cfg
from test_data_casme3 import link_frames as casme3_frames
from test_data_casme3 import part_a_folder, subset_sheet
from test_data_megc2019 import NEEDED, build_composite, cfg_for
from test_data_samm import SHEET as SAMM_SHEET
from test_data_samm import build_tree as build_samm_tree
from test_data_samm import cfg_for as samm_cfg
from test_data_samm import sheet_rows as samm_rows
from test_data_samm import write_sheet as samm_sheet
from test_data_smic import small_hs

from mer.data.datasets_cli import (
    add_datasets_commands,
    check_dataset,
    dataset_params,
    link_dataset,
)
from mer.errors import MerError

pytestmark = pytest.mark.skipif(not all(p.is_file() for p in NEEDED),
                                reason="real annotation sheet fixtures absent")


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """The datasets commands under a parser shaped like mer's (``--params``, subcommands)."""
    parser = argparse.ArgumentParser(prog="mer")
    parser.add_argument("--params", default="params.yaml", type=Path)
    add_datasets_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        args.fn(args)
        code = 0
    except MerError as exc:
        print(f"error: {exc}")
        code = 2
    return code, capsys.readouterr().out


def params_for(name: str, cfg: dict) -> dict:
    return {"data": {name: cfg}, "ingest": {"apex_policy": "midpoint"}, "workers": 1}


def test_check_prints_the_summary(tmp_path):
    root, cfg = small_hs(tmp_path, (1, 3))
    text = check_dataset("smic", params_for("smic", cfg))
    assert text.splitlines()[0] == f"dataset smic (adapter smic): {root}"
    # SMIC-HS s1 (3 ne, 2 po, 1 sur) and s3 (22 ne, 11 po, 6 sur)
    assert "45 clips, 2 subjects; apex: midpoint 45" in text
    assert "smic_3class: 45 clips (negative 25, positive 13, surprise 7)" in text


def test_check_names_every_problem(tmp_path):
    root, cfg = small_hs(tmp_path, (1,))
    first = sorted((root / "HS/s1/micro/positive/s1_po_02").iterdir())[3]
    first.unlink()
    with pytest.raises(MerError) as info:
        check_dataset("smic", params_for("smic", cfg))
    assert f"s1_po_02: {first}: 1 of" in str(info.value) and "Fix:" in str(info.value)
    params = params_for("smic", cfg) | {"ingest": {"apex_policy": "annotated"}}
    with pytest.raises(MerError, match=r"7 problem\(s\) in 6 clip\(s\)"):
        check_dataset("smic", params)  # + no apex in SMIC: one line per clip under 'annotated'


def test_check_composite_per_corpus(tmp_path):
    root = build_composite(tmp_path / "megc")
    text = check_dataset("megc2019", params_for("megc2019", cfg_for(root)))
    assert "442 clips, 68 subjects" in text
    assert "megc2019_3class: 442 clips (negative 250, positive 109, surprise 83)" in text
    assert "  casme2: 145 clips, 24 subjects" in text
    assert "  samm: 133 clips, 28 subjects" in text
    assert "  smic: 164 clips, 16 subjects; apex: midpoint 164" in text


def test_link_and_refusals(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    copy, other = tmp_path / "my SMIC", tmp_path / "elsewhere"
    copy.mkdir()
    other.mkdir()
    link = link_dataset("smic", copy)
    assert link == Path("data/raw/smic") and os.readlink(link) == str(copy.resolve())
    assert link_dataset("smic", other) == link and os.readlink(link) == str(other)  # relinked
    with pytest.raises(MerError, match="not a folder"):
        link_dataset("smic", tmp_path / "missing")
    real = Path("data/raw/casme2")
    real.mkdir()
    (real / "keep.txt").write_text("user data")
    with pytest.raises(MerError, match="is not a symbolic link: not replaced"):
        link_dataset("casme2", copy)
    assert (real / "keep.txt").read_text() == "user data"
    # a dataset whose config names another relative root is linked there
    params = params_for("smic_x", {"adapter": "smic", "root": "data/raw/elsewhere/smic"})
    assert link_dataset("smic_x", copy, params) == Path("data/raw/elsewhere/smic")
    params = params_for("smic_y", {"adapter": "smic", "root": str(tmp_path / "abs")})
    with pytest.raises(MerError, match="absolute path"):
        link_dataset("smic_y", copy, params)


def test_cli_commands(tmp_path, monkeypatch, capsys):
    root, _ = small_hs(tmp_path / "copy", (3,))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "conf").symlink_to(ROOT / "conf")  # the project's dataset configs
    code, out = run_cli(["datasets", "link", "smic", str(root)], capsys)
    assert code == 0 and out.startswith(f"data/raw/smic -> {root}")
    # no params.yaml here: the config comes from conf/dataset/smic.yaml (root data/raw/smic)
    code, out = run_cli(["datasets", "check", "smic", "--workers", "1"], capsys)
    assert code == 0, out
    assert f"dataset smic (adapter smic): data/raw/smic -> {root}" in out
    assert "39 clips, 1 subjects" in out
    assert "smic_3class: 39 clips (negative 22, positive 11, surprise 6)" in out
    code, out = run_cli(["datasets", "check", "casme9"], capsys)
    assert code == 2 and "unknown dataset 'casme9'" in out and "smic" in out


def test_composed_config_is_relative():
    params = dataset_params("megc2019", ROOT / "no-such-params.yaml", ROOT / "conf")
    cfg = params["data"]["megc2019"]
    assert cfg["root"] == "data/raw/megc2019" and params["ingest"]["apex_policy"] == "midpoint"
    assert all(not Path(m["root"]).is_absolute() for m in cfg["members"].values())


def test_casme2_sheet_kind_is_recognised(tmp_path):
    """The 2014 sheet, a 2019-style sheet (with 'Objective Classes'), and the objective-class
    sheet, which is refused with the name of the sheet to use."""
    import openpyxl
    from test_data_casme2 import SHEET

    from mer.data.adapters import make_adapter

    objective = SHEET.with_name("CASME2-ObjectiveClasses.xlsx")
    if not objective.is_file():
        pytest.skip(f"objective-class sheet fixture absent: {objective}")
    cfg = {"adapter": "casme2", "root": str(tmp_path)}
    a = make_adapter("casme2", {**cfg, "sheet": str(SHEET)})
    assert len(a.annotations()) == 255 and a.revision == "2014"

    wb = openpyxl.load_workbook(SHEET)  # the 2019 layout: the coding sheet + objective classes
    ws = wb.worksheets[0]
    classes = {(r[0], r[1]): r[2] for r in openpyxl.load_workbook(objective).worksheets[0]
               .iter_rows(min_row=2, values_only=True) if r[0] is not None}
    col = ws.max_column + 1
    ws.cell(1, col).value = "Objective Classes"
    for r in range(2, ws.max_row + 1):
        ws.cell(r, col).value = classes.get((ws.cell(r, 1).value, ws.cell(r, 2).value))
    wb.save(tmp_path / "CASME2-coding-2019.xlsx")
    a = make_adapter("casme2", {**cfg, "sheet": "CASME2-coding-2019.xlsx"})
    assert len(a.annotations()) == 255 and a.revision == "2019"

    with pytest.raises(MerError, match="objective-class sheet .* not its coding sheet"):
        make_adapter("casme2", {**cfg, "sheet": str(objective)}).annotations()


def test_check_samm_summary_and_broken_frame(tmp_path):
    if not SAMM_SHEET.is_file():
        pytest.skip(f"real SAMM sheet fixture absent: {SAMM_SHEET}")
    subjects = {"006", "028"}
    sheet = samm_sheet(tmp_path / "samm_test.xlsx", subjects)
    build_samm_tree(tmp_path, sheet)
    params = params_for("samm", samm_cfg(tmp_path, sheet.name)) | {
        "ingest": {"apex_policy": "annotated"}}
    # the emotions of those subjects, read from the real sheet independently of the adapter
    emotions = collections.Counter(str(r["Estimated Emotion"]).strip().lower()
                                   for r in samm_rows(SAMM_SHEET)[1] if r["Subject"] in subjects)
    assert emotions == {"anger": 7, "surprise": 4, "sadness": 1, "fear": 1, "contempt": 1}
    text = check_dataset("samm", params)
    assert text.splitlines()[0] == f"dataset samm (adapter samm): {tmp_path}"
    # 028_4_1's apex lies past its offset: the packaged fix makes it the midpoint
    assert "14 clips, 2 subjects; apex: annotated 13, midpoint 1" in text
    assert "samm_5class: 12 clips (anger 7, surprise 4, contempt 1)" in text
    assert "samm_3class: 14 clips (negative 10, surprise 4)" in text
    assert "samm_all: 14 clips (anger 7, surprise 4, sadness 1, fear 1, contempt 1)" in text

    gone = sorted((tmp_path / "SAMM/006/006_1_2").iterdir())[5]
    gone.unlink()
    with pytest.raises(MerError) as info:
        check_dataset("samm", params)
    msg = str(info.value)
    assert "1 problem(s) in 1 clip(s) of dataset 'samm'" in msg
    assert f"006_1_2: {gone}: 1 of" in msg and f"missing: {gone.name}" in msg


def test_check_casme3_summary_and_broken_frame(tmp_path):
    if not CASME3_ME.is_file():
        pytest.skip(f"real CAS(ME)^3 sheet fixture absent: {CASME3_ME}")
    subjects = {"spNO.1", "spNO.2"}
    sheet = subset_sheet(tmp_path / "me_test.xlsx", CASME3_ME, subjects)
    rows = pd.read_excel(sheet, dtype=str)
    casme3_frames(tmp_path, rows, part_a_folder)
    emotions = collections.Counter(rows["emotion"].str.strip().str.lower())
    assert emotions == {"others": 7, "surprise": 5, "happy": 4, "fear": 3, "disgust": 1}
    params = params_for("casme3", casme3_cfg(tmp_path, sheet.name)) | {
        "ingest": {"apex_policy": "annotated"}}
    text = check_dataset("casme3", params)
    assert text.splitlines()[0] == f"dataset casme3 (adapter casme3): {tmp_path}"
    assert "20 clips, 2 subjects; apex: annotated 20" in text
    assert "casme3_3class: 13 clips (surprise 5, negative 4, positive 4)" in text
    assert "casme3_4class: 20 clips (others 7, surprise 5, negative 4, positive 4)" in text
    assert ("casme3_7class: 20 clips (others 7, surprise 5, happiness 4, fear 3, disgust 1)"
            in text)

    first = rows.iloc[0]
    folder = tmp_path / part_a_folder(first)
    gone = folder / f"{int(first.Onset) + 1}.jpg"
    gone.unlink()
    with pytest.raises(MerError) as info:
        check_dataset("casme3", params)
    msg = str(info.value)
    assert "1 problem(s) in 1 clip(s) of dataset 'casme3'" in msg
    assert f"{gone}: 1 of" in msg and f"missing: {gone.name}" in msg
