"""Where each stage's artifacts live: one place, so stages and methods never spell paths twice.

Every per-clip artifact is ``<dir>/<clip_id>.npz``; ``<dir>/index.csv`` lists the clips a stage
processed and its status (``ok`` or ``skipped: <reason>``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mer.errors import MerError

RAW = Path("data/raw")
INTERIM = Path("data/interim")
FEATURES = Path("data/features")
MODELS = Path("models")
METRICS = Path("metrics")
REPORTS = Path("reports")

# artifact kind -> directory template (relative to the repository root)
KINDS: dict[str, str] = {
    "crop": "data/interim/{dataset}/crop",
    "tim": "data/interim/{dataset}/tim",        # one sub-folder per length: tim/16, tim/64
    "lbptop": "data/features/{dataset}/lbptop",
    "magnify": "data/interim/{dataset}/magnify",  # onset/apex/offset (or every frame), magnified
    "flow": "data/interim/{dataset}/flow",        # TV-L1 u, v, strain, magnitude per frame pair
    "graph": "data/features/{dataset}/graph",     # landmark-graph node features of the key frames
}


def manifest_path(dataset: str) -> Path:
    """The manifest written by ``ingest@<dataset>``."""
    return INTERIM / dataset / "manifest.csv"


def artifact_dir(kind: str, dataset: str) -> Path:
    """Directory of artifact ``kind`` for ``dataset``; ``tim<N>`` is TIM to N frames."""
    if kind in KINDS:
        return Path(KINDS[kind].format(dataset=dataset))
    if kind.startswith("tim") and kind[3:].isdigit():
        return artifact_dir("tim", dataset) / kind[3:]
    raise KeyError(f"unknown artifact kind '{kind}' (known: {', '.join(KINDS)})")


def artifact_path(kind: str, dataset: str, clip_id: str) -> Path:
    return artifact_dir(kind, dataset) / f"{clip_id}.npz"


def write_index(directory: Path, rows: list[dict]) -> None:
    """``index.csv``: one row per clip the stage saw, with ``ok`` or ``skipped: <reason>``."""
    pd.DataFrame(rows, columns=["clip_id", "status"]).to_csv(
        Path(directory) / "index.csv", index=False, lineterminator="\n")


def read_index(directory: Path, stage: str) -> pd.DataFrame:
    """The ``index.csv`` of an upstream stage's output, or an error saying which stage to run."""
    path = Path(directory) / "index.csv"
    if not path.exists():
        raise MerError("artifacts not found", path, f"run: dvc repro {stage}")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def carry_statuses(index: pd.DataFrame, done: dict[str, dict]) -> list[dict]:
    """This stage's rows: its own results for processed clips, upstream skips carried over."""
    return [done.get(c, {"clip_id": c, "status": s}) for c, s in zip(index["clip_id"], index["status"])]


def ok_clips(index: pd.DataFrame) -> list[str]:
    return index.loc[index["status"] == "ok", "clip_id"].tolist()


def dataset_config(params: dict, dataset: str) -> dict:
    """The ``data.<dataset>`` block, or an error saying how to add one."""
    data = params.get("data") or {}
    if dataset not in data:
        raise MerError(f"dataset '{dataset}' has no 'data.{dataset}' block", "params.yaml",
                       f"add conf/dataset/{dataset}.yaml or pick a dataset with -S dataset=...")
    return data[dataset]
