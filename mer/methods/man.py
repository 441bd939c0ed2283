"""MAN: Multiple Aggregation Networks (She, Lv, Tao, Liu, Niu), registry name ``man``.

Per fold, on the training subjects only:

1. every clip (TIM to 64 frames, aligned crop) becomes the paper's 120 x 140 face and three
   regions (:mod:`mer.methods.man_rois`); ``frames`` of its 64 frames are used, evenly spaced;
2. a four-branch residual network (:mod:`mer.methods.man_model`) is trained frame by frame, each
   frame carrying its clip's label (cross-entropy, fixed epochs, Adam);
3. the 64-unit layer gives one feature per frame; a clip's feature Z is [mean, std, median] over
   its frames (eq. 4; any subset of the three, Table IV), standardised on the training clips;
4. an SVM (scikit-learn's libsvm) on Z of the training clips classifies.

Test clips only pass forward through the fitted network and the SVM.  :meth:`MAN.fit` asserts
that everything it trains on belongs to the training subjects, and :meth:`MAN.predict_proba`
that no clip it is asked about comes from a subject the network or the SVM was trained on.

``input: difference`` (not in the paper) feeds each frame minus the clip's first frame (its
onset, which TIM keeps): identity and lighting cancel and only the motion is left.  The paper
feeds the frames themselves (``input: frames``, the paper profile).  Why offer it: the quick
profile's small networks, trained for a few epochs on ~240 SynthME clips, learn the person from
raw frames rather than a 2-5 %-of-the-face movement: on one split of SynthME (6 test subjects,
3-px cells, 4 frames, width 8, 8 epochs) the SVM reached UF1 0.25 on frames and 0.58 on
differences.

``predict_proba`` returns a softmax of the SVM's one-vs-rest decision values: scores that rank
classes consistently with its prediction, not calibrated probabilities.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.utils.deterministic
from scipy.special import softmax
from sklearn.svm import SVC
from torch.nn import functional as F

from mer import artifacts
from mer.errors import MerError
from mer.face.crop import CropParams
from mer.io import load_npz
from mer.methods.man_model import MAN as MANNet
from mer.methods.man_model import load_imagenet
from mer.methods.man_rois import (
    BRANCHES,
    GRID_COLS,
    GRID_ROWS,
    ROIS,
    faces_from_crops,
    roi_slices,
)
from mer.methods.registry import Samples, register
from mer.nn.fit import (
    TrainParams,
    class_weights,
    pick_device,
    predict_in_batches,
    seeded,
    train_epochs,
)

STATISTICS = ("mean", "std", "median")     # eq. 4, in the paper's order
INPUTS = ("frames", "difference")
CACHE_BYTES = int(os.environ.get("MER_MAN_CACHE_MB", "1024")) * 2**20


def aggregate(frame_features: np.ndarray, stats: list[str] | tuple[str, ...] = STATISTICS) -> np.ndarray:
    """Eq. 4: per clip, the chosen statistics over frames, concatenated in the given order.

    ``frame_features`` (n, T, D) -> (n, D * len(stats)); std is the population one (ddof 0).
    """
    ops = {"mean": lambda s: s.mean(1), "std": lambda s: s.std(1), "median": lambda s: np.median(s, 1)}
    return np.concatenate([ops[name](frame_features) for name in stats], axis=1)  # (n, D k)


def frame_indices(length: int, frames: int, after_onset: bool = False) -> np.ndarray:
    """``frames`` evenly spaced indices into a clip of ``length`` frames, the last frame kept.

    Without ``after_onset`` the first frame is kept too (``frames`` = ``length``: every frame).
    With it (``input: difference``) the frames split the clip after its onset into equal steps:
    the frame right after the onset differs from it by almost nothing (SynthME, TIM-64: mean
    |frame - onset| 0.3 gray levels at frame 1, ~4 from frame 30 on), so sampling it would spend a
    share of the training on a near-empty input.  ``frames`` = ``length - 1`` still takes every
    frame after the onset.
    """
    if after_onset:
        return np.round(np.linspace(0, length - 1, frames + 1)[1:]).astype(int)   # (frames,)
    return np.round(np.linspace(0, length - 1, frames)).astype(int)             # (frames,)


class _FaceCache:
    """Faces already cut from TIM clips, keyed by file, its mtime and the face settings.

    Why: the runner builds a fresh model for each of 26 LOSO folds x seeds x the control, and each
    reads every training clip (~3 MB of TIM frames) again; cutting faces once per process turns
    that into a lookup.  Bounded (``MER_MAN_CACHE_MB``, default 1024): oldest entries go first.
    Entries are read-only: every fold shares them (each fold stacks its own copy for torch).
    Profiled on SynthME: loading and cutting all 261 clips costs ~1.5 s once, then nothing.
    """

    def __init__(self, limit: int):
        self.limit, self.used, self.items = limit, 0, OrderedDict()

    def get(self, key):
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key, value: np.ndarray) -> None:
        value.flags.writeable = False                            # shared by every later fold
        if value.nbytes > self.limit:
            return
        self.items[key] = value
        self.used += value.nbytes
        while self.used > self.limit:
            _, old = self.items.popitem(last=False)
            self.used -= old.nbytes


_CACHE = _FaceCache(CACHE_BYTES)


@contextmanager
def no_nan_fill():
    """Deterministic algorithms without filling every new tensor with NaN first.

    :func:`mer.nn.fit.seeded` turns on ``torch.use_deterministic_algorithms``, which also fills
    every uninitialised tensor (``torch.empty``) with NaN so that a kernel reading memory it never
    wrote would show up.  Our kernels (convolution, batch norm, ReLU, linear, Adam) write every
    output element; the fill only costs time: 10 % of a training step at the quick sizes
    (profiled: 3 700 ``fill_`` calls in 10 steps).  The algorithms stay deterministic (the seed
    test checks bit-equal repeats); the flag is restored on exit so other methods see torch's
    default.
    """
    previous = torch.utils.deterministic.fill_uninitialized_memory
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = previous


def clip_faces(path: Path, frames: int, cell: int, eye_distance: float, eye_y: float,
               with_onset: bool) -> np.ndarray:
    """The sampled faces of one TIM clip: ``(frames [+ 1], 14 cell, 12 cell, 3)`` uint8.

    With ``with_onset`` the clip's first frame comes first (the reference of ``input: difference``)
    and the sampled frames are spread over the frames after it (:func:`frame_indices`).
    """
    path = Path(path)
    key = (str(path), path.stat().st_mtime_ns, frames, cell, eye_distance, eye_y, with_onset)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    clip = load_npz(path)["frames"]                              # (L, S, S, 3) uint8
    if clip.ndim != 4 or clip.shape[1] != clip.shape[2] or clip.shape[3] != 3:
        raise MerError(f"TIM frames of shape {clip.shape} are not square RGB crops", path,
                       "re-run the tim stage")
    first = 1 if with_onset else 0
    if frames > len(clip) - first:
        raise MerError(f"models.man.frames is {frames} but the clip has {len(clip)} TIM frames", path,
                       f"set frames <= {len(clip) - first}")
    idx = frame_indices(len(clip), frames, after_onset=with_onset)
    if with_onset:
        idx = np.r_[0, idx]
    faces = faces_from_crops(clip[idx], eye_distance, eye_y, cell)  # (F[+1], h, w, 3)
    _CACHE.put(key, faces)
    return faces


@register("man")
class MAN:
    inputs = ("tim64",)

    @dataclass
    class Params(TrainParams):
        """``models.man``; the defaults are the quick profile (conf/model/man.yaml)."""
        epochs: int = 3                 # fixed (the paper: 500)
        batch_size: int = 64            # frames per step
        lr: float = 0.003               # Adam (the paper: 0.0005)
        frames: int = 4                 # frames per clip, evenly spaced over the 64 (paper: 64)
        cell: int = 2                   # pixels per grid cell: 10 = the paper's 120 x 140 face
        input: str = "difference"       # frames (the paper) | difference (frame - first frame)
        branches: list[str] = field(default_factory=lambda: list(BRANCHES))  # Fig. 4 switch
        width: int = 8                  # trunk base width (64 = ResNet-18)
        blocks: list[int] = field(default_factory=lambda: [1])  # BasicBlocks per stage; ResNet-18: [2, 2, 2, 2]
        small_input: bool = True        # 3x3 stem without down-sampling (false: ImageNet 7x7/2 + pool)
        hidden: int = 64                # units of the first FC layer = frame-level feature size
        dropout: float = 0.5
        pretrained: bool = False        # ImageNet ResNet-18 trunks (width 64, blocks [2,2,2,2]; online)
        class_weight: str = "balanced"  # balanced (max n_c / n_c per class) | none: frame loss weights
        stats: list[str] = field(default_factory=lambda: list(STATISTICS))  # Table IV: subset of mean, std, median
        svm_kernel: str = "linear"      # linear | rbf (libsvm)
        svm_C: float = 1.0
        eye_distance: float = CropParams.eye_distance   # the crop's geometry: keep equal to crop.*
        eye_y: float = CropParams.eye_y

    def __init__(self, params: MAN.Params):
        self.params = params
        p = params

        def bad(key: str, fix: str) -> MerError:
            return MerError(f"invalid models.man.{key}: {getattr(p, key)!r}", "params.yaml", fix)

        if not p.branches or len(set(p.branches)) != len(p.branches) or set(p.branches) - set(BRANCHES):
            raise bad("branches", f"list distinct branches among {', '.join(BRANCHES)}")
        if not p.stats or len(set(p.stats)) != len(p.stats) or set(p.stats) - set(STATISTICS):
            raise bad("stats", f"list distinct statistics among {', '.join(STATISTICS)}")
        if p.input not in INPUTS:
            raise bad("input", f"use one of: {', '.join(INPUTS)}")
        if p.frames < 1:
            raise bad("frames", "use at least 1 frame per clip (the paper: 64)")
        if p.frames == 1 and "std" in p.stats:
            raise bad("frames", "std over one frame is 0: use more frames or drop std from stats")
        if p.cell < 1:
            raise bad("cell", "use a positive number of pixels per cell (the paper: 10)")
        if p.width < 1 or not p.blocks or min(p.blocks) < 1:
            raise bad("blocks", "use a positive width and at least one stage of >= 1 block")
        if p.class_weight not in ("balanced", "none"):
            raise bad("class_weight", "use balanced or none")
        if p.svm_kernel not in ("linear", "rbf"):
            raise bad("svm_kernel", "use linear or rbf")
        if p.svm_C <= 0:
            raise bad("svm_C", "use a positive C")
        if p.epochs < 1:
            raise bad("epochs", "train for at least one epoch")

    # ------------------------------------------------------------------ data
    def _faces(self, samples: Samples) -> torch.Tensor:
        """Every clip's sampled faces: (n, F[+1], h, w, 3) uint8 (kept small: floats per batch)."""
        p = self.params
        faces = [clip_faces(path, p.frames, p.cell, p.eye_distance, p.eye_y,
                            p.input == "difference") for path in samples.paths["tim64"]]
        return torch.from_numpy(np.stack(faces))                 # (n, F[+1], h, w, 3)

    def _frames(self, faces: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Network input of frames ``idx`` (flat clip * F + frame): (b, 3, h, w) float, standardised.

        The result is channels-last in memory (a permuted view of (b, h, w, 3)), the layout the
        network is kept in (:meth:`fit`): no copy to reorder before the first convolution.
        """
        n_frames = self.params.frames
        clip, frame = idx // n_frames, idx % n_frames
        if self.params.input == "difference":
            x = faces[clip, frame + 1].float() - faces[clip, 0].float()   # (b, h, w, 3)
        else:
            x = faces[clip, frame].float()                               # (b, h, w, 3)
        x = x.permute(0, 3, 1, 2).to(self.device_)                       # (b, 3, h, w)
        return (x - self.mean_) / self.scale_                            # (b, 3, h, w)

    def _branches(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The face and its regions, cut from standardised frames (b, 3, h, w)."""
        out = {}
        for name in self.params.branches:
            rows, cols = roi_slices(name, self.params.cell)
            out[name] = x[:, :, rows, cols]                              # (b, 3, h_r, w_r)
        return out

    def _channel_stats(self, faces: torch.Tensor) -> None:
        """Per-channel mean and std of the training frames' network input (no labels used)."""
        n_frames = self.params.frames
        flat = torch.arange(len(faces) * n_frames)
        total = torch.zeros(3, dtype=torch.float64)
        square = torch.zeros(3, dtype=torch.float64)
        count = 0
        self.mean_ = torch.zeros(1, 3, 1, 1, device=self.device_)
        self.scale_ = torch.ones(1, 3, 1, 1, device=self.device_)
        for start in range(0, len(flat), 256):
            x = self._frames(faces, flat[start:start + 256]).double().cpu()  # (b, 3, h, w), raw
            total += x.sum((0, 2, 3))
            square += (x ** 2).sum((0, 2, 3))
            count += x.shape[0] * x.shape[2] * x.shape[3]
        mean = total / count
        std = (square / count - mean ** 2).clamp_min(0).sqrt()
        self.mean_ = mean.float().view(1, 3, 1, 1).to(self.device_)
        self.scale_ = torch.where(std > 1e-6, std, torch.ones_like(std)).float().view(1, 3, 1, 1).to(self.device_)

    # ------------------------------------------------------------------ features
    def _frame_features(self, faces: torch.Tensor) -> np.ndarray:
        """The 64-unit layer for every frame of every clip: (n, F, hidden)."""
        n_frames = self.params.frames
        with torch.inference_mode():
            feats = predict_in_batches(
                lambda idx: self.net_.features(self._branches(self._frames(faces, idx))),
                len(faces) * n_frames, max(self.params.batch_size, 256))       # (n F, hidden)
        return feats.numpy().reshape(len(faces), n_frames, -1)               # (n, F, hidden)

    def _z(self, faces: torch.Tensor) -> np.ndarray:
        return aggregate(self._frame_features(faces), self.params.stats).astype(np.float64)  # (n, hidden k)

    # ------------------------------------------------------------------ interface
    def fit(self, train: Samples, rng: np.random.Generator) -> MAN:
        gen = seeded(rng)
        with no_nan_fill():
            return self._fit(train, gen)

    def _fit(self, train: Samples, gen: torch.Generator) -> MAN:
        p = self.params
        if train.y is None:
            raise MerError("MAN needs labelled training clips", fix="pass the training fold")
        self.device_ = pick_device(p.device)
        self.train_groups_ = frozenset(train.groups)
        faces = self._faces(train)                                       # (n, F[+1], h, w, 3)
        y = torch.as_tensor(np.asarray(train.y), dtype=torch.long)       # (n,)
        n_classes = len(train.classes)
        self.n_classes_ = n_classes
        self._channel_stats(faces)
        self.net_ = MANNet(tuple(p.branches), n_classes, p.width, tuple(p.blocks), p.small_input,
                           p.hidden, p.dropout)
        if p.pretrained:
            load_imagenet(self.net_, p.small_input)
        # channels-last: the layout of the input views (:meth:`_frames`), and oneDNN's faster
        # one for these few-channel convolutions (profiled: 13 % less time a step)
        self.net_.to(self.device_, memory_format=torch.channels_last)
        weight = (class_weights(train.y, n_classes) if p.class_weight == "balanced"
                  else torch.ones(n_classes)).to(self.device_)          # (k,)
        # the clips whose frames train the network and the SVM: the training fold, nothing else
        self.trained_clips_ = list(train.meta["clip_id"])
        _assert_within(train.groups, self.train_groups_, "the CNN")

        def loss_of(idx: torch.Tensor) -> torch.Tensor:
            logits = self.net_(self._branches(self._frames(faces, idx)))   # (b, k)
            return F.cross_entropy(logits, y[idx // p.frames].to(self.device_), weight=weight)

        self.history_ = train_epochs(self.net_, loss_of, len(faces) * p.frames, p, gen)
        z = self._z(faces)                                                # (n, D)
        self.z_mean_ = z.mean(0)
        sd = z.std(0)
        self.z_scale_ = np.where(sd > 1e-8, sd, 1.0)                     # dead units stay 0
        _assert_within(train.groups, self.train_groups_, "the SVM")
        self.svm_ = SVC(kernel=p.svm_kernel, C=p.svm_C, gamma="scale",
                        class_weight=None if p.class_weight == "none" else "balanced",
                        decision_function_shape="ovr").fit((z - self.z_mean_) / self.z_scale_, train.y)
        return self

    def predict_proba(self, test: Samples) -> np.ndarray:
        leaked = sorted(set(test.groups) & self.train_groups_)
        if leaked:
            raise AssertionError(f"MAN: test clips of training subjects {leaked[:5]}: the network "
                                 "and the SVM must never have seen a test subject")
        with no_nan_fill():
            z = (self._z(self._faces(test)) - self.z_mean_) / self.z_scale_  # (m, D)
        scores = self.svm_.decision_function(z)                           # (m, k) or (m,)
        if scores.ndim == 1:
            scores = np.stack([-scores, scores], 1)
        full = np.full((len(z), self.n_classes_), -np.inf)               # classes absent: p = 0
        full[:, self.svm_.classes_] = scores
        return softmax(full, axis=1)

    def explain(self) -> dict:
        """The training loss per epoch (for the report's caption)."""
        return {"loss": [round(float(v), 5) for v in self.history_],
                "n_train_clips": len(self.trained_clips_)}

    @classmethod
    def render(cls, explanations: dict[str, dict], samples: Samples, out: Path) -> list[tuple[str, str]]:
        """The paper's Fig. 3 on our data: the grid and the three regions over the first clip's
        face (its apex frame, at 10-pixel cells), and the mean final training loss in the caption."""
        clip = samples.meta.iloc[0]
        tim = load_npz(artifacts.artifact_path("tim64", clip["dataset"], clip["clip_id"]))
        crops = tim["frames"][int(tim["apex_index"])][None]             # (1, S, S, 3)
        face = faces_from_crops(crops, CropParams.eye_distance, CropParams.eye_y, 10)[0]  # (140, 120, 3)
        picture = np.ascontiguousarray(cv2.resize(face, (360, 420), interpolation=cv2.INTER_NEAREST))
        scale = 3
        for c in range(GRID_COLS + 1):
            cv2.line(picture, (c * 10 * scale, 0), (c * 10 * scale, 420), (200, 200, 200), 1)
        for r in range(GRID_ROWS + 1):
            cv2.line(picture, (0, r * 10 * scale), (360, r * 10 * scale), (200, 200, 200), 1)
        colours = {"left_eye": (255, 60, 60), "right_eye": (60, 200, 60), "mouth": (60, 60, 255)}
        for name, (c0, c1, r0, r1) in ROIS.items():
            cv2.rectangle(picture, (c0 * 30 + 1, r0 * 30 + 1), ((c1 + 1) * 30 - 2, (r1 + 1) * 30 - 2),
                          colours[name], 2)
        name = "rois.png"
        cv2.imwrite(str(out / name), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        final = [e["loss"][-1] for e in explanations.values() if e.get("loss")]
        caption = (f"12 x 14 grid of 10-px cells and the regions (red: left eye + brow, green: right, "
                   f"blue: mouth) on {clip['clip_id']}; mean final training loss over "
                   f"{len(final)} folds: {np.mean(final):.3f}")
        return [(name, caption)]


def _assert_within(groups: np.ndarray, allowed: frozenset, what: str) -> None:
    """Leakage guard: every subject whose clips train ``what`` is a training subject."""
    outside = sorted(set(groups) - allowed)
    if outside:
        raise AssertionError(f"MAN: {what} would train on clips of non-training subjects {outside[:5]}")
