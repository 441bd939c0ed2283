"""The landmark graph (mer.features.graph) and the graph@<dataset> stage (mer.features.graph_stage):
node choice, adjacency partitions, normalisation, the landmarker's box and the stage on a real face."""

from __future__ import annotations

import glob
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES

from mer import artifacts
from mer.errors import MerError
from mer.features.graph import (
    LAYOUTS,
    STRATEGIES,
    Graph,
    face_reference,
    layout_names,
    node_features,
)
from mer.features.graph_stage import (
    GraphParams,
    key_landmarks,
    landmarker_box,
    run,
    scale_box,
)
from mer.io import load_npz, save_npz

FACES = FIXTURES / "faces"
ASTRONAUT = FACES / "astronaut.png"
EYES = set(range(36, 48))


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"fixture {path} is absent (the shared fixtures folder is not next to the repo)")
    return path


def normalised(b: np.ndarray) -> np.ndarray:
    """D^-1/2 B D^-1/2, written out element by element (independent of the module's version)."""
    b = b.astype(np.float64)
    d = b.sum(axis=1)
    out = np.zeros_like(b)
    for i in range(len(b)):
        for j in range(len(b)):
            if b[i, j]:
                out[i, j] = 1.0 / np.sqrt(d[i] * d[j])
    return out


# ------------------------------------------------------------------------------------ the graph

def test_dere31_nodes_and_parts():
    g = Graph("dere31")
    assert g.num_nodes == 31 and g.A.shape[1:] == (31, 31)
    assert g.landmark_indices.tolist() == list(range(17, 36)) + list(range(48, 60))
    assert not EYES & set(g.landmark_indices.tolist())                  # no eye points
    sizes = {name: s.stop - s.start for name, s in g.parts.items()}
    assert sizes == {"eyebrows": 10, "nose": 9, "mouth": 12}
    assert g.landmark_indices[g.parts["eyebrows"]].tolist() == list(range(17, 27))
    assert g.landmark_indices[g.parts["nose"]].tolist() == list(range(27, 36))
    assert g.landmark_indices[g.parts["mouth"]].tolist() == list(range(48, 60))


def test_dere31_edges_follow_contours():
    g = Graph("dere31")
    adj = g.adjacency
    assert adj.dtype == bool and np.array_equal(adj, adj.T) and not adj.diagonal().any()
    assert len(g.edges) == adj.sum() // 2 == 35 and np.all(g.edges[:, 0] < g.edges[:, 1])
    degree = dict(zip(g.landmark_indices.tolist(), adj.sum(axis=1).tolist()))
    expected = {17: 1, 18: 2, 19: 2, 20: 2, 21: 3, 22: 3, 23: 2, 24: 2, 25: 2, 26: 1,   # brows
                27: 3, 28: 2, 29: 2, 30: 3, 31: 3, 32: 2, 33: 3, 34: 2, 35: 3,          # nose
                48: 3, 49: 2, 50: 2, 51: 3, 52: 2, 53: 2, 54: 3,                        # outer lip
                55: 2, 56: 2, 57: 2, 58: 2, 59: 2}
    assert degree == expected
    node = {k: i for i, k in enumerate(g.landmark_indices.tolist())}
    for a, b in [(21, 22), (21, 27), (22, 27), (33, 51), (31, 48), (35, 54), (59, 48), (30, 31)]:
        assert adj[node[a], node[b]], (a, b)
    assert np.isfinite(g.hop_distance).all()                           # one connected graph
    assert g.hop_distance[node[30], node[17]] == 8                     # 30-29-28-27-21-20-19-18-17
    assert g.hop_distance[node[30], node[54]] == 2                     # 30-35-54


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("max_hop", [1, 2])
def test_partitions_split_the_normalised_adjacency(layout, strategy, max_hop):
    g = Graph(layout, strategy, max_hop)
    n = g.num_nodes
    assert g.A.dtype == np.float32
    assert len(g.A) == {"uniform": 1, "distance": 1 + max_hop, "spatial": 1 + 2 * max_hop}[strategy]
    within = g.hop_distance <= max_hop                                 # (N, N) with self-loops
    full = normalised(within)
    np.testing.assert_allclose(g.A.sum(axis=0), full, atol=1e-6)
    np.testing.assert_allclose(g.normalised_adjacency(), full, atol=1e-12)
    support = g.A != 0                                                 # (P, N, N)
    assert np.array_equal(support.sum(axis=0), within.astype(int))    # every entry in one partition
    assert np.isclose(np.linalg.eigvalsh(full).max(), 1.0)             # symmetric normalisation
    if strategy != "spatial":
        assert all(np.array_equal(a, a.T) for a in g.A)
    if strategy == "distance":
        np.testing.assert_allclose(g.A[0], np.diag(np.diag(full)), atol=1e-7)
        np.testing.assert_allclose(g.A[1], full * (g.hop_distance == 1), atol=1e-7)
    if strategy == "spatial":
        np.testing.assert_allclose(g.A[0], np.diag(np.diag(full)), atol=1e-7)
        for h in range(max_hop):  # centripetal (j strictly closer to the centre), mirrored, is centrifugal
            centripetal, centrifugal = support[1 + 2 * h], support[2 + 2 * h]
            assert not (centripetal.T & ~centrifugal).any()
            assert np.array_equal(centripetal | centrifugal, g.hop_distance == h + 1)
    assert n == len(g.landmark_indices)


def test_spatial_partitions_point_to_the_nose_tip():
    g = Graph("dere31", "spatial")
    node = {k: i for i, k in enumerate(g.landmark_indices.tolist())}
    centripetal, centrifugal = g.A[1] != 0, g.A[2] != 0
    tip = node[30]
    assert g.centre.tolist() == [tip] and not centripetal[tip].any()  # nothing is closer than 30
    assert centrifugal[tip].sum() == 3                                 # 29, 31, 35
    assert centripetal[node[29], tip] and centrifugal[node[29], node[28]]
    assert centripetal[node[51], node[33]] and centrifugal[node[33], node[51]]
    # the lip corner 48 is 2 hops from the tip (48-31-30): its neighbour 31 is centripetal
    assert centripetal[node[48], node[31]] and centrifugal[node[48], node[49]]


@pytest.mark.parametrize("part, size, centre", [("eyebrows", 10, [21, 22]), ("nose", 9, [30]),
                                                 ("mouth", 12, [51, 57])])
def test_part_subgraphs(part, size, centre):
    g = Graph("dere31", "spatial")
    sub = g.subgraph(part)
    s = g.parts[part]
    assert sub.num_nodes == size and sub.landmark_indices.tolist() == g.landmark_indices[s].tolist()
    assert np.array_equal(sub.adjacency, g.adjacency[s, s])           # the block of the full graph
    assert np.isfinite(sub.hop_distance).all()                         # each part is connected
    assert sub.landmark_indices[sub.centre].tolist() == centre
    np.testing.assert_allclose(sub.A.sum(axis=0), normalised(sub.hop_distance <= 1), atol=1e-6)
    if part == "mouth":
        assert (sub.adjacency.sum(axis=1) == 2).all()                 # a closed loop
    with pytest.raises(MerError, match="eyes"):
        g.subgraph("eyes")


def test_temporal_edges_and_spatio_temporal_adjacency():
    g = Graph("dere31")
    n, f = g.num_nodes, 3
    t = g.temporal_edges(f)
    assert t.shape == (n * (f - 1), 2) and t.dtype == np.int64
    assert np.array_equal(t[:, 1] - t[:, 0], np.full(len(t), n))     # same node, next frame
    assert sorted(t[:, 0].tolist()) == list(range(n * (f - 1)))
    st = g.st_adjacency(f)
    assert st.shape == (f * n, f * n) and st.dtype == np.float32
    np.testing.assert_allclose(st, st.T, atol=0)
    links = (st != 0) & ~np.eye(f * n, dtype=bool)
    spatial = g.adjacency.sum(axis=1)                                   # (N,)
    degree = links.sum(axis=1).reshape(f, n)                            # (F, N)
    assert np.array_equal(degree, spatial[None, :] + np.array([1, 2, 1])[:, None])
    for k in range(f):                                                  # each frame's block: the graph
        block = links[k * n:(k + 1) * n, k * n:(k + 1) * n]
        assert np.array_equal(block, g.adjacency)
    assert not links[:n, 2 * n:].any()                                  # onset and offset not linked
    assert np.isclose(np.linalg.eigvalsh(st.astype(np.float64)).max(), 1.0, atol=1e-6)


def test_ibug68_layout():
    g = Graph("ibug68", "spatial")
    assert g.num_nodes == 68 and g.landmark_indices.tolist() == list(range(68))
    assert np.isfinite(g.hop_distance).all()
    assert {k: s.stop - s.start for k, s in g.parts.items()} == \
        {"jaw": 17, "eyebrows": 10, "nose": 9, "eyes": 12, "mouth": 20}
    for part in g.parts:  # every node reaches a centre (the two eyes: one inner corner each)
        sub = g.subgraph(part)
        assert np.isfinite(sub.hop_distance[:, sub.centre].min(axis=1)).all()
    # the dere31 graph is the subgraph of ibug68 on its 31 nodes
    d = Graph("dere31")
    idx = d.landmark_indices
    assert np.array_equal(g.adjacency[np.ix_(idx, idx)], d.adjacency)


def test_bad_names_raise_one_clear_error():
    with pytest.raises(MerError, match="dere31"):
        Graph("dere32")
    with pytest.raises(MerError, match="spatial"):
        Graph("dere31", "spacial")
    with pytest.raises(MerError, match="max_hop"):
        Graph("dere31", "distance", 0)
    assert layout_names() == ["dere31", "ibug68"]


# ------------------------------------------------------------------------------- normalisation

def _random_face(seed: int) -> np.ndarray:
    """A (68, 2) point set with eyes level and 60 px apart (only the geometry matters here)."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(40, 180, (68, 2))
    pts[[36, 39]] = [[70, 100], [90, 100]]                             # eye corners: centres at
    pts[[42, 45]] = [[130, 100], [150, 100]]                           # x = 80 and 140, y = 100
    return pts


def test_onset_normalisation_removes_size_and_position_keeps_motion():
    g = Graph("dere31")
    onset = _random_face(0)
    apex = onset.copy()
    apex[48] += [4.0, -3.0]                                             # lip corner moves
    apex[19] += [0.0, -6.0]                                             # brow rises
    clip = np.stack([onset, apex, onset])                              # (3, 68, 2)
    origin, unit = face_reference(onset)
    np.testing.assert_allclose(origin, [110, 100]) and np.testing.assert_allclose(unit, 60)
    nodes = node_features(clip, g, "onset")                             # (3, 31, 2)
    assert nodes.shape == (3, 31, 2) and nodes.dtype == np.float32
    np.testing.assert_allclose(nodes[0], (onset[g.landmark_indices] - [110, 100]) / 60, atol=1e-6)
    motion = nodes[1] - nodes[0]
    node = {k: i for i, k in enumerate(g.landmark_indices.tolist())}
    np.testing.assert_allclose(motion[node[48]], [4 / 60, -3 / 60], atol=1e-6)
    np.testing.assert_allclose(motion[node[19]], [0, -0.1], atol=1e-6)
    assert np.abs(np.delete(motion, [node[48], node[19]], axis=0)).max() < 1e-6
    # the same clip filmed 2.5x larger, rotated by nothing, shifted: identical features
    bigger = clip * 2.5 + [37.0, -12.0]
    np.testing.assert_allclose(node_features(bigger, g, "onset"), nodes, atol=1e-5)
    # batched over augmented versions: (S_aug, F, 68, 2)
    batch = node_features(np.stack([clip, bigger]), g, "onset")
    assert batch.shape == (2, 3, 31, 2) and np.allclose(batch[0], batch[1], atol=1e-5)


def test_frame_normalisation_removes_head_drift():
    g = Graph("dere31")
    onset = _random_face(1)
    drifted = onset + [5.0, 2.0]                                        # the whole head moves
    clip = np.stack([onset, drifted, onset])
    by_onset = node_features(clip, g, "onset")
    by_frame = node_features(clip, g, "frame")
    np.testing.assert_allclose(by_onset[1] - by_onset[0], np.tile([5 / 60, 2 / 60], (31, 1)),
                               atol=1e-6)                               # kept by onset
    np.testing.assert_allclose(by_frame[1], by_frame[0], atol=1e-6)    # removed per frame
    with pytest.raises(MerError, match="onset"):
        node_features(clip, g, "centroid")


# ---------------------------------------------------------------------- the landmarker's box

def test_scale_box_keeps_the_centre():
    box = np.array([10.0, 20.0, 110.0, 120.0])
    np.testing.assert_allclose(scale_box(box, 1.1), [5, 15, 115, 125])
    np.testing.assert_allclose(scale_box(box, 1.0), box)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])
    return max(w, 0) * max(h, 0) / (area(a) + area(b) - max(w, 0) * max(h, 0))


def test_landmarker_box_matches_dlib_detections_on_real_faces():
    """The constants of landmarker_box, re-measured on dlib's example photos and astronaut.png
    (46 detections; faces of every pose, so only medians are pinned)."""
    from mer.face.landmarks import get_detector, get_landmarker

    paths = sorted(glob.glob(str(need(FACES / "dlib_examples") / "*.jpg"))) + [str(need(ASTRONAUT))]
    detector, landmarker = get_detector("dlib_hog", upsample=1), get_landmarker("dlib_68")
    side, rise, iou, moved = [], [], [], []
    for path in paths:
        image = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        for box in detector.detect(image)[0]:
            pts = landmarker.landmarks(image, box).astype(np.float64)  # (68, 2)
            (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
            side.append((box[2] - box[0]) / (x1 - x0))
            rise.append(((y0 + y1) / 2 - (box[1] + box[3]) / 2) / (y1 - y0))
            derived = landmarker_box(pts)
            iou.append(_iou(derived, box))
            again = landmarker.landmarks(image, derived).astype(np.float64)
            moved.append(np.linalg.norm(again - pts, axis=1).mean() / face_reference(pts)[1])
    assert len(side) >= 40
    assert 1.00 <= np.median(side) <= 1.12 and 0.06 <= np.median(rise) <= 0.15
    assert np.median(iou) > 0.72                                        # measured 0.77
    assert np.median(moved) < 0.03                                      # measured 0.019 IOD


def test_landmarker_box_on_the_aligned_crop(tmp_path):
    """On a frontal, eye-aligned crop (what the stage sees) the derived box is close to dlib's."""
    from mer.face.landmarks import get_detector

    frame, landmarks = _astronaut_crop(tmp_path)
    boxes, _ = get_detector("dlib_hog", upsample=1).detect(frame)
    assert len(boxes) == 1 and _iou(landmarker_box(landmarks), boxes[0]) > 0.8     # measured 0.86


# ------------------------------------------------------------------------------------- stage

def _astronaut_crop(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A real 224 px crop of astronaut.png and its 68 landmarks (the crop stage's recipe)."""
    from mer.face.crop import CropParams, crop_clip

    frame = tmp_path / "astronaut.png"
    frame.write_bytes(need(ASTRONAUT).read_bytes())
    out = crop_clip([frame], CropParams.from_dict({}), "astronaut")
    return out["frames"][0], out["landmarks"][0]                       # (224, 224, 3), (68, 2)


def _shift(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, image.shape[1::-1], flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


APEX_SHIFT = (3.0, -2.0)       # px on the 224 grid: the "magnified motion" of the toy clips
OFFSET_SHIFT = (1.0, 0.0)


@pytest.fixture
def toy_corpus(tmp_path, monkeypatch):
    """crop + magnify artifacts of three clips: ``keys`` (224 px, key frames), ``clip`` (every
    frame magnified, stored at 320 px) and ``gone`` (skipped upstream)."""
    crop_frame, crop_landmarks = _astronaut_crop(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(artifacts.KINDS, "magnify", "data/interim/{dataset}/magnify")
    crop_dir, mag_dir = artifacts.artifact_dir("crop", "toy"), artifacts.artifact_dir("magnify", "toy")
    crop_dir.mkdir(parents=True)
    mag_dir.mkdir(parents=True)
    t, apex = 5, 2
    for clip in ("keys", "clip"):
        save_npz(crop_dir / f"{clip}.npz", compress=False,
                 frames=np.repeat(crop_frame[None], t, axis=0),           # (5, 224, 224, 3)
                 landmarks=np.repeat(crop_landmarks[None], t, axis=0).astype(np.float32),
                 transform=np.eye(2, 3), apex_index=np.int64(apex))
    onset, peak, offset = crop_frame, _shift(crop_frame, *APEX_SHIFT), _shift(crop_frame, *OFFSET_SHIFT)
    save_npz(mag_dir / "keys.npz", compress=False, frames=np.stack([onset, peak, offset]),
             keys=np.array(["onset", "apex", "offset"]), index=np.array([0, apex, t - 1]),
             alpha=np.float64(3.0))
    every = [onset, onset, peak, offset, offset]                          # apex at crop frame 2
    big = np.stack([cv2.resize(f, (320, 320), interpolation=cv2.INTER_LINEAR) for f in every])
    save_npz(mag_dir / "clip.npz", compress=False, frames=big,
             keys=np.array([f"f{i:03d}" for i in range(t)]), index=np.arange(t), alpha=np.float64(3.0))
    artifacts.write_index(mag_dir, [{"clip_id": "keys", "status": "ok"},
                                    {"clip_id": "gone", "status": "skipped: no face on the onset frame"},
                                    {"clip_id": "clip", "status": "ok"}])
    return tmp_path


def test_stage_on_a_real_face(toy_corpus, monkeypatch):
    monkeypatch.setenv("MER_PROGRESS", "0")
    params = {"graph": {"box_scales": [1.0, 0.9, 1.1]}, "workers": 1}
    out = run(params, "toy")
    assert out == Path("data/features/toy/graph")
    index = pd.read_csv(out / "index.csv", dtype=str)
    assert index.values.tolist() == [["keys", "ok"], ["gone", "skipped: no face on the onset frame"],
                                     ["clip", "ok"]]
    a, b = load_npz(out / "keys.npz"), load_npz(out / "clip.npz")
    assert a["nodes"].shape == a["raw"].shape == (3, 3, 31, 2)
    assert a["nodes"].dtype == a["raw"].dtype == np.float32
    assert a["keys"].tolist() == ["onset", "apex", "offset"] and a["index"].tolist() == [0, 2, 4]
    np.testing.assert_allclose(a["box_scales"], [1.0, 0.9, 1.1])

    # the known motion comes back in pixels, for every augmented version (sub-pixel: upscale 4)
    for s in range(3):
        np.testing.assert_allclose(np.median(a["raw"][s, 1] - a["raw"][s, 0], axis=0), APEX_SHIFT,
                                   atol=0.3)
        np.testing.assert_allclose(np.median(a["raw"][s, 2] - a["raw"][s, 0], axis=0), OFFSET_SHIFT,
                                   atol=0.3)
    # nodes are the raw points in one onset frame of reference per version: raw = unit * nodes + origin
    for s in range(3):
        x, y = a["nodes"][s].reshape(-1, 2), a["raw"][s].reshape(-1, 2).astype(np.float64)
        unit = np.linalg.lstsq(x - x.mean(0), y - y.mean(0), rcond=None)[0]   # (2, 2)
        assert abs(unit[0, 1]) < 1e-3 and abs(unit[1, 0]) < 1e-3 and np.isclose(unit[0, 0], unit[1, 1])
        assert 60 < unit[0, 0] < 80                                     # the crop's ~72 px eye distance
        offset = x * unit[0, 0] - y                                     # = -origin for every point
        np.testing.assert_allclose(offset, np.broadcast_to(offset[0], offset.shape), atol=1e-3)
    # augmentation: a little landmark noise, not a different face
    noise = np.linalg.norm(a["nodes"][1:] - a["nodes"][:1], axis=-1).mean(axis=(1, 2))
    assert np.all(noise > 0.002) and np.all(noise < 0.05)

    # every-frame magnification at 320 px: same key frames found, same nodes in eye distances
    assert b["index"].tolist() == [0, 2, 4]
    np.testing.assert_allclose(b["raw"][0], (a["raw"][0] + 0.5) * 320 / 224 - 0.5, atol=1.5)
    assert np.abs(b["nodes"][0] - a["nodes"][0]).mean() < 0.01          # face size does not matter

    # deterministic: the same bytes on a rerun
    first = (out / "keys.npz").read_bytes()
    run(params, "toy")
    assert (out / "keys.npz").read_bytes() == first


def test_stage_names_the_clip_without_its_apex(toy_corpus, monkeypatch):
    monkeypatch.setenv("MER_PROGRESS", "0")
    mag = artifacts.artifact_dir("magnify", "toy") / "keys.npz"
    data = load_npz(mag)
    save_npz(mag, compress=False, **{**data, "index": np.array([0, 3, 4])})
    with pytest.raises(MerError, match=r"keys.*apex.*magnify"):
        run({"workers": 1}, "toy")
    assert not artifacts.artifact_dir("graph", "toy").exists()         # nothing half-written


def test_missing_magnify_stage_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(artifacts.KINDS, "magnify", "data/interim/{dataset}/magnify")
    with pytest.raises(MerError, match="magnify@toy"):
        run({}, "toy")


@pytest.mark.parametrize("section, word", [({"box_scales": [0.9, 1.0]}, "1.0"),
                                           ({"box_scales": [1.0, 1.0]}, "distinct"),
                                           ({"box_scales": []}, "1.0"),
                                           ({"layout": "dere13"}, "dere31"),
                                           ({"landmarker": "dlib68"}, "dlib_68"),
                                           ({"normalise": "nose"}, "onset"),
                                           ({"upscale": 0}, "upscale"),
                                           ({"box_scale": [1.0]}, "box_scales")])
def test_params_are_checked(section, word):
    from mer.config import validate

    with pytest.raises(MerError, match=word):
        validate(section, GraphParams, "graph").check()


def test_key_landmarks_upscale_recovers_subpixel_motion(tmp_path):
    """dlib returns whole pixels; enlarging the frames first resolves a 0.5 px shift."""
    frame, landmarks = _astronaut_crop(tmp_path)
    frames = np.stack([frame, _shift(frame, 0.5, 0.0)])
    plain = key_landmarks(frames, landmarks, [1.0], "dlib_68", upscale=1)[0]    # (2, 68, 2)
    fine = key_landmarks(frames, landmarks, [1.0], "dlib_68", upscale=4)[0]
    err_plain = np.abs(plain[1, :, 0] - plain[0, :, 0] - 0.5).mean()
    err_fine = np.abs(fine[1, :, 0] - fine[0, :, 0] - 0.5).mean()
    assert np.all(plain == np.round(plain))                            # whole pixels
    assert err_fine < 0.3 < err_plain + 0.05 and err_fine < err_plain
