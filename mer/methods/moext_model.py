"""MoExt's networks (paper §3.2-3.4, Tables 1-2): modules only, no training logic.

* :class:`ConvBlock` (Table 1): two (3x3 conv, BN, ReLU).
* :class:`FeatureSeparator` F (Fig. 4): a backbone for generic features, then two identical
  branches, shape and texture, each Conv blocks + fully connected layers -> a ``dim`` vector.
  The backbone is not specified by the paper ("a backbone network"); here it is a ResNet trunk
  (:func:`mer.nn.resnet.stem` + :func:`mer.nn.resnet.layers`): the paper profile takes ResNet-18's
  stem and layers 1-3 (224 px -> 256 x 14 x 14), the quick profile a narrow, shallow one.  The
  branches pool their map to ``pool`` x ``pool`` before the FC layers, so the vector keeps *where*
  things are (a global average would lose which facial region moved).
* :class:`MotionExtractor` E (eq. 2-3): M = C2(concat(C1(|S_a - S_o|), S_a)).  Table 2's input
  "Concat 1024 x 1 x 1" makes M and T_o 512 x 1 x 1 maps, so S, T and M are ``dim`` x 1 x 1 here
  too.  On a 1 x 1 map a 3x3 convolution with padding 1 computes only its centre tap: the blocks
  of E are :class:`PointwiseBlock` (linear + BN), the same function with a ninth of the weights.  ``learned=False`` is
  Table 7's "w/o motion extractor": M = |S_a - S_o|, as the paper's ablation replaces it.
* :class:`Reconstructor` R (Table 2): concat(M, T_o) -> 3 x size x size.  Table 2 for 224 px:
  three (upsample x2, conv 512, BN, ReLU) to 8 x 8, 2x2 average pool (stride 1) to 7 x 7, then
  (upsample, conv) stages of 512, 256, 128, 64 channels to 112 x 112, five Conv blocks of 32, a
  last upsample to 224 and a 3x3 conv with ReLU to 3 channels (the table prints 512 output
  channels for that conv; its output column says 3 x 224 x 224, which is what is built).  Any
  ``size`` = 7 x 2^k works: the (upsample, conv) stages after 7 x 7 halve their width from
  ``width`` each time, the Conv blocks have ``max(4, width / 16)`` channels.  Upsampling a
  1 x 1 map repeats one value, so Table 2's first three stages can tell positions apart only
  through the convolutions' zero padding at the borders; ``recon_stem: linear`` (the quick
  profile) starts instead from a learned linear map of the vector to the same width x 8 x 8
  (then BN, ReLU), which can place a movement anywhere from the first step.
* :class:`Projector` f (eq. 6, 8): the map into the "high-dimensional space" of the contrastive
  losses (not specified by the paper: a two-layer MLP, outputs L2-normalised).
* :class:`PretrainNet` (F + E + R + f) and :class:`ClassifierNet` (F's shape path + E + a linear
  classifier: §3.4, the texture branch and R are dropped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mer.nn.resnet import layers, stem


class ConvBlock(nn.Sequential):
    """Table 1: (conv k x k stride 1, BN, ReLU) twice; (N, in, H, W) -> (N, out, H, W)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        pad = kernel // 2
        super().__init__(nn.Conv2d(c_in, c_out, kernel, 1, pad, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, kernel, 1, pad, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


@dataclass(frozen=True)
class Arch:
    """Sizes of the networks (the method's params, see :class:`mer.methods.moext.MoExt.Params`)."""

    size: int = 224                    # input side, 7 x 2^k
    width: int = 64                    # backbone base width (64: ResNet-18)
    blocks: tuple[int, ...] = (2, 2, 2)  # BasicBlocks per backbone stage
    small_input: bool = False          # 3x3/1 stem instead of 7x7/2 + max-pool
    branch_channels: int = 512         # Conv block width of the shape/texture branches
    branch_blocks: int = 1             # Conv blocks per branch
    pool: int = 7                      # branch map pooled to pool x pool before the FC layers
    dim: int = 512                     # S, T, M: dim x 1 x 1 (Table 2: 512)
    recon_width: int = 512             # Table 2's first reconstruction width
    recon_blocks: int = 5              # Table 2: Conv block(32) x 5
    proj_dim: int = 128                # output of f
    motion_extractor: bool = True      # False: M = |S_a - S_o| (Table 7)
    dropout: float = 0.0               # before the classifier
    residual: bool = False             # R's output is a correction added to the onset (no ReLU)
    recon_stem: str = "upsample"       # R's 1x1 -> 8x8 start: Table 2's upsample+conv x3 | linear


class Branch(nn.Module):
    """A shape or texture branch: Conv blocks, pool, two FC layers; (N, C, h, w) -> (N, dim)."""

    def __init__(self, c_in: int, arch: Arch):
        super().__init__()
        convs, c = [], c_in
        for _ in range(arch.branch_blocks):
            convs.append(ConvBlock(c, arch.branch_channels))
            c = arch.branch_channels
        self.convs = nn.Sequential(*convs)
        self.pool = nn.AdaptiveAvgPool2d(arch.pool)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * arch.pool ** 2, arch.dim),
                                nn.ReLU(inplace=True), nn.Linear(arch.dim, arch.dim))

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.convs(g)))                   # (N, dim)


class FeatureSeparator(nn.Module):
    """F: backbone + shape branch (+ texture branch unless ``texture=False``)."""

    def __init__(self, arch: Arch, texture: bool = True):
        super().__init__()
        trunk = layers(arch.width, arch.blocks)
        self.backbone = nn.Sequential(stem(3, arch.width, arch.small_input), *trunk)
        c = arch.width * 2 ** (len(arch.blocks) - 1)
        self.shape = Branch(c, arch)
        self.texture = Branch(c, arch) if texture else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, 3, S, S) -> shape (N, dim), texture (N, dim) or None."""
        g = self.backbone(x)                                       # (N, C, h, w) generic features
        return self.shape(g), (self.texture(g) if self.texture is not None else None)


class PointwiseBlock(nn.Sequential):
    """Table 1's Conv block on a 1 x 1 map: (linear, BN, ReLU) twice; (N, in) -> (N, out).

    A 3x3 convolution with padding 1 on a 1 x 1 map computes only its centre tap, i.e. a linear
    map of the channels, and BatchNorm2d over N x 1 x 1 is BatchNorm1d over N: the same function
    as the Conv block, written without the 2-D machinery (several times faster on a CPU).
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Linear(c_in, c_out, bias=False), nn.BatchNorm1d(c_out),
                         nn.ReLU(inplace=True), nn.Linear(c_out, c_out, bias=False),
                         nn.BatchNorm1d(c_out), nn.ReLU(inplace=True))


class MotionExtractor(nn.Module):
    """E (eq. 2-3) on dim x 1 x 1 shape features; (N, dim) x2 -> M (N, dim)."""

    def __init__(self, arch: Arch):
        super().__init__()
        self.learned = arch.motion_extractor
        if self.learned:
            self.c1 = PointwiseBlock(arch.dim, arch.dim)
            self.c2 = PointwiseBlock(2 * arch.dim, arch.dim)

    def forward(self, s_o: torch.Tensor, s_a: torch.Tensor) -> torch.Tensor:
        delta = (s_a - s_o).abs()                                  # (N, dim) eq. 2
        if not self.learned:
            return delta
        both = torch.cat([self.c1(delta), s_a], 1)                 # (N, 2 dim)
        return self.c2(both)                                       # (N, dim) eq. 3


def _up_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class Reconstructor(nn.Module):
    """R (Table 2): concat(M, T_o) (N, 2 dim) -> apex (N, 3, size, size), size = 7 x 2^k."""

    def __init__(self, arch: Arch):
        super().__init__()
        k = math.log2(arch.size / 7)
        if arch.size % 7 or not k.is_integer() or k < 1:
            raise ValueError(f"size {arch.size} is not 7 x 2^k (k >= 1): 14, 28, 56, 112, 224")
        w = arch.recon_width
        if arch.recon_stem == "upsample":                                      # 1 -> 8 (Table 2)
            mods = [_up_conv(2 * arch.dim, w), _up_conv(w, w), _up_conv(w, w)]
        elif arch.recon_stem == "linear":                                      # 1 -> 8, learned
            mods = [nn.Flatten(), nn.Linear(2 * arch.dim, w * 64, bias=False),
                    nn.Unflatten(1, (w, 8, 8)), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        else:
            raise ValueError(f"recon_stem '{arch.recon_stem}': use upsample or linear")
        mods.append(nn.AvgPool2d(2, 1))                                        # 8 -> 7
        c = w
        for j in range(int(k) - 1):                                            # 7 -> size / 2
            mods.append(_up_conv(c, max(4, w // 2 ** j)))
            c = max(4, w // 2 ** j)
        last = max(4, w // 16)
        for _ in range(arch.recon_blocks):
            mods.append(ConvBlock(c, last))
            c = last
        out = nn.Conv2d(c, 3, 3, 1, 1)
        mods += [nn.Upsample(scale_factor=2, mode="nearest"), out]
        if arch.residual:   # a correction to the onset has either sign and starts at zero
            nn.init.zeros_(out.weight)   # (R starts as "copy the onset", and learns the motion)
            nn.init.zeros_(out.bias)
        else:               # an image is >= 0
            mods.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*mods)

    def forward(self, m: torch.Tensor, t_o: torch.Tensor) -> torch.Tensor:
        z = torch.cat([m, t_o], 1)[:, :, None, None]               # (N, 2 dim, 1, 1) eq. 4
        return self.net(z)                                         # (N, 3, size, size)


class Projector(nn.Module):
    """f: (N, dim) -> (N, proj_dim), unit length."""

    def __init__(self, arch: Arch):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(arch.dim, arch.dim), nn.ReLU(inplace=True),
                                 nn.Linear(arch.dim, arch.proj_dim))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net(s), dim=-1)        # (N, proj_dim)


@dataclass
class PretrainOutput:
    reconstructed: torch.Tensor   # (B, 3, S, S) apex rebuilt from view 0 (eq. 1)
    shape: torch.Tensor           # (B, 2m, dim) every instance's shape feature
    texture: torch.Tensor         # (B, 2m, dim)


class PretrainNet(nn.Module):
    """F + E + R + f for pre-training (Fig. 2)."""

    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        self.separator = FeatureSeparator(arch, texture=True)
        self.extractor = MotionExtractor(arch)
        self.reconstructor = Reconstructor(arch)
        self.projector = Projector(arch)

    def forward(self, sets: torch.Tensor) -> PretrainOutput:
        """``sets`` (B, 2m, 3, S, S), per set [onset views, apex views], view 0 the frame."""
        b, two_m = sets.shape[:2]
        s, t = self.separator(sets.flatten(0, 1))                  # (B 2m, dim) each
        s, t = s.view(b, two_m, -1), t.view(b, two_m, -1)          # (B, 2m, dim)
        m = two_m // 2
        motion = self.extractor(s[:, 0], s[:, m])                  # (B, dim) onset/apex view 0
        return PretrainOutput(self.reconstructor(motion, t[:, 0]), s, t)


class ClassifierNet(nn.Module):
    """Objective learning (§3.4): F's shape path + E + linear classifier; onset, apex -> logits."""

    def __init__(self, arch: Arch, n_classes: int):
        super().__init__()
        self.separator = FeatureSeparator(arch, texture=False)
        self.extractor = MotionExtractor(arch)
        self.head = nn.Sequential(nn.Dropout(arch.dropout), nn.Linear(arch.dim, n_classes))

    def motion(self, onset: torch.Tensor, apex: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) x2 -> M (N, dim); both frames through F in one pass (shared BN stats)."""
        s, _ = self.separator(torch.cat([onset, apex]))            # (2N, dim)
        s_o, s_a = s.chunk(2)                                      # (N, dim) each
        return self.extractor(s_o, s_a)

    def forward(self, onset: torch.Tensor, apex: torch.Tensor) -> torch.Tensor:
        return self.head(self.motion(onset, apex))                 # (N, K)

    def load_pretrained(self, pretrained: PretrainNet) -> None:
        """Inherit F's backbone and shape branch and E from pre-training (texture, R, f dropped)."""
        state = {k: v for k, v in pretrained.state_dict().items()
                 if k.startswith(("separator.backbone.", "separator.shape.", "extractor."))}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("head.") for k in missing):
            raise AssertionError(f"pre-trained weights do not fit: missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]}")
