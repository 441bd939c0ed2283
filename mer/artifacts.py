"""Where each stage's artifacts live: one place, so stages and methods never spell paths twice.

Every per-clip artifact is ``<dir>/<clip_id>.npz``; ``<dir>/index.csv`` lists the clips a stage
processed and its status (``ok`` or ``skipped: <reason>``).
"""

from __future__ import annotations

from pathlib import Path

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
