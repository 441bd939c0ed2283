"""SynthME: an embedded synthetic micro-expression corpus that looks, on disk, like CASME II.

Real face pixels (scikit-image's astronaut, plus any faces listed in params) become pseudo-subjects
through landmark-driven morphs, skin-tone, lighting and pose changes; facial action units move
them as smooth, amplitude-bounded displacement fields through onset -> apex -> offset; emotions
follow CASME II's AU rules; sensor noise, head drift, flicker and blinks add realistic nuisance.

    params = SynthParams.from_dict(cfg)      # the params.yaml section ``synthesize``
    synthesize(params, out_root, workers)    # CASME2_RAW_selected/... + the coding sheet

Modules: params (settings), emotions (AU rules), actions (AU control points), fields (the
displacement kernel), faces (sources and identities), plan (what each clip shows), render
(frames), casme2_layout (the on-disk format), corpus (the stage's entry point).
"""

from __future__ import annotations

from mer.synth.corpus import synthesize
from mer.synth.params import SynthParams

__all__ = ["SynthParams", "synthesize"]
