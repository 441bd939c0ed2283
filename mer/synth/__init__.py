"""SynthME: an embedded synthetic micro-expression corpus that looks, on disk, like CASME II --
and, as its SMIC-like variants, like SMIC's HS, VIS and NIR sub-corpora.

Real face pixels (scikit-image's astronaut, plus any faces listed in params) become pseudo-subjects
through landmark-driven morphs, skin-tone, lighting and pose changes; facial action units move
them as smooth, amplitude-bounded displacement fields through onset -> apex -> offset; emotions
follow CASME II's AU rules (SMIC's three classes for the SMIC layout); sensor noise, head drift,
flicker and blinks add realistic nuisance, and a camera model (view, lens, sensor, tone curve,
frame rate) makes two recordings of the same clips differ as two cameras do.

    params = SynthParams.from_dict(cfg)          # the params.yaml section ``synthesize``
    hs = corpus_params(params, "synthme_hs")     # a named variant (mer.synth.variants)
    synthesize(hs, out_root, workers)            # HS/s1/micro/... (or CASME2_RAW_selected/...)

Modules: params (settings), variants (named corpora), emotions (AU rules), actions (AU control
points), fields (the displacement kernel), faces (sources and identities), plan (what each clip
shows), render (frames and the camera), layouts (the registry of on-disk formats: casme2_layout,
smic_layout), corpus (writing one corpus), stage (the ``synthesize@<corpus>`` stage body).
"""

from __future__ import annotations

from mer.synth.corpus import synthesize
from mer.synth.params import SynthParams
from mer.synth.variants import corpus_names, corpus_params

__all__ = ["SynthParams", "corpus_names", "corpus_params", "synthesize"]
