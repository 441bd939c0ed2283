"""Learning-based motion magnification (Oh et al., ECCV 2018, "MagNet"), two-frame static mode.

The network, written from the paper's description (its Fig. 2) and the checkpoint's tensor shapes:

* **Encoder** (shared by both frames): 7x7 conv (16) and a stride-2 3x3 conv (32), three residual
  blocks, then two heads: the *texture* head (stride-2 conv + two residual blocks, 1/4 resolution)
  and the *shape* head (conv + two residual blocks, 1/2 resolution).  The shape representation
  carries the motion; the texture one what the frame looks like.
* **Manipulator**: ``M_m = M_b + h(alpha * g(M_b - M_a))`` with ``g`` a 3x3 conv + ReLU and ``h`` a
  3x3 conv followed by a residual block.  The paper adds the amplified difference to ``M_a``; the
  MIT-licensed PyTorch port whose weights we load (ZhengPeng7's) adds it to ``M_b`` and was trained
  that way, so with these weights ``alpha = 0`` reconstructs frame ``b`` exactly in shape space,
  and larger ``alpha`` approaches the total magnification factor (measured in
  :func:`magnify_pairs`).
* **Decoder**: the texture of frame ``b`` upsampled x2 (nearest) and concatenated with the
  manipulated shape (64 channels), nine residual blocks, x2 nearest upsampling, a 3x3 conv (32) +
  ReLU and a 7x7 conv to RGB.  No output non-linearity: outputs are clipped to [-1, 1].

Every convolution has no bias (the checkpoint holds none) and pads by reflection, as the weights
were trained.  Parameter names follow the port's state dict (``encoder.cba_1.conv2d.weight``, ...)
so its checkpoint loads strictly.  Inputs are RGB scaled to [-1, 1]; frames are reflect-padded to
multiples of 4 and cropped back, so any size of at least 8 px works.  The modules hold no training
logic.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mer.errors import MerError

WEIGHTS_HELP = ("download magnet_epoch12_loss7.28e-02.pth, the MIT-licensed checkpoint of "
                "ZhengPeng7's PyTorch port of Oh et al.'s deep motion magnification "
                "(github.com/ZhengPeng7/motion_magnification_learning-based, release v1.0), "
                "and set magnify.weights to its path (never commit the file)")

# the encoder halves the resolution twice (shape: 1/2, texture: 1/4); frames are padded to this
_MULTIPLE = 4
# the 7x7 reflection padding needs more than 3 pixels, the 1/4-resolution texture at least 2
MIN_SIZE = 8


class ConvAct(nn.Module):
    """A bias-free convolution with reflection padding, optionally followed by a ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, relu: bool = True):
        super().__init__()
        self.conv2d = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2,
                                padding_mode="reflect", bias=False)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2d(x)
        return y.relu_() if self.relu else y          # in place: y is this layer's own output


class ResBlock(nn.Module):
    """``x + conv(relu(conv(x)))`` at constant width (3x3 kernels)."""

    def __init__(self, channels: int):
        super().__init__()
        self.cba_1 = ConvAct(channels, channels, 3)
        self.cba_2 = ConvAct(channels, channels, 3, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cba_2(self.cba_1(x)).add_(x)


def _blocks(channels: int, n: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(channels) for _ in range(n)))


class Encoder(nn.Module):
    """Frame ``(N, 3, H, W)`` -> texture ``(N, 32, H/4, W/4)`` and shape ``(N, 32, H/2, W/2)``."""

    def __init__(self):
        super().__init__()
        self.cba_1 = ConvAct(3, 16, 7)
        self.cba_2 = ConvAct(16, 32, 3, stride=2)
        self.resblks = _blocks(32, 3)
        self.texture_cba = ConvAct(32, 32, 3, stride=2)
        self.texture_resblks = _blocks(32, 2)
        self.motion_cba = ConvAct(32, 32, 3)
        self.motion_resblks = _blocks(32, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.resblks(self.cba_2(self.cba_1(x)))                    # (N, 32, H/2, W/2)
        texture = self.texture_resblks(self.texture_cba(x))            # (N, 32, H/4, W/4)
        shape = self.motion_resblks(self.motion_cba(x))                # (N, 32, H/2, W/2)
        return texture, shape


class Manipulator(nn.Module):
    """``M_b + h(alpha * g(M_b - M_a))``: the shape difference, amplified in a learned space."""

    def __init__(self):
        super().__init__()
        self.g = ConvAct(32, 32, 3)
        self.h_conv = ConvAct(32, 32, 3, relu=False)
        self.h_resblk = ResBlock(32)

    def forward(self, shape_a: torch.Tensor, shape_b: torch.Tensor,
                alpha: torch.Tensor) -> torch.Tensor:
        delta = self.g(shape_b - shape_a) * alpha                      # (N, 32, H/2, W/2)
        return shape_b + self.h_resblk(self.h_conv(delta))


class Decoder(nn.Module):
    """Texture ``(N, 32, H/4, W/4)`` + shape ``(N, 32, H/2, W/2)`` -> frame ``(N, 3, H, W)``."""

    def __init__(self):
        super().__init__()
        self.resblks = _blocks(64, 9)
        self.cba_1 = ConvAct(64, 32, 3)
        self.cba_2 = ConvAct(32, 3, 7, relu=False)

    def forward(self, texture: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        texture = F.interpolate(texture, size=shape.shape[-2:], mode="nearest")
        x = self.resblks(torch.cat([texture, shape], dim=1))            # (N, 64, H/2, W/2)
        x = F.interpolate(x, scale_factor=2, mode="nearest")           # (N, 64, H, W)
        return self.cba_2(self.cba_1(x))                               # (N, 3, H, W)


class MagNet(nn.Module):
    """Encoder, manipulator and decoder; ``forward(a, b, alpha)`` is frame ``b`` magnified."""

    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.manipulator = Manipulator()
        self.decoder = Decoder()

    def forward(self, frame_a: torch.Tensor, frame_b: torch.Tensor,
                alpha: float | torch.Tensor) -> torch.Tensor:
        """``frame_a``, ``frame_b`` ``(N, 3, H, W)`` in [-1, 1] (H, W multiples of 4); ``alpha`` a
        number or ``(N,)``.  Returns ``(N, 3, H, W)``, not clipped."""
        n = frame_a.shape[0]
        texture, shape = self.encoder(torch.cat([frame_a, frame_b]))   # both frames in one pass
        return self.decode(shape[:n], texture[n:], shape[n:], alpha)

    def decode(self, shape_a: torch.Tensor, texture_b: torch.Tensor, shape_b: torch.Tensor,
               alpha: float | torch.Tensor) -> torch.Tensor:
        """Manipulate and decode already encoded frames (lets callers encode a shared onset once)."""
        alpha = torch.as_tensor(alpha, dtype=shape_b.dtype, device=shape_b.device)
        alpha = alpha.reshape(-1, 1, 1, 1)                              # (N or 1, 1, 1, 1)
        return self.decoder(texture_b, self.manipulator(shape_a, shape_b, alpha))


def default_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_magnet(weights: str | Path, device: torch.device | str | None = None) -> MagNet:
    """A :class:`MagNet` with the checkpoint at ``weights`` loaded strictly, in eval mode.

    Accepts a plain state dict or one wrapped under ``state_dict``/``model`` (and a ``module.``
    prefix left by ``DataParallel``).  A missing, unreadable or mismatching file is one MerError.
    """
    path = Path(weights) if str(weights) else None
    if path is None or not path.is_file():
        raise MerError("MagNet weights file not found", weights or "magnify.weights (empty)",
                       WEIGHTS_HELP)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise MerError(f"cannot read MagNet weights ({type(exc).__name__}: {exc})", path,
                       WEIGHTS_HELP) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = MagNet()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise MerError(f"not a MagNet checkpoint: {str(exc).splitlines()[0]}", path,
                       WEIGHTS_HELP) from None
    return model.to(device or default_device()).eval()


@functools.lru_cache(maxsize=2)
def cached_magnet(weights: str, device: str) -> MagNet:
    """One loaded network per (file, device) per process: a stage loads it once, not per clip."""
    return load_magnet(weights, device).to(memory_format=torch.channels_last)


def _to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 RGB -> ``(N, 3, H', W')`` float32 in [-1, 1], reflect-padded to
    multiples of 4, channels-last in memory."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2)
    x = x.float().div_(127.5).sub_(1.0)                               # (N, 3, H, W)
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % _MULTIPLE, -w % _MULTIPLE
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return x.contiguous(memory_format=torch.channels_last)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` float in [-1, 1] -> uint8 RGB."""
    return np.rint((x + 1.0) * 127.5).astype(np.uint8)


def _to_numpy(x: torch.Tensor, h: int, w: int) -> np.ndarray:
    """``(N, 3, H', W')`` -> ``(N, h, w, 3)`` float32 clipped to [-1, 1], padding cropped away."""
    return x[..., :h, :w].clamp(-1.0, 1.0).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _check_pairs(reference: np.ndarray, targets: np.ndarray) -> None:
    if (targets.ndim != 4 or targets.shape[1:] != reference.shape or reference.shape[-1] != 3
            or min(reference.shape[:2]) < MIN_SIZE):
        raise MerError(f"MagNet needs a (H, W, 3) reference and (N, H, W, 3) targets of one size "
                       f"of at least {MIN_SIZE} px, got {reference.shape} and {targets.shape}",
                       fix="pass RGB face crops of one clip")


def magnet_pairs(model: MagNet, reference: np.ndarray, targets: np.ndarray, alpha: float,
                 batch: int = 4) -> np.ndarray:
    """Each of ``targets`` magnified by ``alpha`` relative to ``reference``, as network output.

    ``reference`` ``(H, W, 3)`` uint8 RGB (the onset) is encoded once; ``targets`` ``(N, H, W, 3)``
    uint8 RGB are processed ``batch`` at a time under ``torch.inference_mode``, channels-last.
    Returns ``(N, H, W, 3)`` float32 in [-1, 1].
    """
    _check_pairs(reference, targets)
    device = next(model.parameters()).device
    h, w = reference.shape[:2]
    out = np.empty(targets.shape, dtype=np.float32)                    # (N, H, W, 3)
    with torch.inference_mode():
        _, shape_a = model.encoder(_to_tensor(reference[None], device))  # (1, 32, H/2, W/2)
        for start in range(0, len(targets), batch):
            chunk = _to_tensor(targets[start:start + batch], device)    # (n, 3, H', W')
            texture_b, shape_b = model.encoder(chunk)
            y = model.decode(shape_a.expand_as(shape_b), texture_b, shape_b, alpha)
            out[start:start + len(chunk)] = _to_numpy(y, h, w)
    return out


def magnify_pairs(model: MagNet, reference: np.ndarray, targets: np.ndarray, alpha: float,
                  batch: int = 4) -> np.ndarray:
    """Static two-frame mode: :func:`magnet_pairs` as ``(N, H, W, 3)`` uint8 RGB frames.

    With the port's weights ``alpha = 0`` reproduces each target (34 dB PSNR on a real face pair)
    and ``alpha`` behaves roughly as the total magnification from about 3 on: the mean TV-L1
    motion from the reference, relative to the original, measured 1.0x at alpha 0, 1.1-1.3x at 1,
    2.0-3.0x at 3, 2.7-4.7x at 5 and 3.6-8.3x at 10 on four face pairs of
    ``WolfgangLanger_Pexels.mp4`` (0.7-3.5 px of motion; the larger the motion, the lower the gain).
    """
    return _to_uint8(magnet_pairs(model, reference, targets, alpha, batch))


def magnet_pairs_reference(model: MagNet, reference: np.ndarray, targets: np.ndarray,
                           alpha: float) -> np.ndarray:
    """The straightforward :func:`magnet_pairs`: one plain ``model(a, b, alpha)`` call per pair
    under ``torch.no_grad``, contiguous NCHW tensors (the benchmark's reference)."""
    _check_pairs(reference, targets)
    device = next(model.parameters()).device
    h, w = reference.shape[:2]
    outs = []
    with torch.no_grad():
        for target in targets:
            a = _to_tensor(reference[None], device).contiguous()
            b = _to_tensor(target[None], device).contiguous()
            outs.append(_to_numpy(model(a, b, alpha), h, w)[0])
    return np.stack(outs)
