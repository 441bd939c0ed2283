"""Face detection, 68-point landmarks, eye alignment and cropping on real faces."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from mer.errors import MerError

from conftest import FIXTURES
from mer.face.align import (canonical_eyes, eye_centres, eye_line_angle, similarity_from_eyes,
                            transform_points, warp_image)
from mer.face.crop import CropParams, crop_clip, find_face
from mer.face.landmarks import get_detector, get_landmarker, largest_face
from mer.parallel import map_clips

FACES = FIXTURES / "faces"
ASTRONAUT = FACES / "astronaut.png"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"fixture {path} is absent (the shared fixtures folder is not next to the repo)")
    return path


def video_frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    """BGR frames at ``indices`` (sorted) of a video."""
    cap = cv2.VideoCapture(str(need(path)))
    frames, i = [], 0
    while len(frames) < len(indices):
        ok, frame = cap.read()
        assert ok, f"{path} ended before frame {indices[len(frames)]}"
        if i in indices:
            frames.append(frame)
        i += 1
    cap.release()
    return frames


def write_jpegs(frames: list[np.ndarray], folder: Path) -> list[Path]:
    paths = []
    for i, frame in enumerate(frames, start=1):
        paths.append(folder / f"img{i}.jpg")
        assert cv2.imwrite(str(paths[-1]), frame)
    return paths


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of (left, top, right, bottom) boxes with inclusive right/bottom."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(w, 0) * max(h, 0)
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


# ---------------------------------------------------------------- geometry (no fixtures needed)

def test_similarity_maps_eyes_exactly_and_is_a_similarity():
    src = np.array([[210.3, 140.9], [290.7, 131.2]])
    dst = canonical_eyes(224, 0.32, 0.30)
    m = similarity_from_eyes(src, dst)
    np.testing.assert_allclose(transform_points(src, m), dst, atol=1e-9)
    assert m[0, 0] == pytest.approx(m[1, 1]) and m[0, 1] == pytest.approx(-m[1, 0])
    # canonical eyes are level, symmetric about the centre line and eye_distance * size apart
    assert dst[0, 1] == dst[1, 1] == pytest.approx(0.30 * 224 - 0.5)
    assert dst[1, 0] - dst[0, 0] == pytest.approx(0.32 * 224)
    assert (dst[0, 0] + dst[1, 0]) / 2 == pytest.approx((224 - 1) / 2)


def test_warped_image_and_transformed_points_agree():
    """A bright dot warped with the matrix lands where transform_points puts its centre."""
    image = np.zeros((300, 400), dtype=np.uint8)  # (H, W)
    centre = np.array([231.0, 117.0])
    cv2.circle(image, (int(centre[0]), int(centre[1])), 6, 255, -1)
    m = similarity_from_eyes(np.array([[180.0, 150.0], [260.0, 140.0]]), canonical_eyes(128, 0.35, 0.4))
    crop = warp_image(image, m, 128, "constant").astype(np.float64)  # (128, 128)
    ys, xs = np.mgrid[:128, :128]
    found = np.array([(crop * xs).sum(), (crop * ys).sum()]) / crop.sum()
    assert np.linalg.norm(found - transform_points(centre, m)) < 0.1


def test_largest_face_breaks_size_ties_by_score():
    boxes = np.array([[0, 0, 89, 89], [100, 100, 189, 189], [0, 0, 49, 49]], dtype=np.float64)
    assert largest_face(boxes, np.array([0.1, 1.2, 3.0])) == 1
    assert largest_face(boxes, np.array([1.5, 1.2, 3.0])) == 0


# ---------------------------------------------------------------- params

def test_params_defaults_and_validation():
    assert CropParams.from_dict({}) == CropParams()
    p = CropParams.from_dict({"size": 112, "upsample": 1, "skip_no_face": True})
    assert (p.size, p.upsample, p.detector, p.eye_distance) == (112, 1, "dlib_hog", 0.32)
    with pytest.raises(MerError, match="eye_distanse"):
        CropParams.from_dict({"eye_distanse": 0.3})
    with pytest.raises(MerError, match="detector"):
        CropParams.from_dict({"detector": "haar_typo"})
    for bad in ({"size": 0}, {"size": 224.5}, {"upsample": -1}, {"upsample": True},
                {"eye_y": 1.5}, {"border": "wrap"}, {"skip_no_face": "no"}):
        with pytest.raises(MerError, match="params crop"):
            CropParams.from_dict(bad)


def test_backends_are_built_once_per_process():
    assert get_detector("dlib_hog", upsample=0) is get_detector("dlib_hog", upsample=0)
    assert get_detector("dlib_hog", upsample=1) is not get_detector("dlib_hog", upsample=0)
    assert get_landmarker("dlib_68") is get_landmarker("dlib_68")
    with pytest.raises(MerError, match="unknown landmarker"):
        get_landmarker("mediapipe_typo")


# ---------------------------------------------------------------- landmark accuracy

def annotated_faces(xml_path: Path):
    """(image file, box (4,), points (68, 2)) for every box of a dlib imglab XML file."""
    for image in ET.parse(xml_path).getroot().iter("image"):
        for box in image.iter("box"):
            left, top = int(box.get("left")), int(box.get("top"))
            rect = np.array([left, top, left + int(box.get("width")) - 1, top + int(box.get("height")) - 1],
                            dtype=np.float64)
            parts = {int(p.get("name")): (float(p.get("x")), float(p.get("y"))) for p in box.iter("part")}
            assert sorted(parts) == list(range(68)), f"{xml_path}: a box lacks some of the 68 parts"
            yield image.get("file"), rect, np.array([parts[i] for i in range(68)])


def match_annotated_faces(detector_name: str) -> tuple[int, list[float], list[float]]:
    """Detect dlib's 43 annotated example faces (upsample 1: they are 37-109 px) and fit dlib_68
    in the best-overlapping box: (faces annotated, IoU of each matched face, its inter-ocular
    normalised mean landmark error).  A face is matched when a box overlaps it by IoU >= 0.5."""
    folder = need(FACES / "dlib_examples")
    detector, landmarker = get_detector(detector_name, upsample=1), get_landmarker("dlib_68")
    ious, errors, total, images = [], [], 0, {}
    for xml_path in sorted(folder.glob("*_with_face_landmarks.xml")):
        for name, rect, truth in annotated_faces(xml_path):
            total += 1
            if name not in images:
                rgb = cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB)
                images[name] = (rgb, detector.detect(rgb)[0])
            rgb, boxes = images[name]
            overlap = [box_iou(rect, b) for b in boxes]
            if not overlap or max(overlap) < 0.5:
                continue
            ious.append(max(overlap))
            points = landmarker.landmarks(rgb, boxes[int(np.argmax(overlap))])   # (68, 2)
            errors.append(np.linalg.norm(points - truth, axis=1).mean()
                          / np.linalg.norm(truth[36] - truth[45]))
    return total, ious, errors


def test_landmarks_match_annotations_on_real_photos():
    """Inter-ocular (outer eye corners 36, 45) normalised mean error of our detector + predictor.

    Faces here are 37-109 px, so detection runs with upsample=1 (the pipeline's default 0 is
    for ~230 px faces).  Measured: 43 of 43 faces matched, mean NME 0.019, worst face 0.127.
    Caveat: the XML files' own comment says their points come from dlib's 68-point model, so this
    pins agreement with that reference (boxes, image handling, point order), not accuracy against
    human annotators, which is lower.
    """
    total, ious, errors = match_annotated_faces("dlib_hog")
    assert total == 43
    assert len(errors) >= 40, f"only {len(errors)} of {total} annotated faces detected"
    assert np.mean(errors) < 0.04, f"mean NME {np.mean(errors):.4f}"
    assert np.median(errors) < 0.03


# ---------------------------------------------------------------- alignment on the astronaut

@pytest.fixture(scope="module")
def astronaut_crop():
    return crop_clip([need(ASTRONAUT)], CropParams(), "astronaut")


def test_astronaut_eyes_land_on_canonical_positions(astronaut_crop):
    p = CropParams()
    crop = astronaut_crop["frames"][0]
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    # re-detect the face in the crop itself: independent of the transform we applied
    found = find_face(crop, p)
    assert found is not None
    eyes = eye_centres(found[1])
    target = canonical_eyes(p.size, p.eye_distance, p.eye_y)
    assert np.abs(eyes - target).max() < 2.0, (eyes, target)
    assert abs(eye_line_angle(found[1])) < 1.0
    # the transformed landmarks carry the eyes exactly, and the whole face is inside the crop
    np.testing.assert_allclose(eye_centres(astronaut_crop["landmarks"][0]), target, atol=1e-3)
    lm = astronaut_crop["landmarks"][0]
    assert lm.min() >= 0 and lm.max() < p.size


@pytest.mark.parametrize("angle, scale", [(8.0, 1.1), (-8.0, 0.9)])
def test_rotated_scaled_astronaut_aligns_to_the_same_crop(astronaut_crop, angle, scale, tmp_path):
    """Measured: mean landmark shift 1.4 / 1.3 px (max 3.4 px) in the 224 px crop; scale recovered
    within 2.1%, rotation within 0.4 degrees, mean pixel difference 7.9 / 5.1 gray levels."""
    image = cv2.imread(str(need(ASTRONAUT)))
    m = cv2.getRotationMatrix2D((256.0, 256.0), angle, scale)
    moved = cv2.warpAffine(image, m, (512, 512), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    path = tmp_path / "moved.png"
    cv2.imwrite(str(path), moved)
    out = crop_clip([path], CropParams(), "moved")
    shift = np.linalg.norm(out["landmarks"][0] - astronaut_crop["landmarks"][0], axis=1)  # (68,)
    assert shift.mean() < 2.5 and shift.max() < 6.0, shift
    # the recovered transform undoes the rotation and scale applied: (moved -> crop) o m ~ reference
    a = out["transform"][:, :2] @ m[:, :2]
    ref = astronaut_crop["transform"][:, :2]
    assert np.degrees(np.arctan2(a[1, 0], a[0, 0]) - np.arctan2(ref[1, 0], ref[0, 0])) == pytest.approx(0, abs=1.0)
    assert np.linalg.norm(a[:, 0]) / np.linalg.norm(ref[:, 0]) == pytest.approx(1.0, abs=0.03)
    # and the crops look alike: far closer than cropping the moved image with the reference transform
    reference = astronaut_crop["frames"][0].astype(np.int16)
    unaligned = warp_image(cv2.cvtColor(moved, cv2.COLOR_BGR2RGB), astronaut_crop["transform"], 224)
    aligned_error = np.abs(out["frames"][0] - reference).mean()
    assert aligned_error < 10.0 and aligned_error < 0.5 * np.abs(unaligned - reference).mean()


# ---------------------------------------------------------------- errors

def test_no_face_raises_naming_the_clip_and_onset_file(tmp_path):
    paths = write_jpegs(video_frames(FACES / "no_face.mp4", [0, 1, 2]), tmp_path)
    with pytest.raises(MerError) as err:
        crop_clip(paths, CropParams(), "sub99/EP00_noface")
    assert "no face" in str(err.value)
    assert "sub99/EP00_noface" in str(err.value) and str(paths[0]) in str(err.value)
    assert "skip_no_face" in str(err.value)


def test_bad_frames_raise_naming_the_file(tmp_path):
    onset = tmp_path / "img1.png"
    cv2.imwrite(str(onset), cv2.imread(str(need(ASTRONAUT))))
    missing, corrupt, small = tmp_path / "img2.png", tmp_path / "img3.jpg", tmp_path / "img4.png"
    corrupt.write_bytes(b"not an image")
    cv2.imwrite(str(small), np.zeros((100, 120, 3), np.uint8))
    for bad, message in [(missing, "missing"), (corrupt, "cannot be read"), (small, "differs")]:
        with pytest.raises(MerError, match=message) as err:
            crop_clip([onset, bad], CropParams(), "clipX")
        assert str(bad) in str(err.value) and "clipX" in str(err.value)
    with pytest.raises(MerError, match="no frames"):
        crop_clip([], CropParams(), "clipX")


# ---------------------------------------------------------------- a real video

@pytest.fixture(scope="module")
def video_jpegs(tmp_path_factory):
    return write_jpegs(video_frames(FACES / "WolfgangLanger_Pexels.mp4", list(range(8))),
                       tmp_path_factory.mktemp("wolfgang"))


def test_video_clip_crops_and_tracks_landmarks(video_jpegs):
    p = CropParams()
    out = crop_clip(video_jpegs, p, "wolfgang")
    frames, lm, m = out["frames"], out["landmarks"], out["transform"]
    assert frames.shape == (8, 224, 224, 3) and frames.dtype == np.uint8
    assert lm.shape == (8, 68, 2) and lm.dtype == np.float32
    assert m.shape == (2, 3) and m.dtype == np.float64
    assert lm.min() >= 0 and lm.max() < p.size
    # consecutive frames at 24 fps: landmarks move a little, and follow the face (not frozen)
    step = np.linalg.norm(np.diff(lm, axis=0), axis=2).mean(axis=1)  # (T-1,)
    assert step.max() < 3.0 and lm[1:].std(axis=0).mean() > 0
    # the onset eyes sit on the canonical positions, and real pixels fill the crop
    np.testing.assert_allclose(eye_centres(lm[0]), canonical_eyes(224, p.eye_distance, p.eye_y), atol=1e-3)
    assert frames.std() > 20


def _crop_item(item: tuple[list[Path], CropParams, str]) -> dict[str, np.ndarray]:
    return crop_clip(*item)


def test_crop_is_deterministic_in_forked_workers(video_jpegs):
    item = (video_jpegs[:3], CropParams(size=112), "wolfgang")
    serial = _crop_item(item)
    parallel = map_clips(_crop_item, [item, item], workers=2, desc="test")
    for out in parallel:
        for key in serial:
            assert np.array_equal(out[key], serial[key]), key
