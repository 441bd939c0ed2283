"""MagNet (mer.motion.magnet): the network loads the MIT weights strictly, alpha 0 reconstructs a
real face, larger alpha means measurably more motion, and a missing file is one clear error.

The real-face pair: frames 0 and 4 of ``WolfgangLanger_Pexels.mp4`` (24 fps, so 1/6 s apart;
about 1 px of mean TV-L1 motion), cropped exactly as the pipeline does (``crop_clip`` with the
default ``CropParams``: dlib face, eye-aligned 224 x 224 crop).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import FIXTURES

from mer.errors import MerError
from mer.motion.magnet import (
    MagNet,
    load_magnet,
    magnet_pairs,
    magnet_pairs_reference,
    magnify_pairs,
)

WEIGHTS = FIXTURES / "models" / "magnet_epoch12_loss7.28e-02.pth"
KEYS_SHAPES = FIXTURES / "models" / "state_dict_keys_shapes.txt"
VIDEO = FIXTURES / "faces" / "WolfgangLanger_Pexels.mp4"
ONSET, APEX = 0, 4

needs_weights = pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"MagNet weights not found: {WEIGHTS}")
needs_video = pytest.mark.skipif(not VIDEO.is_file(), reason=f"real face video not found: {VIDEO}")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> MagNet:
    return load_magnet(WEIGHTS, "cpu")


@pytest.fixture(scope="module")
def face_pair(tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    """``(224, 224, 3)`` uint8 RGB onset and apex crops of the real video."""
    from mer.face.crop import CropParams, crop_clip
    cap = cv2.VideoCapture(str(VIDEO))
    frames = []
    while len(frames) <= APEX:
        ok, frame = cap.read()
        assert ok, f"cannot read frame {len(frames)} of {VIDEO}"
        frames.append(frame)                                             # (360, 640, 3) BGR
    cap.release()
    folder = tmp_path_factory.mktemp("wolfgang")
    paths = []
    for i in (ONSET, APEX):
        paths.append(folder / f"{i:03d}.png")
        cv2.imwrite(str(paths[-1]), frames[i])
    crops = crop_clip(paths, CropParams(), "WolfgangLanger_Pexels")["frames"]  # (2, 224, 224, 3)
    return crops[0], crops[1]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def _mean_flow(a: np.ndarray, b: np.ndarray) -> float:
    """Mean TV-L1 flow magnitude (px) from RGB frame ``a`` to ``b`` (OpenCV's default params)."""
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    flow = tvl1.calc(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), None)
    return float(np.linalg.norm(flow, axis=-1).mean())


@needs_weights
def test_weights_load_strictly_with_the_listed_names_and_shapes(model, tmp_path):
    state = model.state_dict()
    assert len(state) == 42 and all(k.endswith("conv2d.weight") for k in state)
    if KEYS_SHAPES.is_file():
        listed = {}
        for line in KEYS_SHAPES.read_text().splitlines():
            key, shape = line.split(" ", 1)
            listed[key] = tuple(int(s) for s in shape.strip("()").split(","))
        assert {k: tuple(v.shape) for k, v in state.items()} == listed
    # a checkpoint wrapped by a training script (state_dict key, DataParallel prefix) loads too
    raw = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"epoch": 12, "state_dict": {f"module.{k}": v for k, v in raw.items()}}, wrapped)
    again = load_magnet(wrapped, "cpu").state_dict()
    assert all(torch.equal(again[k], raw[k]) for k in raw)


def test_missing_or_wrong_weights_are_one_clear_error(tmp_path):
    missing = tmp_path / "nowhere" / "magnet.pth"
    with pytest.raises(MerError, match="ZhengPeng7") as err:
        load_magnet(missing)
    assert str(missing) in str(err.value) and "magnify.weights" in str(err.value)
    with pytest.raises(MerError, match="magnify.weights"):
        load_magnet("")
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(MerError, match="not a MagNet checkpoint"):
        load_magnet(other)


def test_any_frame_size_and_batching_agree_with_plain_forward():
    """Random weights, odd sizes: the padded, batched, channels-last path equals one plain
    ``model(a, b, alpha)`` per pair, and the output has the input's size."""
    torch.manual_seed(0)
    net = MagNet().eval()
    rng = np.random.default_rng(0)
    onset = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    targets = rng.integers(0, 256, (3, 37, 53, 3), dtype=np.uint8)
    ours = magnet_pairs(net, onset, targets, 4.0, batch=2)
    ref = magnet_pairs_reference(net, onset, targets, 4.0)
    assert ours.shape == ref.shape == (3, 37, 53, 3) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= 1e-4
    assert ours.std() > 1e-3                              # random weights still give a real image
    frames = magnify_pairs(net, onset, targets, 4.0)
    assert frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, np.rint((ours + 1) * 127.5).astype(np.uint8))
    with pytest.raises(MerError, match="at least"):
        magnify_pairs(net, onset[:4, :4], targets[:, :4, :4], 1.0)


@needs_weights
@needs_video
def test_alpha_zero_reconstructs_the_apex(model, face_pair):
    onset, apex = face_pair
    out = magnify_pairs(model, onset, apex[None], 0.0)[0]
    assert _psnr(out, apex) >= 30.0
    assert _psnr(onset, apex) < _psnr(out, apex)          # it is the apex, not the onset


@needs_weights
@needs_video
def test_larger_alpha_means_more_motion(model, face_pair):
    onset, apex = face_pair
    flows = {}
    for alpha in (1.0, 5.0, 10.0):
        flows[alpha] = _mean_flow(onset, magnify_pairs(model, onset, apex[None], alpha)[0])
    original = _mean_flow(onset, apex)
    assert 0.3 < original < 3.0                           # a small, micro-expression-like motion
    assert flows[1.0] < flows[5.0] < flows[10.0], flows
    assert flows[5.0] > 2.0 * flows[1.0] and flows[10.0] > 1.3 * flows[5.0], flows
    assert flows[10.0] > 3.0 * original, (flows, original)
