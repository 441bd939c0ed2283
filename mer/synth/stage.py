"""The ``synthesize`` stage: build SynthME under ``data/raw/synthme`` from params ``synthesize``."""

from __future__ import annotations

from pathlib import Path

from mer import artifacts
from mer.synth.corpus import synthesize
from mer.synth.params import SynthParams


def run(params: dict) -> Path:
    out = artifacts.RAW / "synthme"
    synthesize(SynthParams.from_dict(params.get("synthesize")), out, params.get("workers", 0))
    return out
