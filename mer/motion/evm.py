"""Linear Eulerian video magnification (Wu et al., SIGGRAPH 2012) of whole clips.

Each frame is split into a Laplacian pyramid; every pixel of every level is band-pass filtered in
time; the band-passed signal is multiplied by a per-level amplification and added back.  For small
motions this is first-order motion magnification: a feature displaced by ``d(t)`` comes out
displaced by about ``(1 + alpha) * d_band(t)``, where ``d_band`` is the part of the motion inside
the temporal band.

Choices, and why:

* **Colour space.** Amplification is defined in YIQ: the chroma channels (I, Q) get ``alpha``
  times ``chroma_attenuation`` (default 0.1, as in Wu et al.'s baby example), so motion is
  magnified in luminance without amplifying colour noise; a grey clip stays grey.  (Implemented
  as the equivalent per-pixel RGB mix, see :func:`_chroma_attenuate`.)
* **Temporal band (defaults 0.5-15 Hz, ideal filter).**  Wu et al.'s 0.4-3 Hz (a breathing baby)
  would drop most of a micro-expression and, on a short clip, everything.  A micro-expression is one rise and fall
  within 0.5 s (onset phase typically 65-260 ms), so its energy lies from ~1 Hz (a whole 0.5 s
  event) to ~8-15 Hz (a rise of 35-65 ms is half a period at 8-15 Hz).  Above 15 Hz there is mostly
  sensor noise and light flicker in 100-200 fps corpora; below 0.5 Hz slow head drift.  For
  25-30 fps corpora 15 Hz is at or above Nyquist, i.e. no upper cut.  The ideal (FFT) filter is
  the default because a crop clip runs from onset to offset, both neutral, so the FFT's periodic
  extension has no jump, and it has zero phase (the magnified peak stays on the apex).  Note that
  on a clip of T frames the frequency resolution is ``fps / T``: on a 0.2 s clip every non-zero
  frequency is 5 Hz or more and ``f_lo`` then only removes the clip's mean.  ``butterworth`` is a
  first-order causal band-pass started at rest on the first frame (the onset comes out unchanged,
  the peak lags the apex by a few frames).
* **Spatial cut-off (eq. 14 of the paper).**  Linear magnification is valid while
  ``(1 + alpha) * delta < lambda / 8``; with the user's cut-off wavelength ``lambda_c`` (px) this
  gives, for a band of representative wavelength ``lambda_l``,
  ``alpha_l = clip((1 + alpha) * lambda_l / lambda_c - 1, 0, alpha)``: fine levels get less
  amplification than coarse ones, which suppresses the ringing of over-magnified edges.  Level
  ``l`` (0 = finest) holds wavelengths of about ``2^(l+1)``..``2^(l+2)`` px; we take
  ``lambda_l = 3 * 2^l`` (their middle).  Default ``lambda_c = 16`` px (Wu et al.'s baby setting)
  on a 224 px crop: with alpha 3 the finest level is not amplified, the next by 0.5, then 2, then 3.
  Every level, the coarsest residual included, is amplified by its ``alpha_l`` (the authors'
  MATLAB code leaves the finest and coarsest levels out, which would leave a one- or two-level
  pyramid of small frames unmagnified).
* **Any frame size.**  ``cv2.pyrDown``/``pyrUp`` with an explicit ``dstsize`` handle odd sizes, so
  levels are ``ceil(H / 2^l)`` and nothing is cropped or padded; the pyramid stops early when a
  level reaches one pixel.

Speed: all frames of a level are one ``(h, w, 3 * T)`` array (OpenCV filters up to 512 channels
at once), the temporal filter is one ``(T, T)`` matrix applied by a single matrix product per
level, and levels whose ``alpha_l`` is 0 are neither filtered nor rebuilt.  Since the pyramid and
the colour transform are linear, only the amplified band is collapsed and added to the input.
:func:`evm_reference` is the straightforward per-frame, per-level version, for tests and the
benchmark.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from scipy import signal

from mer.errors import MerError

FILTERS = ("ideal", "butterworth")
_CV_MAX_CHANNELS = 512  # OpenCV's CV_CN_MAX: pyrDown/pyrUp take at most this many channels

# NTSC RGB -> YIQ (rows: Y, I, Q); its inverse brings the amplified band back to RGB
_RGB2YIQ = np.array([[0.299, 0.587, 0.114],
                     [0.595716, -0.274453, -0.321263],
                     [0.211456, -0.522591, 0.311135]])
_YIQ2RGB = np.linalg.inv(_RGB2YIQ)


def pyramid_depth(height: int, width: int, levels: int) -> int:
    """Levels actually built: at most ``levels``, stopping once a level is 1 pixel high or wide."""
    depth, h, w = 1, height, width
    while depth < levels and min(h, w) > 1:
        h, w = (h + 1) // 2, (w + 1) // 2
        depth += 1
    return depth


def level_alphas(alpha: float, lambda_c: float, depth: int) -> np.ndarray:
    """``(depth,)`` amplification per pyramid level (0 = finest) under the spatial cut-off.

    ``lambda_c <= 0`` switches the cut-off off (every level gets ``alpha``).
    """
    if lambda_c <= 0:
        return np.full(depth, float(alpha))
    wavelengths = 3.0 * 2.0 ** np.arange(depth)                      # (depth,) px
    return np.clip((1.0 + alpha) * wavelengths / lambda_c - 1.0, 0.0, alpha)


def _check_band(fps: float, band: tuple[float, float], kind: str) -> tuple[float, float]:
    f_lo, f_hi = (float(f) for f in band)
    if kind not in FILTERS:
        raise MerError(f"unknown EVM temporal filter '{kind}'", "magnify.evm_filter",
                       f"use one of: {', '.join(FILTERS)}")
    if not (fps > 0 and 0 < f_lo < f_hi):
        raise MerError(f"invalid EVM band {f_lo:g}-{f_hi:g} Hz at {fps:g} fps", "magnify.evm_band",
                       "give [low, high] in Hz with 0 < low < high (and a positive frame rate)")
    if f_lo >= fps / 2:
        raise MerError(f"EVM band starts at {f_lo:g} Hz, at or above the Nyquist frequency "
                       f"({fps / 2:g} Hz) of a {fps:g} fps clip", "magnify.evm_band",
                       "lower the band's low edge")
    return f_lo, f_hi


def _butterworth(fps: float, f_lo: float, f_hi: float) -> np.ndarray:
    """First-order Butterworth band-pass (high-pass when ``f_hi`` reaches Nyquist), as SOS."""
    if f_hi >= fps / 2:
        return signal.butter(1, f_lo, "highpass", fs=fps, output="sos")
    return signal.butter(1, [f_lo, f_hi], "bandpass", fs=fps, output="sos")


@functools.lru_cache(maxsize=64)
def temporal_matrix(n: int, fps: float, f_lo: float, f_hi: float, kind: str) -> np.ndarray:
    """``(n, n)`` float32 matrix ``F`` of the temporal band-pass: ``filtered = F @ signal``.

    Both filters are linear in the signal, so column ``j`` is the response to a unit impulse at
    frame ``j`` (for the Butterworth filter, started at rest on frame 0's value).
    """
    eye = np.eye(n)                                                   # (n, n): impulses
    if kind == "ideal":
        freqs = np.fft.rfftfreq(n, d=1.0 / fps)                       # (n // 2 + 1,)
        keep = (freqs >= f_lo) & (freqs <= f_hi)
        out = np.fft.irfft(np.fft.rfft(eye, axis=0) * keep[:, None], n=n, axis=0)
    else:
        sos = _butterworth(fps, f_lo, f_hi)
        zi = signal.sosfilt_zi(sos)[:, :, None] * eye[0][None, None, :]  # (sections, 2, n)
        out = signal.sosfilt(sos, eye, axis=0, zi=zi)[0]
    out = np.ascontiguousarray(out, dtype=np.float32)
    out.setflags(write=False)                                         # cached: shared by callers
    return out


def _apply_cv(fn, x: np.ndarray, dstsize: tuple[int, int] | None = None) -> np.ndarray:
    """OpenCV ``pyrDown``/``pyrUp`` on ``(h, w, N)`` with any ``N`` (chunks of 512 channels)."""
    parts = []
    for start in range(0, x.shape[2], _CV_MAX_CHANNELS):
        chunk = x[:, :, start:start + _CV_MAX_CHANNELS]
        if chunk.shape[2] == 1:
            chunk = chunk[:, :, 0]
        res = fn(chunk, dstsize=dstsize) if dstsize else fn(chunk)
        parts.append(res.reshape(res.shape[0], res.shape[1], -1))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def _down(x: np.ndarray) -> np.ndarray:
    return _apply_cv(cv2.pyrDown, x)


def _up(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return _apply_cv(cv2.pyrUp, x, (shape[1], shape[0]))


def _checked(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
        raise MerError(f"EVM needs frames of shape (T, H, W, 3), got {frames.shape}",
                       fix="pass an RGB clip")
    return frames


def evm(frames: np.ndarray, fps: float, alpha: float, band: tuple[float, float] = (0.5, 15.0),
        levels: int = 6, lambda_c: float = 16.0, chroma_attenuation: float = 0.1,
        kind: str = "ideal") -> np.ndarray:
    """The clip ``frames`` ``(T, H, W, 3)`` RGB (uint8 or float, 0..255) magnified by ``alpha``.

    ``band`` is the temporal pass-band in Hz at frame rate ``fps``; ``kind`` the filter (``ideal``
    or ``butterworth``); ``levels`` the pyramid depth (fewer when the frames are small);
    ``lambda_c`` the spatial cut-off wavelength in px (0: none).  Returns ``(T, H, W, 3)`` float32
    RGB, not clipped (round and clip to store as uint8).
    """
    frames = _checked(frames)                                         # (T, H, W, 3)
    f_lo, f_hi = _check_band(fps, band, kind)
    n, height, width, _ = frames.shape
    depth = pyramid_depth(height, width, levels)
    alphas = level_alphas(alpha, lambda_c, depth)                     # (depth,)
    if not alphas.any():
        return frames.astype(np.float32)
    matrix_t = temporal_matrix(n, float(fps), f_lo, f_hi, kind).T     # (T, T): rows @ F^T

    # (H, W, 3, T): every frame's channels side by side, so OpenCV filters the whole clip at once.
    # The pyramid runs on RGB: YIQ is a fixed linear map, so it is applied once to the collapsed
    # band at the end (see _chroma_attenuate) instead of to every frame and level.
    clip = np.ascontiguousarray(frames.transpose(1, 2, 3, 0), dtype=np.float32)
    gauss = [clip.reshape(height, width, 3 * n)]                      # (h_l, w_l, 3T) per level
    for _ in range(depth - 1):
        gauss.append(_down(gauss[-1]))

    band_sum = None                                                   # collapsed, coarse to fine
    for lvl in range(depth - 1, -1, -1):
        if band_sum is not None:
            band_sum = _up(band_sum, gauss[lvl].shape)
        if alphas[lvl] == 0:
            continue
        lap = gauss[lvl] if lvl == depth - 1 else gauss[lvl] - _up(gauss[lvl + 1], gauss[lvl].shape)
        h, w = lap.shape[:2]
        filtered = (lap.reshape(-1, n) @ matrix_t).reshape(h, w, 3, n)  # (h, w, 3, T)
        filtered = _chroma_attenuate(filtered, chroma_attenuation, alphas[lvl]).reshape(lap.shape)
        band_sum = filtered if band_sum is None else band_sum + filtered
    delta = band_sum.reshape(height, width, 3, n).transpose(3, 0, 1, 2)  # (T, H, W, 3) view
    return np.add(frames, delta, dtype=np.float32)


def _chroma_attenuate(band: np.ndarray, chroma_attenuation: float, gain: float) -> np.ndarray:
    """``(h, w, 3, T)`` RGB band times ``gain``, its YIQ chroma further scaled by
    ``chroma_attenuation``.

    In YIQ, scaling I and Q by ``c`` and going back to RGB is ``c * rgb + (1 - c) * Y`` on every
    channel (the YIQ -> RGB matrix maps Y to (1, 1, 1)), so only the luminance is needed; being a
    per-pixel linear map it commutes with the pyramid and the temporal filter, and is applied on
    each amplified level (smaller than the full frame) rather than per frame.
    """
    out = band * np.float32(gain * chroma_attenuation)
    if chroma_attenuation != 1.0:
        r, g, b = (np.float32(gain * (1.0 - chroma_attenuation) * w) for w in _RGB2YIQ[0])
        out += (r * band[:, :, 0] + g * band[:, :, 1] + b * band[:, :, 2])[:, :, None, :]
    return out


def _temporal_filter_reference(level: np.ndarray, fps: float, f_lo: float, f_hi: float,
                               kind: str) -> np.ndarray:
    """Band-pass ``(T, ...)`` along time the obvious way: FFT mask, or ``sosfilt`` from rest."""
    if kind == "ideal":
        n = level.shape[0]
        freqs = np.fft.rfftfreq(n, d=1.0 / fps)
        keep = ((freqs >= f_lo) & (freqs <= f_hi)).reshape((-1,) + (1,) * (level.ndim - 1))
        return np.fft.irfft(np.fft.rfft(level, axis=0) * keep, n=n, axis=0)
    sos = _butterworth(fps, f_lo, f_hi)
    zi = signal.sosfilt_zi(sos).reshape(sos.shape[0], 2, *([1] * (level.ndim - 1))) * level[0]
    return signal.sosfilt(sos, level, axis=0, zi=zi)[0]


def evm_reference(frames: np.ndarray, fps: float, alpha: float,
                  band: tuple[float, float] = (0.5, 15.0), levels: int = 6,
                  lambda_c: float = 16.0, chroma_attenuation: float = 0.1,
                  kind: str = "ideal") -> np.ndarray:
    """The straightforward EVM: a Laplacian pyramid per frame, every level filtered in time,
    amplified, and each frame's pyramid collapsed in a Python loop.  Same contract as :func:`evm`."""
    rgb = _checked(frames).astype(np.float64)
    f_lo, f_hi = _check_band(fps, band, kind)
    height, width = rgb.shape[1:3]
    depth = pyramid_depth(height, width, levels)
    alphas = level_alphas(alpha, lambda_c, depth)
    chroma = np.array([1.0, chroma_attenuation, chroma_attenuation])
    pyramids = []                                                     # per frame: list of levels
    for frame in rgb:
        g = [(frame @ _RGB2YIQ.T).astype(np.float32)]                  # (H, W, 3) YIQ
        for _ in range(depth - 1):
            g.append(cv2.pyrDown(g[-1]))
        lap = [g[i] - cv2.pyrUp(g[i + 1], dstsize=(g[i].shape[1], g[i].shape[0]))
               for i in range(depth - 1)] + [g[-1]]
        pyramids.append(lap)
    amplified = []                                                    # per level: (T, h, w, 3)
    for lvl in range(depth):
        stack = np.stack([p[lvl] for p in pyramids]).astype(np.float64)
        amplified.append(_temporal_filter_reference(stack, fps, f_lo, f_hi, kind)
                         * alphas[lvl] * chroma)
    out = np.empty_like(rgb)
    for t in range(len(rgb)):
        img = amplified[depth - 1][t].astype(np.float32)
        for lvl in range(depth - 2, -1, -1):
            size = (amplified[lvl].shape[2], amplified[lvl].shape[1])
            img = cv2.pyrUp(img, dstsize=size) + amplified[lvl][t].astype(np.float32)
        out[t] = rgb[t] + img @ _YIQ2RGB.T
    return out.astype(np.float32)
