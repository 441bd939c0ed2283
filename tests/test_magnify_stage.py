"""The ``magnify@<dataset>`` stage (mer.motion.magnify) on a tiny hand-made crop folder: artifact
layout, the onset-is-the-reference convention, real magnification, skips carried over,
deterministic bytes, both methods, and the errors a user can hit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES

from mer import artifacts
from mer.data.manifest import Clip, write_manifest
from mer.errors import MerError
from mer.io import load_npz, save_npz
from mer.motion.magnify import MagnifyParams, frame_selection, run

WEIGHTS = FIXTURES / "models" / "magnet_epoch12_loss7.28e-02.pth"
DATASET = "tiny"
N, SIZE, CYCLES = 24, 64, 3          # 24 frames at 200 fps: the event's frequency, 8.3 Hz, is in band


def _grating(shift: np.ndarray) -> np.ndarray:
    """``(T, SIZE, SIZE, 3)`` uint8: a coloured sinusoid moved right by ``shift`` px per frame."""
    x = np.arange(SIZE)[None, None, :] - shift[:, None, None]
    wave = np.sin(2 * np.pi * CYCLES * x / SIZE) * np.ones((1, SIZE, 1))      # (T, S, S)
    rgb = np.stack([120 + 50 * wave, 100 + 40 * wave, 90 + 30 * wave], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _phase_shift(a: np.ndarray, b: np.ndarray) -> float:
    basis = np.exp(-2j * np.pi * CYCLES * np.arange(SIZE) / SIZE)
    fa, fb = (np.sum(f.astype(np.float64).mean(axis=-1) @ basis) for f in (a, b))
    return float(-np.angle(fb / fa) * SIZE / (2 * np.pi * CYCLES))


def _clip(clip_id: str, apex: int) -> Clip:
    return Clip(clip_id=clip_id, corpus=DATASET, subject="s1", clip=clip_id, frame_dir=clip_id,
                frames=[f"{i}.png" for i in range(N)], onset=0, apex=apex, offset=N - 1,
                apex_source="annotated", apex_index=apex, aus=[], aus_raw="", emotion_raw="x",
                emotion="x", fps=200.0)


@pytest.fixture
def crops(tmp_path, monkeypatch) -> dict[str, np.ndarray]:
    """A crop folder with two ok clips and one skipped upstream, plus the manifest."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MER_PROGRESS", "0")
    crop_dir = artifacts.artifact_dir("crop", DATASET)
    crop_dir.mkdir(parents=True)
    t = np.arange(N)
    frames = {"a": _grating(0.5 * np.sin(np.pi * t / (N - 1))),        # apex in the middle
              "b": _grating(0.4 * np.sin(np.pi * t / (N - 1)) ** 2)}
    apexes = {"a": 12, "b": 11}
    for cid, clip in frames.items():
        save_npz(crop_dir / f"{cid}.npz", compress=False, frames=clip,
                 landmarks=np.zeros((N, 68, 2), np.float32), transform=np.eye(2, 3),
                 apex_index=np.int64(apexes[cid]))
    artifacts.write_index(crop_dir, [{"clip_id": "a", "status": "ok"},
                                     {"clip_id": "gone", "status": "skipped: no face"},
                                     {"clip_id": "b", "status": "ok"}])
    write_manifest([_clip("a", 12), _clip("gone", 5), _clip("b", 11)],
                   artifacts.manifest_path(DATASET))
    return frames


def _params(**magnify) -> dict:
    return {"workers": 1, "magnify": {"size": SIZE, **magnify}}


def test_evm_key_frames(crops):
    out = run(_params(method="evm", alpha=4.0, evm_lambda_c=0.0), DATASET)
    assert out == Path(f"data/interim/{DATASET}/magnify") and out.is_dir()
    index = artifacts.read_index(out, "magnify")
    assert index.to_dict("records") == [{"clip_id": "a", "status": "ok"},
                                        {"clip_id": "gone", "status": "skipped: no face"},
                                        {"clip_id": "b", "status": "ok"}]
    assert sorted(p.name for p in out.iterdir()) == ["a.npz", "b.npz", "index.csv"]
    data = load_npz(out / "a.npz")
    assert data["frames"].shape == (3, SIZE, SIZE, 3) and data["frames"].dtype == np.uint8
    assert data["keys"].tolist() == ["onset", "apex", "offset"]
    assert data["index"].tolist() == [0, 12, N - 1] and data["index"].dtype == np.int64
    assert data["alpha"].item() == 4.0
    src = crops["a"]
    np.testing.assert_array_equal(data["frames"][0], src[0])          # the onset, unchanged
    before = _phase_shift(src[0], src[12])
    after = _phase_shift(src[0], data["frames"][1])
    assert before == pytest.approx(0.5, abs=0.03)
    assert after > 1.8 * before, (before, after)                       # the apex really moved more


def test_whole_clip_resized_and_deterministic(crops, tmp_path):
    params = _params(method="evm", frames="clip", size=32)
    first = (run(params, DATASET) / "b.npz").read_bytes()
    data = load_npz(Path(f"data/interim/{DATASET}/magnify/b.npz"))
    assert data["frames"].shape == (N, 32, 32, 3)
    assert data["keys"][:3].tolist() == ["f000", "f001", "f002"] and len(data["keys"]) == N
    np.testing.assert_array_equal(data["index"], np.arange(N))
    params["workers"] = 2                                              # worker processes: same bytes
    assert (run(params, DATASET) / "b.npz").read_bytes() == first


def test_frame_selection():
    assert frame_selection(5, 2, "keys")[0] == ["onset", "apex", "offset"]
    np.testing.assert_array_equal(frame_selection(5, 2, "keys")[1], [0, 2, 4])
    names, index = frame_selection(1200, 0, "clip")
    assert names[0] == "f0000" and names[-1] == "f1199" and len(index) == 1200


@pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"MagNet weights not found: {WEIGHTS}")
def test_magnet_key_frames(crops):
    zero = load_npz(run(_params(method="magnet", alpha=0.0, weights=str(WEIGHTS)),
                        DATASET) / "a.npz")["frames"]
    high = load_npz(run(_params(method="magnet", alpha=10.0, weights=str(WEIGHTS)),
                        DATASET) / "a.npz")["frames"]
    src = crops["a"]
    np.testing.assert_array_equal(zero[0], src[0])
    np.testing.assert_array_equal(high[0], src[0])
    assert np.abs(zero[1].astype(int) - src[12]).mean() < 3.0         # alpha 0: about the apex
    assert abs(_phase_shift(src[0], high[1])) > 2 * abs(_phase_shift(src[0], src[12]))


def test_magnet_without_weights_stops_before_writing(crops):
    with pytest.raises(MerError, match="magnify.weights") as err:
        run(_params(method="magnet"), DATASET)
    assert "ZhengPeng7" in str(err.value)
    with pytest.raises(MerError, match="not found") as err:
        run(_params(method="magnet", weights="models/nowhere.pth"), DATASET)
    assert "models/nowhere.pth" in str(err.value)
    assert not artifacts.artifact_dir("magnify", DATASET).exists()


def test_bad_params_and_missing_inputs(crops, monkeypatch, tmp_path):
    with pytest.raises(MerError, match="did you mean 'magnify.alpha'"):
        run({"magnify": {"alpah": 3}}, DATASET)
    with pytest.raises(MerError, match="magnify.method"):
        run(_params(method="phase"), DATASET)
    with pytest.raises(MerError, match="magnify.evm_band"):
        run(_params(evm_band=[3.0, 1.0]), DATASET)
    with pytest.raises(MerError, match="crop@other"):
        run(_params(), "other")
    artifacts.manifest_path(DATASET).unlink()
    with pytest.raises(MerError, match="ingest@tiny"):
        run(_params(), DATASET)


def test_defaults_are_documented():
    cfg = MagnifyParams()
    assert (cfg.method, cfg.alpha, cfg.frames, cfg.size, cfg.weights) == ("evm", 3.0, "keys", 224, "")
    assert MagnifyParams.__doc__ and all(f in MagnifyParams.__doc__ for f in
                                         ("evm_band", "evm_lambda_c", "weights", "frames"))
