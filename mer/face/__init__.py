"""Faces: detection, 68-point landmarks, eye alignment and cropping (the ``crop`` stage's library).

* :mod:`mer.face.landmarks`: detector and landmarker registries (``dlib_hog``, ``dlib_68``); a new
  back-end is one registered class.
* :mod:`mer.face.mediapipe_landmarks`: mediapipe's face mesh mapped to the 68 points
  (``mediapipe_68``), run in a helper process so that forked workers stay safe.
* :mod:`mer.face.track`: any detector + landmarker over every frame of a video.
* :mod:`mer.face.align`: the eye-based similarity transform and its application to images/points.
* :mod:`mer.face.crop`: :class:`~mer.face.crop.CropParams` and :func:`~mer.face.crop.crop_clip`.

Nothing is imported here, so ``import mer`` stays cheap; import the submodule you need.
"""
