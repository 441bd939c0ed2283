"""Faces: detection, 68-point landmarks, eye alignment and cropping (the ``crop`` stage's library).

* :mod:`mer.face.landmarks`: detector and landmarker registries (``dlib_hog``, ``dlib_68``); a new
  back-end is one registered class.
* :mod:`mer.face.align`: the eye-based similarity transform and its application to images/points.
* :mod:`mer.face.crop`: :class:`~mer.face.crop.CropParams` and :func:`~mer.face.crop.crop_clip`.

Nothing is imported here, so ``import mer`` stays cheap; import the submodule you need.
"""
