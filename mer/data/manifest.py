"""The manifest: one row per clip, the contract between ``ingest`` and every later stage.

Written as CSV (readable by people, diffable by git and DVC).  List-valued columns are JSON.

=============  ==========================================================================
column         meaning
=============  ==========================================================================
clip_id        unique within a dataset; also the stem of every per-clip artifact file
corpus         corpus name (``casme2``, ``synthme``, ...); composite datasets mix several
subject        subject id as the corpus writes it (text: '01', '006', 's1')
clip           clip folder name as on disk (``EP02_01f``); SMIC-E's k-th interval: ``<folder>_<k>``
frame_dir      folder holding the frames, relative to the dataset root
frames         JSON list of frame file names from onset to offset inclusive, in time order
onset          frame number of the onset (the corpus's own numbering)
apex           frame number of the apex (after the apex policy)
offset         frame number of the offset
apex_source    ``annotated`` | ``midpoint`` | ``spotted`` | ``frame<N>`` (macro clips: the Nth frame)
               | ``estimated`` (a third-party apex table, e.g. SMIC's ``apex_sheet``)
apex_index     position of the apex within ``frames`` (0-based)
aus            JSON list of parsed action units, e.g. ``["4", "L10"]`` ("?" dropped)
aus_raw        the sheet's action-unit cell, verbatim
emotion_raw    the sheet's emotion cell, verbatim
emotion        normalised emotion name (lower case, canonical spelling)
label_<s>      class name under label scheme ``s`` (empty when the scheme drops the clip)
fps            frame rate
fixes          ids of the rows of the fix table applied to this clip (JSON list)
=============  ==========================================================================
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from mer.io import atomic_path

LIST_COLUMNS = ("frames", "aus", "fixes")


@dataclass
class Clip:
    """One manifest row."""

    clip_id: str
    corpus: str
    subject: str
    clip: str
    frame_dir: str
    frames: list[str]
    onset: int
    apex: int
    offset: int
    apex_source: str
    apex_index: int  # position of the apex frame within ``frames`` (0-based)
    aus: list[str]
    aus_raw: str
    emotion_raw: str
    emotion: str
    fps: float
    labels: dict[str, str] = field(default_factory=dict)  # scheme -> class ('' = dropped)
    fixes: list[str] = field(default_factory=list)

    def frame_paths(self, root: str | Path) -> list[Path]:
        """Absolute paths of the onset..offset frames under the dataset ``root``."""
        base = Path(root) / self.frame_dir
        return [base / name for name in self.frames]

    def to_row(self) -> dict:
        row = asdict(self)
        labels = row.pop("labels")
        for col in LIST_COLUMNS:
            row[col] = json.dumps(row[col])
        row.update({f"label_{scheme}": cls for scheme, cls in labels.items()})
        return row

    @classmethod
    def from_row(cls, row: dict) -> "Clip":
        row = dict(row)
        labels = {k[len("label_"):]: ("" if pd.isna(v) else str(v)) for k, v in row.items()
                  if k.startswith("label_")}
        kwargs = {k: v for k, v in row.items() if not k.startswith("label_")}
        for col in LIST_COLUMNS:
            kwargs[col] = json.loads(kwargs[col])
        for col in ("onset", "apex", "offset", "apex_index"):
            kwargs[col] = int(kwargs[col])
        for col in ("clip_id", "corpus", "subject", "clip", "frame_dir", "apex_source", "aus_raw",
                    "emotion_raw", "emotion"):
            kwargs[col] = "" if pd.isna(kwargs[col]) else str(kwargs[col])
        kwargs["fps"] = float(kwargs["fps"])
        return cls(labels=labels, **kwargs)


def write_manifest(clips: list[Clip], path: str | Path) -> Path:
    """Write ``clips`` to ``path`` (CSV, atomically, rows in the given order)."""
    df = pd.DataFrame([c.to_row() for c in clips])
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    return Path(path)


def read_manifest(path: str | Path) -> list[Clip]:
    """Read a manifest written by :func:`write_manifest`; ids and subjects stay text."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return [Clip.from_row(r) for r in df.to_dict("records")]
