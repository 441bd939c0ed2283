"""The Haar-cascade face detector (``crop.detector: haar``) on real faces: it finds them, its boxes
are framed like dlib's HOG boxes (so dlib_68 lands its points), and it finds nothing where there
is no face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import FIXTURES
from test_face import match_annotated_faces, video_frames, write_jpegs

from mer.face.crop import CropParams, crop_clip
from mer.face.haar import HaarDetector, to_hog_framing
from mer.face.landmarks import detector_names, get_detector

FACES = FIXTURES / "faces"


def test_haar_is_a_registered_detector_and_crop_params_accept_it():
    assert "haar" in detector_names()
    assert isinstance(get_detector("haar", upsample=0), HaarDetector)
    CropParams(detector="haar").validate()


def test_framing_map_is_a_centred_shrink_and_shift():
    haar = np.array([[100.0, 50.0, 199.0, 149.0]])            # a 100-px Haar box
    hog = to_hog_framing(haar)[0]
    assert hog[2] - hog[0] + 1 == pytest.approx(90.0)           # 0.90 of the side
    assert 0.5 * (hog[0] + hog[2]) == pytest.approx(149.5)      # same centre left-right
    assert 0.5 * (hog[1] + hog[3]) == pytest.approx(99.5 + 7.0)  # 0.07 side lower


def test_haar_boxes_match_annotated_faces_and_carry_dlib_landmarks():
    """dlib's 43 annotated example faces (37-109 px, so upsample 1): Haar finds most of them, its
    mapped boxes overlap the annotated (HOG-framed) boxes, and dlib_68 inside them reproduces the
    annotated points.  Measured: 40 of 43 matched (IoU >= 0.5), median IoU 0.84, median NME
    0.016 (mean 0.048: one face, 0.75, where the mean shape starts off the face)."""
    total, ious, errors = match_annotated_faces("haar")
    assert total == 43
    assert len(ious) >= 38, f"only {len(ious)} of {total} faces found"
    assert np.median(ious) > 0.75, f"median IoU {np.median(ious):.3f}: framing map is off"
    assert np.median(errors) < 0.03, f"median NME {np.median(errors):.4f}"
    assert np.mean(np.array(errors) < 0.1) >= 0.9, "dlib_68 misses too many faces in Haar boxes"


def test_haar_crops_a_real_video_clip_and_finds_no_face_in_the_negative_video(tmp_path):
    paths = write_jpegs(video_frames(FACES / "WolfgangLanger_Pexels.mp4", list(range(4))), tmp_path)
    haar = crop_clip(paths, CropParams(detector="haar", size=112), "wolfgang")
    hog = crop_clip(paths, CropParams(size=112), "wolfgang")
    # same face, same alignment within a couple of pixels of a 112-px crop
    assert np.abs(haar["landmarks"] - hog["landmarks"]).mean() < 2.0
    detector = get_detector("haar", upsample=0)
    for frame in video_frames(FACES / "no_face.mp4", [0, 10, 20]):
        boxes, scores = detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_bad_image_is_refused():
    with pytest.raises(ValueError, match="uint8"):
        get_detector("haar").detect(np.zeros((10, 10, 3), np.float32))
