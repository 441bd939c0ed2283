"""TV-L1 flow, optical strain and the flow@<dataset> stage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mer.errors import MerError
from mer.io import load_npz, save_npz
from mer.motion import flow as fl
from mer.motion import flow_stage

FIXTURES = Path(__file__).parents[1] / ".." / "shared" / "fixtures"
VIDEO = FIXTURES / "faces" / "WolfgangLanger_Pexels.mp4"


def texture(s: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((s, s, 3)).astype(np.float32), (0, 0), 2.5)
    return cv2.normalize(base, None, 20, 235, cv2.NORM_MINMAX)              # (s, s, 3) float32


def moved(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` with its content moved by (dx, dy) pixels, as uint8."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    out = cv2.warpAffine(image, m, image.shape[1::-1], flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REFLECT)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def test_our_defaults_are_opencvs():
    cv = cv2.optflow.DualTVL1OpticalFlow_create()
    read = {"tau": cv.getTau(), "lambda_": cv.getLambda(), "theta": cv.getTheta(),
            "nscales": cv.getScalesNumber(), "warps": cv.getWarpingsNumber(),
            "epsilon": cv.getEpsilon(), "inner_iterations": cv.getInnerIterations(),
            "outer_iterations": cv.getOuterIterations(), "scale_step": cv.getScaleStep(),
            "gamma": cv.getGamma(), "median_filtering": cv.getMedianFiltering()}
    ours = fl.FlowParams()
    for key, value in read.items():
        assert getattr(ours, key) == pytest.approx(value), key
        assert fl.OPENCV_DEFAULTS[key] == pytest.approx(value), key
    assert cv.getUseInitialFlow() is False
    assert (ours.size, ours.apex_from, ours.pairs) == (112, "crop", ["onset-apex", "offset-apex"])
    assert fl.MIMIC_PRESET["scale_step"] == 0.5 and fl.MIMIC_PRESET["size"] == 224


def test_tvl1_object_carries_our_params_and_is_reused():
    params = fl.FlowParams(tau=0.2, lambda_=0.1, nscales=3, warps=2, inner_iterations=7,
                           scale_step=0.5, median_filtering=3)
    cv = fl.tvl1(params)
    assert (cv.getTau(), cv.getLambda(), cv.getScalesNumber(), cv.getWarpingsNumber(),
            cv.getInnerIterations(), cv.getScaleStep(), cv.getMedianFiltering()) == \
        pytest.approx((0.2, 0.1, 3, 2, 7, 0.5, 3))
    assert fl.tvl1(fl.FlowParams(tau=0.2, lambda_=0.1, nscales=3, warps=2, inner_iterations=7,
                                 scale_step=0.5, median_filtering=3)) is cv
    assert fl.tvl1(fl.FlowParams()) is not cv


def test_flow_recovers_a_known_translation_in_the_documented_direction():
    base = texture(64)
    first, second = moved(base, 0, 0), moved(base, 1.5, -0.75)   # content goes right and up
    out = fl.flow_pair(first, second, fl.FlowParams(size=64))
    inner = (slice(8, -8), slice(8, -8))
    u = out["u"][inner].astype(np.float32)
    v = out["v"][inner].astype(np.float32)
    assert np.median(u) == pytest.approx(1.5, abs=0.1)
    assert np.median(v) == pytest.approx(-0.75, abs=0.1)
    assert out["magnitude"].dtype == np.float16 and out["u"].shape == (64, 64)
    mag = out["magnitude"].astype(np.float32)
    assert np.allclose(mag, np.hypot(out["u"].astype(np.float32), out["v"].astype(np.float32)),
                       rtol=2e-3, atol=1e-3)
    # a pure translation does not strain: the inner strain is far below the motion itself
    assert np.median(out["strain"][inner].astype(np.float32)) < 0.05


def test_strain_of_analytic_fields():
    y, x = np.mgrid[0:20, 0:30].astype(np.float64)
    # linear field: ux = 0.1, vy = -0.2, uy = 0.05, vx = 0.03 everywhere (borders included)
    u, v = 0.1 * x + 0.05 * y, 0.03 * x - 0.2 * y
    want = np.sqrt(0.1 ** 2 + 0.2 ** 2 + 0.5 * (0.05 + 0.03) ** 2)
    assert np.allclose(fl.optical_strain(u, v), want)
    # a rigid rotation moves without straining
    assert np.allclose(fl.optical_strain(-0.3 * y, 0.3 * x), 0)
    # u = x^2: central differences inside (2x exactly), one-sided first order on the border
    s = fl.optical_strain(x ** 2, np.zeros_like(x))
    assert np.allclose(s[:, 1:-1], 2 * x[:, 1:-1])
    assert np.allclose(s[:, 0], 1.0) and np.allclose(s[:, -1], 29 ** 2 - 28 ** 2)


def test_flow_features_layout_and_pair_directions():
    base = texture(48, seed=1)
    onset, apex = moved(base, 0, 0), moved(base, 1.0, 0.5)
    frames = {"onset": onset, "apex": apex, "offset": onset.copy()}
    out = fl.flow_features(frames, fl.FlowParams(size=32, pairs=["onset-apex", "offset-apex",
                                                                  "apex-onset"]))
    for key in ("u", "v", "strain", "magnitude"):
        assert out[key].shape == (3, 32, 32) and out[key].dtype == np.float16
    assert out["pairs"].tolist() == ["onset-apex", "offset-apex", "apex-onset"]
    assert out["pairs"].dtype.kind == "U" and int(out["size"]) == 32
    assert np.array_equal(out["u"][0], out["u"][1])        # offset == onset: the same flow
    mid = (slice(6, -6), slice(6, -6))
    assert np.median(out["u"][0][mid]) > 0.4 > -0.4 > np.median(out["u"][2][mid])  # reversed


@pytest.mark.skipif(not VIDEO.exists(), reason=f"face fixture absent: {VIDEO}")
def test_flow_on_a_real_face_pair_explains_the_change():
    cap = cv2.VideoCapture(str(VIDEO))
    frames = [cap.read()[1] for _ in range(5)]
    cap.release()
    a, b = (cv2.cvtColor(f[:, 140:500], cv2.COLOR_BGR2RGB) for f in (frames[0], frames[4]))
    out = fl.flow_pair(a, b, fl.FlowParams(size=112))
    ga, gb = (fl.to_gray(f, 112).astype(np.float32) for f in (a, b))
    yy, xx = np.mgrid[0:112, 0:112].astype(np.float32)
    warped = cv2.remap(gb, xx + out["u"].astype(np.float32), yy + out["v"].astype(np.float32),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)   # b pulled back onto a
    inner = (slice(8, -8), slice(8, -8))
    before = np.abs(gb - ga)[inner].mean()
    after = np.abs(warped - ga)[inner].mean()
    assert after < 0.6 * before, (before, after)
    assert 0.1 < float(out["magnitude"].astype(np.float32).mean()) < 5


@pytest.mark.parametrize("section, match", [
    ({"scalestep": 0.5}, "did you mean 'flow.scale_step'"),
    ({"lambda": 0.1}, "flow.lambda_"),
    ({"pairs": ["onset-peak"]}, "unknown flow pair 'onset-peak'"),
    ({"pairs": ["onset-onset"]}, "unknown flow pair"),
    ({"pairs": ["onset-apex", "onset-apex"]}, "list each pair once"),
    ({"pairs": []}, "at least one pair"),
    ({"scale_step": 1.2}, "flow.scale_step"),
    ({"median_filtering": 4}, "flow.median_filtering"),
    ({"apex_from": "magnet"}, "flow.apex_from"),
    ({"size": 8}, "flow.size"),
    ({"nscales": "five"}, "bad value in 'flow'"),
])
def test_bad_params_are_one_clear_error(section, match):
    with pytest.raises(MerError, match=match):
        fl.FlowParams.from_dict(section)


def test_cv_threads_restores_the_callers_setting():
    before = cv2.getNumThreads()
    with fl.cv_threads(1):
        assert cv2.getNumThreads() == 1
    assert cv2.getNumThreads() == before


# ---------------------------------------------------------------- the stage

def _crop_clip(seed: int, n: int = 9, apex: int = 4, amount: float = 1.5) -> dict:
    base = texture(48, seed)
    profile = np.r_[np.linspace(0, 1, apex + 1), np.linspace(1, 0, n - apex)[1:]]
    frames = np.stack([moved(base, amount * p, 0.5 * amount * p) for p in profile])
    return {"frames": frames, "apex_index": np.array([apex], np.int64),
            "landmarks": np.zeros((n, 68, 2), np.float32)}


def _write_crops(root: Path, dataset: str = "tiny") -> Path:
    crop = root / "data" / "interim" / dataset / "crop"
    crop.mkdir(parents=True)
    for i, cid in enumerate(["s1_a", "s1_b", "s2_a"]):
        save_npz(crop / f"{cid}.npz", compress=False, **_crop_clip(seed=i))
    (crop / "index.csv").write_text("clip_id,status\ns1_a,ok\ns1_b,ok\ns2_a,ok\n"
                                    "s2_b,skipped: no face found on the onset frame\n")
    return crop


def test_stage_writes_flow_artifacts_and_carries_skips(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MER_PROGRESS", "0")
    _write_crops(tmp_path)
    out = flow_stage.run({"flow": {"size": 32}, "workers": 1}, "tiny")
    assert out == Path("data/interim/tiny/flow")
    index = (out / "index.csv").read_text().splitlines()
    assert index == ["clip_id,status", "s1_a,ok", "s1_b,ok", "s2_a,ok",
                     "s2_b,skipped: no face found on the onset frame"]
    art = load_npz(out / "s1_a.npz")
    assert set(art) == {"u", "v", "strain", "magnitude", "pairs", "size"}
    assert art["u"].shape == (2, 32, 32) and art["u"].dtype == np.float16
    assert art["pairs"].tolist() == ["onset-apex", "offset-apex"] and int(art["size"]) == 32
    mid = (slice(6, -6), slice(6, -6))
    # onset -> apex: the content moved right by 1.5 px at 48, i.e. 1.0 px at 32
    assert np.median(art["u"][0][mid].astype(np.float32)) == pytest.approx(1.0, abs=0.15)
    assert not (tmp_path / "data" / "interim" / "tiny" / "flow" / "s2_b.npz").exists()

    first = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    flow_stage.run({"flow": {"size": 32}, "workers": 2}, "tiny")        # parallel, same bytes
    again = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert first == again
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temp dirs left


def test_stage_takes_the_magnified_apex(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MER_PROGRESS", "0")
    crop = _write_crops(tmp_path)
    magnify = tmp_path / "data" / "interim" / "tiny" / "magnify"
    magnify.mkdir(parents=True)
    for i, cid in enumerate(["s1_a", "s1_b", "s2_a"]):
        clip = load_npz(crop / f"{cid}.npz")
        big = _crop_clip(seed=i, amount=4.5)["frames"][4]                # 3x the motion
        save_npz(magnify / f"{cid}.npz", compress=False,
                 frames=np.stack([clip["frames"][0], big, clip["frames"][-1]]),
                 keys=np.array(["onset", "apex", "offset"]), index=np.array([0, 4, 8]),
                 alpha=np.float64(2.0))
    (magnify / "index.csv").write_text((crop / "index.csv").read_text())
    params = {"flow": {"size": 32, "apex_from": "magnify"}, "workers": 1}
    out = flow_stage.run(params, "tiny")
    magnified = load_npz(out / "s1_a.npz")
    base = load_npz(flow_stage.run({"flow": {"size": 32}, "workers": 1}, "tiny") / "s1_a.npz")
    for pair in (0, 1):                          # both pairs end on the magnified apex
        ratio = (magnified["magnitude"][pair].astype(np.float32).mean()
                 / base["magnitude"][pair].astype(np.float32).mean())
        assert 2.0 < ratio < 4.0, (pair, ratio)

    # a magnify artifact built for another apex is an error naming the clip
    save_npz(magnify / "s1_b.npz", compress=False, frames=np.zeros((3, 48, 48, 3), np.uint8),
             keys=np.array(["onset", "apex", "offset"]), index=np.array([0, 5, 8]),
             alpha=np.float64(2.0))
    with pytest.raises(MerError, match=r"s1_b.*no frame at the apex \(index 4"):
        flow_stage.run(params, "tiny")


def test_stage_without_upstream_artifacts_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MerError, match="dvc repro crop@tiny"):
        flow_stage.run({}, "tiny")
    _write_crops(tmp_path)
    with pytest.raises(MerError, match="dvc repro magnify@tiny"):
        flow_stage.run({"flow": {"apex_from": "magnify"}}, "tiny")


def test_parallel_stage_after_the_parent_used_opencvs_thread_pool(tmp_path):
    """Regression: cv2.setNumThreads inside a forked worker hung once the parent had used
    OpenCV's pool; a hang here becomes a failure through the subprocess timeout."""
    _write_crops(tmp_path)
    script = (                   # OpenCV's default thread count: the case that hung
        "import cv2, numpy as np\n"
        "before = cv2.getNumThreads()\n"
        "a = cv2.GaussianBlur((np.random.default_rng(0).random((64, 64)) * 255)"
        ".astype(np.uint8), (0, 0), 2)\n"
        "cv2.optflow.DualTVL1OpticalFlow_create().calc(a, np.roll(a, 1, 1), None)\n"
        "from mer.motion import flow_stage\n"
        "flow_stage.run({'flow': {'size': 32}, 'workers': 2}, 'tiny')\n"
        "assert cv2.getNumThreads() == before\n")
    env = {**os.environ, "MER_PROGRESS": "0",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", script], check=False, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((tmp_path / "data" / "interim" / "tiny" / "flow").glob("*.npz"))) == 3
