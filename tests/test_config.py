"""Params: params.yaml is the default Hydra composition; every group option composes and validates."""

from pathlib import Path

import pytest
import yaml

from mer.config import EvalParams, Params, compose_params, load_params, validate
from mer.data.stage import IngestParams
from mer.features.stage import LbpTopParams
from mer.temporal.stage import TimParams
from mer.errors import MerError

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def stage_schemas() -> dict:
    """The params dataclasses of the motion and graph stages, by section."""
    from mer.features.graph_stage import GraphParams
    from mer.motion.flow import FlowParams
    from mer.motion.magnify import MagnifyParams
    return {"magnify": MagnifyParams, "flow": FlowParams, "graph": GraphParams}


def check_sections(params: dict) -> None:
    """Every section validates against its owner's schema (as the stages will)."""
    from mer.face.crop import CropParams
    from mer.methods.registry import build
    from mer.synth import SynthParams

    validate(params, Params, "")
    validate(params["eval"], EvalParams, "eval")
    validate(params["ingest"], IngestParams, "ingest")
    validate(params["tim"], TimParams, "tim")
    validate(params["lbptop"], LbpTopParams, "lbptop")
    CropParams.from_dict(params["crop"])
    SynthParams.from_dict(params["synthesize"])
    for key, schema in stage_schemas().items():
        validate(params[key], schema, key)
    for method in params["methods"]:
        build(method, params["models"][method])


def test_committed_params_equal_the_default_composition():
    assert (ROOT / "params.yaml").read_text() == compose_params(conf_dir=CONF), \
        "params.yaml is stale: run `python -m mer params --write`"


@pytest.mark.parametrize("group", ["dataset", "model", "profile", "experiment"])
def test_every_group_option_composes_and_validates(group):
    assert options(group), f"conf/{group} is empty"
    prefix = "+" if group == "experiment" else ""   # experiments are optional: -S +experiment=...
    for option in options(group):
        params = yaml.safe_load(compose_params([f"{prefix}{group}={option}"], conf_dir=CONF))
        check_sections(params)
        for dataset in params["datasets"]:
            assert dataset in params["data"], f"{group}={option}: no data.{dataset} block"


def test_model_option_selects_its_method():
    params = yaml.safe_load(compose_params(["model=lbptop_svm"], conf_dir=CONF))
    assert params["methods"] == ["lbptop_svm"]


def test_unknown_key_is_an_error_naming_file_and_key(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("apex_policy:", "apex_polcy:")
    (tmp_path / "params.yaml").write_text(text)
    params = load_params(tmp_path / "params.yaml")
    with pytest.raises(MerError, match=r"unknown key 'ingest.apex_polcy'.*did you mean 'ingest.apex_policy'"):
        validate(params["ingest"], IngestParams, "ingest", tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text(text + "\nwokers: 3\n")
    with pytest.raises(MerError, match=r"params.yaml: unknown key 'wokers'"):
        load_params(tmp_path / "params.yaml")


def test_dvc_stage_list_resolves_every_stage():
    import subprocess
    import sys

    dvc = Path(sys.executable).with_name("dvc")
    out = subprocess.run([str(dvc), "stage", "list", "--all"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    stages = {line.split()[0] for line in out.splitlines() if line.strip()}
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    expected = {"report"} | {f"synthesize@{c}" for c in params["synthetic"]}
    expected |= {f"{s}@{d}" for s in ("ingest", "crop", "tim", "lbptop", "magnify", "flow", "graph")
                 for d in params["datasets"]}
    expected |= {f"train@{m}" for m in params["methods"]}
    assert expected <= stages, f"missing stages: {expected - stages}"


def test_conf_restates_the_schema_defaults():
    """conf/ is what runs; the dataclasses are what library users get: they must agree."""
    from dataclasses import asdict

    from mer.face.crop import CropParams
    from mer.methods.registry import get_method
    from mer.synth import SynthParams

    base = yaml.safe_load((CONF / "base.yaml").read_text())
    plain = lambda d: yaml.safe_load(yaml.safe_dump(d))  # tuples -> lists, like the YAML side
    assert base["synthesize"] == plain(SynthParams().to_dict())
    assert base["crop"] == plain(asdict(CropParams()))
    for key, schema in (("ingest", IngestParams), ("tim", TimParams), ("lbptop", LbpTopParams),
                        ("eval", EvalParams), *stage_schemas().items()):
        assert base[key] == plain(asdict(schema())), key
    for option in options("model"):
        if option.endswith("_paper"):
            continue
        section = yaml.safe_load((CONF / "model" / f"{option}.yaml").read_text()).get("models", {})
        for method, values in section.items():
            # the defaults restate the quick profile (conf/model/<m>.yaml) or, for a method whose
            # defaults are its paper's configuration, the paper composition (model=<m>_paper)
            candidates = [values]
            if (CONF / "model" / f"{method}_paper.yaml").exists():
                candidates.append(yaml.safe_load(compose_params([f"model={method}_paper"],
                                                                conf_dir=CONF))["models"][method])
            assert plain(asdict(get_method(method).Params())) in candidates, method
