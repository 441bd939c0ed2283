"""``mer export``: one self-contained model file that ``mer predict`` can run on a user's video.

Why one file holding more than the weights: a model is only usable with the preprocessing it was
trained on (face crop geometry, TIM lengths, LBP-TOP grid, magnification, flow and graph settings)
and the class names of its label scheme.  ``model.mer`` is a zip of

* ``header.json``: format and ``mer`` version, the method and its params section, the
  preprocessing params sections its ``inputs`` need (fully expanded with the defaults of this
  ``mer`` version, so a later change of a default cannot silently change the preprocessing), the
  apex policy of ingest, the label scheme and class names, the training datasets and clip count,
  and the seed;
* ``model.pkl``: the fitted method object (pickle; torch modules inside are pickled with it).

The model is a *final* model: fitted on every labelled clip of ``eval.datasets`` (no test fold),
so it has no score of its own; its method's cross-validated metrics are in ``metrics/``.

Security: like any pickle, loading a model file runs code chosen by whoever wrote it.  Load only
model files from a trusted source (your own exports, or a colleague's you trust).
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from mer import __version__, artifacts
from mer.config import EvalParams, validate
from mer.errors import MerError
from mer.io import atomic_path

FORMAT = "mer-model"
FORMAT_VERSION = 1
HEADER = "header.json"
PAYLOAD = "model.pkl"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip entry time: the same model gives the same bytes


def default_path(method: str) -> Path:
    """``models/<method>/model.mer``."""
    return artifacts.MODELS / method / "model.mer"


def preprocessing_sections(inputs: tuple[str, ...], params: dict) -> dict[str, dict]:
    """The params sections (expanded with their defaults) of the stages behind ``inputs``, plus
    ``ingest`` (its apex policy decides how ``mer predict`` places the apex)."""
    from mer.data.stage import IngestParams
    from mer.predict.chain import expand_section, stages_for

    sections = {name: expand_section(name, params.get(name)) for name in stages_for(inputs, params)}
    sections["ingest"] = asdict(validate(params.get("ingest"), IngestParams, "ingest"))
    return sections


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def export_model(method: str, params: dict, out: str | Path | None = None) -> Path:
    """Fit ``method`` on every labelled clip of ``params['eval']['datasets']`` and write one model
    file to ``out`` (default ``models/<method>/model.mer``), atomically.  Returns the path.

    Reads the artifacts of the current directory (the repository root) like ``mer train``.  The
    fit's generator is seeded with the first of ``eval.seeds``.  A transductive method (TGSR)
    gets the training clips themselves, labels hidden, as its unlabelled set: at export time no
    target domain is known, so its MMD term aligns the training data with itself (a no-op).
    """
    from mer.eval.runner import dataset_schemes, load_samples
    from mer.methods.registry import build, get_method

    ev = validate(params.get("eval"), EvalParams, "eval")
    section = (params.get("models") or {}).get(method) or {}
    model = build(method, section)            # validates the method's section first
    cls = get_method(method)
    header_params = preprocessing_sections(tuple(cls.inputs), params)
    samples, skipped = load_samples(ev.datasets, ev.scheme, tuple(cls.inputs), ev.schemes)
    if len(samples) == 0:
        raise MerError(f"no labelled clips for scheme '{ev.scheme}' in {ev.datasets}", "params.yaml",
                       "check eval.datasets and eval.scheme, and run: dvc repro")
    seed = int(ev.seeds[0]) if ev.seeds else int(params.get("seed", 0))
    rng = np.random.default_rng(seed)
    if getattr(model, "transductive", False):
        model.fit(samples, rng, unlabeled=samples.subset(np.arange(len(samples)), hide_labels=True))
    else:
        model.fit(samples, rng)
    schemes = dataset_schemes(ev.datasets, ev.scheme, ev.schemes)
    header: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "mer_version": __version__,
        "method": method, "model_params": asdict(validate(section, cls.Params, f"models.{method}")),
        "params": header_params,
        "scheme": ev.scheme, "schemes": schemes, "classes": list(samples.classes),
        "inputs": list(cls.inputs), "datasets": list(ev.datasets), "n_clips": len(samples),
        "n_skipped": skipped, "seed": seed}
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    out = Path(out) if out is not None else default_path(method)
    with atomic_path(out) as tmp:
        tmp.write_bytes(_zip_bytes({HEADER: (json.dumps(header, indent=2, sort_keys=True) + "\n")
                                    .encode(), PAYLOAD: payload}))
    return out


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(str(version).split(".")[:2])


def read_header(path: str | Path) -> dict:
    """The ``header.json`` of a model file, checked for format and version (see :func:`load_model`)."""
    path = Path(path)
    if not path.is_file():
        raise MerError("model file not found", path,
                       "give --model the path of a file written by: mer export <method>")
    not_model = MerError("not a mer model file (no readable header.json inside)", path,
                         "give --model a file written by: mer export <method>")
    if not zipfile.is_zipfile(path):
        raise not_model
    try:
        with zipfile.ZipFile(path) as zf:
            header = json.loads(zf.read(HEADER))
    except (KeyError, ValueError, zipfile.BadZipFile):
        raise not_model from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise not_model
    if header.get("format_version") != FORMAT_VERSION:
        raise MerError(f"model file format version {header.get('format_version')} (written by mer "
                       f"{header.get('mer_version')}); this mer {__version__} reads version "
                       f"{FORMAT_VERSION}", path,
                       f"re-export the model with this mer version: mer export {header.get('method')}")
    if _major_minor(header.get("mer_version", "")) != _major_minor(__version__):
        raise MerError(f"model exported by mer {header.get('mer_version')}, incompatible with this "
                       f"mer {__version__} (major.minor differ)", path,
                       f"re-export the model with this mer version: mer export {header.get('method')}")
    return header


def load_model(path: str | Path) -> tuple[Any, dict]:
    """``(fitted model, header)`` from a model file written by :func:`export_model`.

    Refuses, with one :class:`MerError` naming the file and the fix, a missing file, a file that
    is not a model, another format version, or a model of an incompatible ``mer`` version
    (major.minor differ).  Unpickling runs code from the file: trusted sources only.
    """
    header = read_header(path)
    try:
        with zipfile.ZipFile(path) as zf:
            model = pickle.loads(zf.read(PAYLOAD))
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, KeyError,
            TypeError, ValueError, zipfile.BadZipFile) as exc:  # truncated, or a class gone
        raise MerError(f"the model inside cannot be loaded ({type(exc).__name__}: {exc})", path,
                       f"re-export the model with this mer version: mer export {header['method']}"
                       ) from None
    return model, header
