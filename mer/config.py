"""Params: read ``params.yaml`` (the Hydra composition of ``conf/``) and validate every section.

Why: DVC passes stages whatever ``params.yaml`` holds, and Hydra happily composes a misspelt key.
A typo must not silently fall back to a default, so each section is checked against a dataclass
schema here (OmegaConf structured configs, the Hydra idiom): an unknown key or a wrong type is one
:class:`~mer.errors.MerError` naming the file, the dotted key and the closest valid key.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Type, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mer.errors import MerError
from mer.eval.executors import RayParams

T = TypeVar("T")
PARAMS_FILE = Path("params.yaml")


def validate(section: dict | None, schema: Type[T], where: str, source: str | Path = PARAMS_FILE) -> T:
    """Merge ``section`` onto the defaults of dataclass ``schema``; unknown keys/types are errors."""
    section = check_keys(section, schema, where, source)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), section)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise MerError(f"bad value in '{where or 'params'}': {str(exc).splitlines()[0]}", source,
                       f"check the types of '{where}' against conf/") from None


def check_keys(section: Any, schema: type, where: str, source: str | Path = PARAMS_FILE) -> dict:
    """``section`` as a dict whose keys are all fields of dataclass ``schema``, else a MerError.

    The error names the dotted key and the closest valid key (case-insensitive), so a typo such as
    ``eval.seedz`` reads 'did you mean eval.seeds?' rather than silently using the default.
    """
    section = {} if section is None else section
    if not isinstance(section, Mapping):
        raise MerError(f"'{where}' must be a mapping, got {section!r}", source,
                       f"write '{where}:' as a block of keys")
    names = {f.name for f in fields(schema)}
    dotted = (lambda key: f"{where}.{key}") if where else str
    for key in section:
        if key not in names:
            lower = {n.lower(): n for n in names}
            close = difflib.get_close_matches(str(key).lower(), sorted(lower), n=1)
            hint = f"did you mean '{dotted(lower[close[0]])}'?" if close else \
                f"valid keys are: {', '.join(sorted(names))}"
            raise MerError(f"unknown key '{dotted(key)}'", source, hint)
    return dict(section)


@dataclass
class EvalParams:
    """``eval``: which clips are evaluated, how folds are formed, what is repeated."""

    datasets: list[str] = field(default_factory=lambda: ["synthme"])  # pooled (composite) when several
    protocol: str = "loso"            # a name in mer.eval.protocols.PROTOCOLS
    scheme: str = "casme2_5class"     # a label scheme of mer.data.schemes
    k: int = 5                        # folds of the subject_kfold protocol
    schemes: dict[str, str] = field(default_factory=dict)  # per-dataset scheme (else `scheme`)
    experiments: list[str] = field(default_factory=list)    # cdmer: 'source->target' datasets
    aliases: dict[str, str] = field(default_factory=dict)   # dataset -> short name in reports (H, C)
    oracle: bool = False              # cdmer: also run the oracle variant (selection on target labels)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    permutation_control: bool = True  # rerun with permuted labels: must stay at chance
    executor: str = "serial"          # serial | process | ray: where folds run (mer.eval.executors)
    ray: RayParams = field(default_factory=RayParams)  # executor ray: cluster address, resources


@dataclass
class Params:
    """The top level of ``params.yaml``; sections owned by other modules are validated there."""

    seed: int = 0
    workers: int = 0                  # per-clip worker processes (0 = one per core)
    preset: str = ""                  # the conf/experiment preset composed in ('' = none)
    datasets: list[str] = field(default_factory=lambda: ["synthme"])
    synthetic: list[str] = field(default_factory=list)        # SynthME corpora `synthesize` builds
    pretraining: list[str] = field(default_factory=list)      # corpora built for pre-training, never evaluated
    methods: list[str] = field(default_factory=lambda: ["lbptop_svm"])
    data: dict[str, Any] = field(default_factory=dict)        # mer.data adapters
    synthesize: dict[str, Any] = field(default_factory=dict)  # mer.synth.SynthParams
    ingest: dict[str, Any] = field(default_factory=dict)      # mer.data.stage.IngestParams
    crop: dict[str, Any] = field(default_factory=dict)        # mer.face.crop.CropParams
    tim: dict[str, Any] = field(default_factory=dict)         # mer.temporal.stage.TimParams
    lbptop: dict[str, Any] = field(default_factory=dict)      # mer.features.stage.LbpTopParams
    magnify: dict[str, Any] = field(default_factory=dict)     # mer.motion.magnify.MagnifyParams
    flow: dict[str, Any] = field(default_factory=dict)        # mer.motion.flow.FlowParams
    graph: dict[str, Any] = field(default_factory=dict)       # mer.features.graph_stage.GraphParams
    eval: dict[str, Any] = field(default_factory=dict)        # EvalParams
    models: dict[str, Any] = field(default_factory=dict)      # one block per registered method


def load_params(path: str | Path = PARAMS_FILE) -> dict:
    """Read ``params.yaml``; check its top-level keys.  Sections are validated by their owners."""
    path = Path(path)
    if not path.exists():
        raise MerError("params file not found", path, "run from the repository root, or "
                       "recompose it: python -m mer params --write")
    raw = yaml.safe_load(path.read_text()) or {}
    validate(raw, Params, "", path)  # top-level keys and types
    return raw


CONF_DIR = Path("conf")


def compose_params(overrides: list[str] | None = None, conf_dir: str | Path = CONF_DIR) -> str:
    """The YAML that ``dvc exp run -S <overrides>`` would write to ``params.yaml``.

    Uses DVC's own Hydra composition so the two can never disagree.
    """
    import tempfile

    from dvc.utils.hydra import compose_and_dump

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        compose_and_dump(out, str(Path(conf_dir).resolve()), None, "config", "", list(overrides or []))
        return out.read_text()
