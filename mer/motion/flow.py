"""TV-L1 optical flow between key frames, optical strain and flow magnitude.

Flow is OpenCV's dual TV-L1 (Zach, Pock & Bischof 2007; ``cv2.optflow.DualTVL1OpticalFlow``
from opencv-contrib): the estimator the micro-expression literature uses for its onset -> apex
flow images.  A pair named ``"onset-apex"`` is the flow **from** the onset **to** the apex:
``calc(onset, apex)``, so that ``onset(y, x) ~ apex(y + v, x + u)`` and (u, v) is where each
onset pixel went.

Optical strain is the magnitude of the flow's symmetric gradient (the infinitesimal strain
tensor), which highlights where skin is stretched rather than carried along:

    strain = sqrt(ux^2 + vy^2 + 0.5 * (uy + vx)^2)

with ux = du/dx etc. taken by ``np.gradient``: central differences inside, one-sided first-order
differences on the one-pixel border (``edge_order=1``), unit pixel spacing.

Cost (``benchmarks/bench_flow.py``, one OpenCV thread, a real face pair with micro-expression
sized motion, on the project's shared 2-core machine): with OpenCV's defaults one pair takes
~0.33 s at 112 x 112 and ~1.5 s at 224 x 224 (4.5x), so a clip's two pairs cost ~0.7 s or ~3 s
(the whole stage on SynthME's 260 clips at 112: 3.6 min with 2 workers, while other jobs shared
the machine).  Hence ``size`` defaults to 112; the
annotation-mimicking method, whose network reads 224 x 224 inputs, sets 224 in its preset.
Everything else per pair (gray, resize, strain, magnitude, float16) costs ~0.8 ms at 112
(~2 ms at 224), well inside the issue's 10% of a bare ``calc()``; creating the TV-L1 object is
free next to ``calc()`` (ratio 1.0), but :func:`tvl1` still keeps one per process and params.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from mer.config import validate
from mer.errors import MerError

__all__ = [
    "KEY_FRAMES",
    "MIMIC_PRESET",
    "OPENCV_DEFAULTS",
    "FlowParams",
    "cv_threads",
    "flow_features",
    "flow_pair",
    "optical_strain",
    "parse_pair",
    "to_gray",
    "tvl1",
]

KEY_FRAMES = ("onset", "apex", "offset")

#: OpenCV 4.11's ``DualTVL1OpticalFlow_create()`` defaults under this module's key names
#: (a test reads them back from a created object, so a changed OpenCV shows up)
OPENCV_DEFAULTS = {"tau": 0.25, "lambda_": 0.15, "theta": 0.3, "nscales": 5, "warps": 5,
                   "epsilon": 0.01, "inner_iterations": 30, "outer_iterations": 10,
                   "scale_step": 0.8, "gamma": 0.0, "median_filtering": 5}

#: what the annotation-mimicking method's preprocessing changes: a coarser pyramid (scale step
#: 0.5) on 224 x 224 frames, the onset->apex and offset->apex flows.  Its paper takes the apex
#: from the crop on CASME II and the magnified apex on SAMM: ``apex_from`` stays per corpus.
MIMIC_PRESET = {"scale_step": 0.5, "size": 224, "pairs": ["onset-apex", "offset-apex"]}


@dataclass
class FlowParams:
    """``flow``: TV-L1 flow between key frames of each crop clip.

    The first eleven keys are OpenCV's TV-L1 parameters; their defaults are OpenCV's own
    (``OPENCV_DEFAULTS``), snake_cased, with ``lambda_`` spelt as OpenCV's Python binding spells
    it (``lambda`` is a Python keyword):

    tau:              time step of the numerical scheme (0.25).
    lambda_:          weight of the data term: smaller gives smoother flow (0.15).
    theta:            coupling of the two sub-problems (0.3).
    nscales:          pyramid levels (5).
    warps:            warpings per level (5).
    epsilon:          stopping threshold of the inner iterations (0.01).
    inner_iterations: inner iterations per warp (30).
    outer_iterations: outer iterations per warp (10).
    scale_step:       pyramid scale factor between levels (0.8 = OpenCV's default).  The
                      annotation-mimicking paper's preprocessing uses 0.5 (``MIMIC_PRESET``):
                      coarser levels shrink faster, 30-45% cheaper; on a SynthME onset -> apex
                      pair at 112 the flows differ by 0.015 px on average (99th percentile
                      0.13 px).  The default stays OpenCV's 0.8, so that an unconfigured run is
                      plain OpenCV TV-L1; the mimicking preset sets 0.5.
    gamma:            weight of the illumination-change term (0 = off).
    median_filtering: median filter size on the flow between iterations (5; 1 = off, or 3).

    OpenCV's ``useInitialFlow`` is deliberately not a key: every pair here is computed from
    scratch and there is no earlier flow to start from, so ``true`` could only mean "start from
    zero", which is what ``false`` already does.

    size:       frames are converted to gray and resized to ``size`` x ``size`` before flow.
                112 by default: a 224 pair costs ~4.5x as much (module docstring); the
                annotation-mimicking preset sets 224, the size its network reads.
    apex_from:  ``crop`` (the apex frame of the crop clip) or ``magnify`` (the magnify stage's
                magnified apex; onset and offset still come from the crop clip).
    pairs:      flows to compute, each ``"<from>-<to>"`` with from/to in onset, apex, offset.
                Default: onset -> apex and offset -> apex.
    """

    tau: float = OPENCV_DEFAULTS["tau"]
    lambda_: float = OPENCV_DEFAULTS["lambda_"]
    theta: float = OPENCV_DEFAULTS["theta"]
    nscales: int = OPENCV_DEFAULTS["nscales"]
    warps: int = OPENCV_DEFAULTS["warps"]
    epsilon: float = OPENCV_DEFAULTS["epsilon"]
    inner_iterations: int = OPENCV_DEFAULTS["inner_iterations"]
    outer_iterations: int = OPENCV_DEFAULTS["outer_iterations"]
    scale_step: float = OPENCV_DEFAULTS["scale_step"]
    gamma: float = OPENCV_DEFAULTS["gamma"]
    median_filtering: int = OPENCV_DEFAULTS["median_filtering"]
    size: int = 112
    apex_from: str = "crop"
    pairs: list[str] = field(default_factory=lambda: ["onset-apex", "offset-apex"])

    @classmethod
    def from_dict(cls, section: dict | None) -> FlowParams:
        """The validated ``flow`` section: unknown keys, wrong types and bad values are errors."""
        params = validate(section, cls, "flow")
        params.check()
        return params

    def check(self) -> None:
        """Ranges the schema's types cannot express; one MerError naming the key and the fix."""
        def bad(key: str, rule: str) -> MerError:
            return MerError(f"invalid value {getattr(self, key)!r} for flow.{key}", "params flow",
                            rule)

        for key in ("tau", "lambda_", "theta", "epsilon"):
            if not getattr(self, key) > 0:
                raise bad(key, "use a positive number")
        for key in ("nscales", "warps", "inner_iterations", "outer_iterations"):
            if getattr(self, key) < 1:
                raise bad(key, "use an integer of at least 1")
        if not 0 < self.scale_step < 1:
            raise bad("scale_step", "use a factor between 0 and 1 (OpenCV: 0.8; mimicking: 0.5)")
        if self.gamma < 0:
            raise bad("gamma", "use 0 (off) or a positive weight")
        if self.median_filtering not in (1, 3, 5):
            raise bad("median_filtering", "use 1 (off), 3 or 5 (OpenCV's float median filter sizes)")
        if not 16 <= self.size <= 1024:
            raise bad("size", "use a side from 16 to 1024 pixels (112 default, 224 for mimicking)")
        if self.apex_from not in ("crop", "magnify"):
            raise bad("apex_from", "use 'crop' or 'magnify'")
        if not self.pairs:
            raise bad("pairs", "list at least one pair, e.g. [onset-apex, offset-apex]")
        for pair in self.pairs:
            parse_pair(pair)
        if len(set(self.pairs)) != len(self.pairs):
            raise bad("pairs", "list each pair once")

    def tvl1_args(self) -> tuple:
        """OpenCV's positional arguments of ``DualTVL1OpticalFlow_create`` (useInitialFlow off)."""
        return (float(self.tau), float(self.lambda_), float(self.theta), int(self.nscales),
                int(self.warps), float(self.epsilon), int(self.inner_iterations),
                int(self.outer_iterations), float(self.scale_step), float(self.gamma),
                int(self.median_filtering), False)


def parse_pair(name: str) -> tuple[str, str]:
    """``"onset-apex"`` -> ``("onset", "apex")``; anything else is a MerError."""
    parts = str(name).split("-")
    if len(parts) != 2 or parts[0] not in KEY_FRAMES or parts[1] not in KEY_FRAMES \
            or parts[0] == parts[1]:
        raise MerError(f"unknown flow pair '{name}'", "params flow.pairs",
                       "write '<from>-<to>' with two different frames of onset, apex, offset, "
                       "e.g. onset-apex")
    return parts[0], parts[1]


_TVL1: dict[tuple, cv2.optflow.DualTVL1OpticalFlow] = {}


def tvl1(params: FlowParams) -> cv2.optflow.DualTVL1OpticalFlow:
    """This process's TV-L1 object for ``params``, created once and reused.

    Creating one costs ~0.1 ms and ``benchmarks/bench_flow.py`` finds no difference in ``calc()``
    between a fresh and a reused object, but one object per process is the simplest way to never
    pay for creation or buffer allocation per pair.
    """
    args = params.tvl1_args()
    if args not in _TVL1:
        _TVL1[args] = cv2.optflow.DualTVL1OpticalFlow_create(*args)
    return _TVL1[args]


@contextlib.contextmanager
def cv_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` OpenCV threads, then restore the caller's setting.

    Why: stages run one clip per core in worker processes; OpenCV's own thread pool on top of
    that only oversubscribes the cores.  Use it in the parent around the pool, never inside a
    forked worker: there ``cv2.setNumThreads`` hangs once the parent has used OpenCV's pool
    (see :mod:`mer.motion.flow_stage`).
    """
    before = cv2.getNumThreads()
    cv2.setNumThreads(int(n))
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def to_gray(frame: np.ndarray, size: int) -> np.ndarray:
    """An RGB (H, W, 3) or gray (H, W) uint8 frame as a (size, size) uint8 gray frame.

    Converted to gray first (a third of the pixels to resize), then area-averaged when shrinking
    (no aliasing) or bilinear when enlarging.
    """
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] != 3):
        raise MerError(f"flow needs (H, W, 3) RGB or (H, W) gray uint8 frames, got "
                       f"{frame.shape} {frame.dtype}", fix="pass crop or magnify frames")
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame      # (H, W)
    if gray.shape == (size, size):
        return gray
    shrink = gray.shape[0] >= size and gray.shape[1] >= size
    return cv2.resize(gray, (size, size),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def optical_strain(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """sqrt(ux^2 + vy^2 + 0.5 (uy + vx)^2) by central differences. (H, W), (H, W) -> (H, W)

    Border pixels use one-sided first-order differences (``np.gradient``'s edge_order=1).
    """
    uy, ux = np.gradient(u)                                   # d/d(row) = y, d/d(col) = x
    vy, vx = np.gradient(v)
    shear = uy + vx
    return np.sqrt(ux * ux + vy * vy + 0.5 * shear * shear)


def flow_pair(first: np.ndarray, second: np.ndarray, params: FlowParams) -> dict[str, np.ndarray]:
    """Flow from ``first`` to ``second`` with strain and magnitude, each (size, size) float16.

    ``first``/``second``: (H, W, 3) RGB or (H, W) gray uint8, any size.
    """
    a, b = to_gray(first, params.size), to_gray(second, params.size)  # (S, S) uint8
    flow = tvl1(params).calc(a, b, None)                               # (S, S, 2) float32
    u, v = flow[..., 0], flow[..., 1]
    return {"u": u.astype(np.float16), "v": v.astype(np.float16),
            "strain": optical_strain(u, v).astype(np.float16),
            "magnitude": np.sqrt(u * u + v * v).astype(np.float16)}


def flow_features(frames: dict[str, np.ndarray], params: FlowParams) -> dict[str, np.ndarray]:
    """Every pair of ``params.pairs`` from the key frames ``frames`` (onset/apex/offset -> frame).

    Returns ``u``, ``v``, ``strain``, ``magnitude`` (P, S, S) float16, ``pairs`` (P,) unicode and
    ``size`` () int64: the flow artifact of one clip.
    """
    per_pair = []
    for name in params.pairs:
        src, dst = parse_pair(name)
        per_pair.append(flow_pair(frames[src], frames[dst], params))
    out = {key: np.stack([p[key] for p in per_pair]) for key in ("u", "v", "strain", "magnitude")}
    out["pairs"] = np.array(params.pairs, dtype=str)                          # (P,) unicode
    out["size"] = np.int64(params.size)
    return out
