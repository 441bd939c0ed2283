"""The ``synthesize@<corpus>`` stage: build one SynthME corpus under ``data/raw/<corpus>``.

``corpus`` is ``synthme`` (the base, CASME II-like) or a name under ``synthesize.variants``
(:mod:`mer.synth.variants`), e.g. the SMIC-like ``synthme_hs``, ``synthme_vis``, ``synthme_nir``.
"""

from __future__ import annotations

from pathlib import Path

from mer import artifacts
from mer.synth.corpus import synthesize
from mer.synth.params import BASE, SynthParams
from mer.synth.variants import corpus_params


def run(params: dict, corpus: str = BASE) -> Path:
    section = SynthParams.from_dict(params.get("synthesize"))
    out = artifacts.RAW / corpus
    synthesize(corpus_params(section, corpus), out, params.get("workers", 0))
    return out
