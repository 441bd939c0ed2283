"""The model's preprocessing run on a user's clip by the training pipeline's own stage functions.

Why not call the kernels directly: the crop, TIM, LBP-TOP, magnification, flow and graph stages
each do a little more than their kernel (resizing, apex carried over, key-frame choice, dtype and
layout of the artifact), and a prediction is only meaningful if all of it matches training.  So
the clip becomes a one-clip corpus in a temporary directory (frames as PNG under
``data/raw/predict/<clip>/`` and a manifest written by :func:`mer.data.manifest.write_manifest`),
and the real ``run(params, dataset)`` of each stage the model's ``inputs`` need runs there, with
the model's stored params and one worker, exactly as ``dvc repro`` would run it on a corpus.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mer import artifacts
from mer.cli import STAGES
from mer.config import validate
from mer.data.manifest import Clip, write_manifest
from mer.errors import MerError
from mer.face.crop import CropParams
from mer.face.landmarks import get_detector
from mer.methods.registry import Samples
from mer.predict.video import FrameSource
from mer.predict.window import MIN_FRAMES, Window, too_short

DATASET = "predict"                      # the one-clip corpus's name under data/
PIPELINE = ("crop", "tim", "lbptop", "magnify", "flow", "graph")   # stage order of dvc.yaml


def expand_section(name: str, section: dict | None) -> dict:
    """The params section of stage ``name`` validated and filled with its defaults (a plain dict)."""
    from mer.features.graph_stage import GraphParams
    from mer.features.stage import LbpTopParams
    from mer.motion.flow import FlowParams
    from mer.motion.magnify import MagnifyParams
    from mer.temporal.stage import TimParams

    if name == "crop":
        return asdict(CropParams.from_dict(section))
    if name == "flow":
        return asdict(FlowParams.from_dict(section))
    schema = {"tim": TimParams, "lbptop": LbpTopParams, "magnify": MagnifyParams,
              "graph": GraphParams}[name]
    cfg = validate(section, schema, name)
    if hasattr(cfg, "check"):
        cfg.check()
    return asdict(cfg)


def stages_for(inputs: tuple[str, ...], params: dict) -> list[str]:
    """The stages (in pipeline order) that produce artifact kinds ``inputs`` from a crop.

    lbptop: crop, tim, lbptop; tim<N>: crop, tim; magnify: crop, magnify; flow: crop, flow (and
    magnify when ``flow.apex_from`` is ``magnify``); graph: crop, magnify, graph.
    """
    needed = {"crop"}
    for kind in inputs:
        if kind == "lbptop":
            needed |= {"tim", "lbptop"}
        elif kind.startswith("tim") and kind[3:].isdigit():
            needed.add("tim")
        elif kind == "magnify":
            needed.add("magnify")
        elif kind == "flow":
            needed.add("flow")
            if expand_section("flow", params.get("flow"))["apex_from"] == "magnify":
                needed.add("magnify")
        elif kind == "graph":
            needed |= {"magnify", "graph"}
        elif kind != "crop":
            raise MerError(f"no preprocessing chain for artifact kind '{kind}'", "mer.predict.chain",
                           "add the kind's stages to stages_for")
    return [s for s in PIPELINE if s in needed]


@contextlib.contextmanager
def working_dir(path: str | Path) -> Iterator[Path]:
    """Run the block with ``path`` as the current directory (stages use cwd-relative ``data/``)."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield Path(path)
    finally:
        os.chdir(previous)


def clip_name(path: Path) -> str:
    """A clip id from the file or folder name (letters, digits, ``-``, ``_``)."""
    stem = path.stem if path.is_file() else path.name
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem) or "clip"


def write_clip(root: Path, source: FrameSource, window: Window, clip_id: str, apex_source: str,
               crop: CropParams) -> Clip:
    """Second pass: frames onset..offset at full resolution into ``root``'s one-clip corpus.

    Writes ``data/raw/predict/<clip_id>/<frame>.png`` and the manifest; says so when the onset
    frame (where the crop stage detects) holds several faces (the largest is used, as in training).
    """
    frame_dir = root / artifacts.RAW / DATASET / clip_id
    frame_dir.mkdir(parents=True)
    names = []
    for index, image in source.frames(window.onset, window.offset + 1):     # (H, W, 3) uint8
        if index == window.onset:
            boxes, _ = get_detector(crop.detector, upsample=crop.upsample).detect(image)
            if len(boxes) > 1:
                print(f"{source.path}: {len(boxes)} faces on frame {index}; using the largest "
                      "(the subject nearest the camera)")
        name = f"{index:06d}.png"
        cv2.imwrite(str(frame_dir / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_PNG_COMPRESSION, 1])
        names.append(name)
    if len(names) < window.n_frames:
        last = window.onset + len(names) - 1
        if len(names) < MIN_FRAMES:
            raise too_short(len(names), source.path)
        raise MerError(f"offset {window.offset} is beyond the clip's last frame ({last})",
                       source.path, f"give an offset of at most {last}")
    apex = window.apex if window.apex >= 0 else window.onset + (window.n_frames - 1) // 2
    clip = Clip(clip_id=clip_id, corpus=DATASET, subject="user", clip=clip_id, frame_dir=clip_id,
                frames=names, onset=window.onset, apex=apex, offset=window.offset,
                apex_source=apex_source, apex_index=apex - window.onset, aus=[], aus_raw="",
                emotion_raw="", emotion="", fps=source.fps)
    write_manifest([clip], root / artifacts.manifest_path(DATASET))
    return clip


def chain_params(preprocessing: dict[str, dict]) -> dict:
    """Params for the stages: the model's stored sections, the one-clip corpus, one worker."""
    params = {name: dict(section) for name, section in preprocessing.items()}
    # a missing face must fail the prediction, not be recorded as a skipped clip
    params["crop"] = {**params.get("crop", {}), "skip_no_face": False}
    params["workers"] = 1
    params["data"] = {DATASET: {"root": str(artifacts.RAW / DATASET)}}
    return params


def run_stages(stages: list[str], params: dict) -> None:
    """Each stage's ``run(params, 'predict')`` in order, in the current directory."""
    for stage in stages:
        importlib.import_module(STAGES[stage]).run(params, DATASET)


def clip_samples(root: Path, clip_id: str, inputs: tuple[str, ...], classes: list[str]) -> Samples:
    """The clip as the method's test samples: no label, no action units, absolute artifact paths."""
    paths = {}
    for kind in inputs:
        directory = root / artifacts.artifact_dir(kind, DATASET)
        index = pd.read_csv(directory / "index.csv", dtype=str, keep_default_na=False)
        status = dict(zip(index["clip_id"], index["status"])).get(clip_id, "missing")
        if status != "ok":
            raise MerError(f"the '{kind}' stage did not process the clip ({status})", clip_id,
                           "check the clip shows one frontal face throughout")
        paths[kind] = [directory / f"{clip_id}.npz"]
    meta = pd.DataFrame([{"clip_id": clip_id, "dataset": DATASET, "corpus": DATASET,
                          "subject": "user", "aus": None}])
    return Samples(meta, None, list(classes), paths)


def final_apex(root: Path, clip: Clip) -> int:
    """The apex the crop stage used (it re-spots the apex when ``apex_source`` is spotted)."""
    with np.load(root / artifacts.artifact_path("crop", DATASET, clip.clip_id)) as crop:
        return clip.onset + int(np.asarray(crop["apex_index"]).reshape(-1)[0])
