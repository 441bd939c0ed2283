"""``mer datasets check <name>`` and ``mer datasets link <name> <path>``: pointing the pipeline at a
user's licensed corpus copy, and telling them whether ``mer`` reads it, before any stage runs.

Why symlinks under ``data/raw/``: the dataset configs (``conf/dataset/<name>.yaml``) name relative
roots such as ``data/raw/samm``, so params, ``dvc.yaml`` dependencies and ``dvc.lock`` never hold
a path of one user's machine; the only absolute path is the link's target, which git ignores.

A dataset's config is taken from ``params.yaml`` when it lists the dataset, else composed from
``conf/`` with ``dataset=<name>`` (as ``dvc exp run -S dataset=<name>`` would), so a user can check
any supported corpus without first switching the pipeline to it.
"""

from __future__ import annotations

import argparse
import collections
import os
from pathlib import Path
from typing import Any

import yaml

from mer.errors import MerError

RAW = Path("data/raw")


def dataset_params(name: str, params_file: str | Path = "params.yaml",
                   conf_dir: str | Path = "conf") -> dict[str, Any]:
    """Params holding ``data.<name>``: params.yaml's when it has it, else the conf composition."""
    from mer.config import compose_params, load_params

    params_file = Path(params_file)
    if params_file.is_file():
        params = load_params(params_file)
        if name in (params.get("data") or {}):
            return params
    options = sorted(p.stem for p in Path(conf_dir).glob("dataset/*.yaml"))
    if name not in options:
        raise MerError(f"unknown dataset '{name}'", params_file,
                       f"use one of {', '.join(options)}, or add conf/dataset/{name}.yaml")
    return yaml.safe_load(compose_params([f"dataset={name}"], conf_dir=conf_dir))


def summary(name: str, cfg: dict[str, Any], clips: list) -> str:
    """What a user checks first: where the corpus is read from and what it yields per scheme."""
    from mer.data.ingest import describe

    root = Path(cfg["root"])
    lines = [f"dataset {name} (adapter {cfg['adapter']}): {root}"
             + (f" -> {root.resolve()}" if root.is_symlink() else ""),
             describe(clips)]
    corpora = collections.Counter(c.corpus for c in clips)
    if len(corpora) > 1:  # a composite: each member's share
        for corpus in corpora:
            part = describe([c for c in clips if c.corpus == corpus]).splitlines()
            lines.append(f"  {corpus}: " + part[0])
            lines += [f"  {line}" for line in part[1:]]
    return "\n".join(lines)


def check_dataset(name: str, params: dict[str, Any], workers: int | None = None) -> str:
    """Ingest (read and validate, write nothing) and summarise; every problem is one MerError."""
    from mer import artifacts
    from mer.config import validate
    from mer.data.ingest import ingest
    from mer.data.stage import IngestParams

    cfg = artifacts.dataset_config(params, name)
    policy = validate(params.get("ingest"), IngestParams, "ingest").apex_policy
    clips = ingest(name, cfg, params.get("workers", 0) if workers is None else workers, policy)
    return summary(name, cfg, clips)


def link_dataset(name: str, target: str | Path, params: dict[str, Any] | None = None) -> Path:
    """Make ``data/raw/<name>`` (or the dataset's relative root) a symlink to ``target``.

    An existing link is replaced; anything else there is never touched.
    """
    target = Path(target).expanduser()
    if not target.is_dir():
        raise MerError("not a folder", target, "give the folder of your copy of the corpus")
    link = RAW / name
    if params is not None and name in (params.get("data") or {}):
        root = Path(str(params["data"][name].get("root", link)))
        if root.is_absolute():
            raise MerError(f"data.{name}.root is an absolute path ({root})", "params",
                           f"set it to {link} (then link), or use it as it is without a link")
        link = root
    if link.exists() and not link.is_symlink():
        raise MerError("exists and is not a symbolic link: not replaced", link,
                       "move it away (it may be your only copy), then link again")
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.link-tmp")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target.resolve(), tmp, target_is_directory=True)
    os.replace(tmp, link)  # atomic: the old link (if any) is never missing
    return link


def _cmd_check(args: argparse.Namespace) -> None:
    params = dataset_params(args.name, args.params)
    print(check_dataset(args.name, params, args.workers))


def _cmd_link(args: argparse.Namespace) -> None:
    params = dataset_params(args.name, args.params)
    link = link_dataset(args.name, args.path, params)
    print(f"{link} -> {os.readlink(link)}\nnext: mer datasets check {args.name}")


def add_datasets_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``datasets check <name>`` and ``datasets link <name> <path>`` on the mer CLI.

    Expects the top-level parser to define ``--params`` (as :func:`mer.cli.build_parser` does).
    """
    p = subparsers.add_parser("datasets", help="check or link a user's corpus copy")
    sub = p.add_subparsers(dest="datasets_command", metavar="<action>", required=True)
    c = sub.add_parser("check", help="read and validate a corpus; print clips, subjects and "
                                     "per-scheme class counts, or every problem with its fix")
    c.add_argument("name", help="a dataset (conf/dataset/<name>.yaml or params 'data')")
    c.add_argument("--workers", type=int, default=None,
                   help="validation processes (default: params 'workers')")
    c.set_defaults(fn=_cmd_check)
    k = sub.add_parser("link", help="symlink data/raw/<name> to your copy of the corpus")
    k.add_argument("name", help="a dataset (conf/dataset/<name>.yaml or params 'data')")
    k.add_argument("path", type=Path, help="the folder of your copy")
    k.set_defaults(fn=_cmd_link)
