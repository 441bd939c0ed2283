"""The ``ingest@<dataset>`` stage: read, validate and describe a corpus into its manifest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mer import artifacts
from mer.config import validate
from mer.data.ingest import describe, ingest
from mer.data.manifest import write_manifest


@dataclass
class IngestParams:
    """``ingest``: what a missing apex becomes (``annotated`` makes it an error unless fixed)."""

    apex_policy: str = "annotated"   # annotated | midpoint | spotted


def run(params: dict, dataset: str) -> Path:
    cfg = validate(params.get("ingest"), IngestParams, "ingest")
    clips = ingest(dataset, artifacts.dataset_config(params, dataset), params.get("workers", 0),
                   cfg.apex_policy)
    print(describe(clips))
    return write_manifest(clips, artifacts.manifest_path(dataset))
