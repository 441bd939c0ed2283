"""``mer predict``: recognise micro-expressions in a user's own video with an exported model.

Modules: :mod:`~mer.predict.video` (frames from a video file or a folder, streamed),
:mod:`~mer.predict.window` (onset/apex/offset given or spotted), :mod:`~mer.predict.chain` (the
training stages run on a one-clip corpus), :mod:`~mer.predict.report` (figures + HTML),
:mod:`~mer.predict.recognise` (the whole prediction) and :mod:`~mer.predict.cli`.
"""

from __future__ import annotations

from mer.predict.recognise import Prediction, predict

__all__ = ["Prediction", "predict"]
