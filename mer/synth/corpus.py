"""``synthesize``: plan the corpus, render clips in parallel, write the tree and its annotation.

The whole corpus is written under a temporary sibling of ``out_root`` and renamed into place at
the end, so an interrupted run leaves nothing half-written.  The layout (``params.layout``:
:mod:`mer.synth.casme2_layout`, :mod:`mer.synth.smic_layout`) decides names, tree and files.
Besides them, ``synthme-truth.csv`` records what only a synthetic corpus knows (each clip's AUs,
apex, amplitude and the face width it was measured against, with frame numbers as written on
disk); it sits at the corpus root, outside the tree an adapter reads, and adapters ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mer.io import atomic_path
from mer.parallel import map_clips
from mer.synth.faces import Identity, SourceFace, find_source, source_refs
from mer.synth.layouts import get_layout
from mer.synth.params import SynthParams
from mer.synth.plan import ClipSpec, plan_corpus
from mer.synth.render import build_scene, render_frames

TRUTH_NAME = "synthme-truth.csv"


@dataclass(frozen=True)
class _Job:
    """One clip's work item: small values only (the worker loads the source image itself)."""

    params: SynthParams
    source: SourceFace  # reference + 68 landmarks, not the pixels
    identity: Identity
    clip: ClipSpec
    root: str


def _render_clip(job: _Job) -> dict:
    scene = build_scene(job.source, job.identity, job.clip, job.params)
    layout = get_layout(job.params.layout)
    written = layout.write_clip(render_frames(scene), job.clip, job.params, Path(job.root))
    c = job.clip
    return {**written, "Action Units": c.aus, "Estimated Emotion": c.emotion,
            "amplitude": round(c.amplitude, 6), "amplitude_px": round(scene.amplitude_px, 3),
            "face_width_px": round(scene.face_width, 3), "blink": bool(scene.blink.any())}


def synthesize(params: SynthParams, out_root: str | Path, workers: int = 1) -> list[ClipSpec]:
    """Write the SynthME corpus described by ``params`` to ``out_root`` (replaced atomically)."""
    sources = [find_source(ref) for ref in source_refs(params)]
    subjects, clips = plan_corpus(params, len(sources))
    identity = {s.number: s.identity for s in subjects}
    with atomic_path(out_root, is_dir=True) as tmp:
        jobs = [_Job(params, sources[identity[c.subject].source], identity[c.subject], c, str(tmp))
                for c in clips]
        truth = map_clips(_render_clip, jobs, workers, desc=f"synthesize {Path(out_root).name}")
        get_layout(params.layout).finish(tmp, clips, params)
        pd.DataFrame(truth).to_csv(tmp / TRUTH_NAME, index=False, lineterminator="\n")
    return clips


def frame_count(clips: list[ClipSpec]) -> int:
    return int(np.sum([c.n_frames for c in clips]))
