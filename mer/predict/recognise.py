"""``predict``: an exported model recognising the micro-expression in a user's video or frames.

Steps: load the model file (refusing another version or scheme); open the clip; take the
onset/apex/offset the user gave or spot them in one streaming pass (:mod:`mer.predict.window`);
re-read only onset..offset at full resolution into a one-clip corpus and run the model's own
preprocessing stages on it (:mod:`mer.predict.chain`); ask the model for class probabilities;
optionally draw the visual report (:mod:`mer.predict.report`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer import artifacts
from mer.errors import MerError
from mer.export import load_model
from mer.face.crop import CropParams
from mer.face.landmarks import NoFaceError
from mer.io import load_npz
from mer.predict import chain
from mer.predict.video import open_source
from mer.predict.window import given_window, spotted_window
from mer.temporal.apex import motion_score


@dataclass
class Prediction:
    """What ``mer predict`` prints: the emotion, every class's probability (largest first), the
    window in video frame numbers and whether it was given or spotted."""

    source: Path
    method: str
    scheme: str
    emotion: str
    probabilities: dict[str, float]   # class -> probability, largest first
    onset: int
    apex: int
    offset: int
    window: str                       # "given" | "spotted"
    apex_source: str                  # how the crop stage placed the apex: annotated | spotted
    fps: float
    energy: np.ndarray | None = None  # (T,) the whole video's motion energy, when spotted
    report: Path | None = None        # index.html of the visual report

    def summary(self) -> str:
        """A few lines for a person: emotion, probabilities, window."""
        width = max(len(c) for c in self.probabilities)
        lines = [(f"{self.source}: {self.emotion} ({self.probabilities[self.emotion]:.2f}; "
                 f"model {self.method}, scheme {self.scheme})")]
        lines += [f"  {c:<{width}}  {p:.3f}" for c, p in self.probabilities.items()]
        how = self.window + ("" if self.window == "spotted" or self.apex_source == "annotated"
                             else ", apex spotted by the crop stage")
        lines.append(f"onset {self.onset}, apex {self.apex}, offset {self.offset} ({how}; frame "
                     f"numbers from 0 at {self.fps:g} fps)")
        if self.report is not None:
            lines.append(f"report: {self.report}")
        return "\n".join(lines)


def _apex_source(window_source: str, apex_given: bool, policy: str) -> str:
    """How the crop stage places the apex: as the training clips' ingest policy did.

    A user's apex is kept (``annotated``).  Without one (onset and offset given), or when the
    model was trained on spotted apexes, the crop stage spots it inside the window.
    """
    if window_source == "given":
        return "annotated" if apex_given else "spotted"
    return "spotted" if policy == "spotted" else "annotated"


def _curve(window, root: Path, clip_id: str) -> tuple[np.ndarray, np.ndarray, str]:
    """The report's motion curve: the spotting energy over the whole video, or (window given)
    the crop stage's apex score, motion against the onset, over onset..offset."""
    if window.energy is not None:
        return (np.arange(len(window.energy)), window.energy,
                "motion energy (each frame against its neighbours)")
    crop = load_npz(root / artifacts.artifact_path("crop", chain.DATASET, clip_id))
    score = motion_score(crop["frames"], crop["landmarks"])                  # (T,)
    return window.onset + np.arange(len(score)), score, "motion against the onset frame"


def predict(source: str | Path, model: str | Path, onset: int | None = None,
            apex: int | None = None, offset: int | None = None, fps: float | None = None,
            report: str | Path | None = None, scheme: str | None = None) -> Prediction:
    """Recognise the micro-expression in ``source`` (a video file or a folder of frames) with the
    exported ``model``.  ``onset``/``apex``/``offset``: frame numbers (from 0) of the video, or
    ``None`` to spot them (``apex`` alone may be left out); ``fps`` overrides the file's frame
    rate (required for a folder); ``report``: a folder for the PNG + HTML report; ``scheme``: the
    label scheme the caller expects (an error if the model has another)."""
    fitted, header = load_model(model)
    if scheme is not None and scheme != header["scheme"]:
        raise MerError(f"the model was trained for label scheme '{header['scheme']}' (classes "
                       f"{', '.join(header['classes'])}), not '{scheme}'", Path(model),
                       f"use a model exported with eval.scheme: {scheme}, or leave out --scheme")
    clip = open_source(source, fps)
    crop = CropParams.from_dict(header["params"]["crop"])
    window = given_window(onset, apex, offset, clip) or spotted_window(clip, crop)
    apex_source = _apex_source(window.source, window.apex >= 0,
                               header["params"]["ingest"]["apex_policy"])
    inputs = tuple(header["inputs"])
    clip_id = chain.clip_name(clip.path)
    with tempfile.TemporaryDirectory(prefix="mer-predict-") as tmp:
        root = Path(tmp)
        entry = chain.write_clip(root, clip, window, clip_id, apex_source, crop)
        frames = f"{clip.path} frames {window.onset}..{window.offset}"
        try:
            with chain.working_dir(root):
                chain.run_stages(chain.stages_for(inputs, header["params"]),
                                 chain.chain_params(header["params"]))
                samples = chain.clip_samples(root, clip_id, inputs, header["classes"])
                proba = np.asarray(fitted.predict_proba(samples), dtype=np.float64)   # (1, k)
        except NoFaceError as exc:   # the stage names a temporary file and a corpus-only fix
            raise NoFaceError(exc.what, frames, "give an --onset where the face is visible, "
                              "frontal and at least ~80 px wide") from None
        except MerError as exc:
            raise MerError(exc.what, f"{frames}: {exc.where}" if exc.where else frames,
                           exc.fix) from None
        if proba.shape != (1, len(header["classes"])) or not np.all(np.isfinite(proba)):
            raise MerError(f"the model returned probabilities of shape {proba.shape}, expected "
                           f"(1, {len(header['classes'])})", Path(model),
                           f"re-export it: mer export {header['method']}")
        order = np.argsort(-proba[0], kind="stable")
        probabilities = {header["classes"][i]: float(proba[0, i]) for i in order}
        result = Prediction(
            source=clip.path, method=header["method"], scheme=header["scheme"],
            emotion=header["classes"][int(order[0])], probabilities=probabilities,
            onset=window.onset, apex=chain.final_apex(root, entry), offset=window.offset,
            window=window.source, apex_source=apex_source, fps=clip.fps, energy=window.energy)
        if report is not None:
            from mer.predict.report import write_report
            result.report = write_report(Path(report), result, root, clip_id,
                                         _curve(window, root, clip_id), header, fitted)
    return result
