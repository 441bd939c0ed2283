"""MAN's network: one residual trunk per branch (whole face, left eye, right eye, mouth), their
features concatenated (eq. 2), then two fully connected layers (64 and C units).

Why separate trunks rather than one trunk over the face with RoI pooling: the paper feeds each
region as its own image into its own residual network, so a region's filters specialise on brows
or lips.  Each trunk is torchvision's ResNet built by :func:`mer.nn.resnet.resnet` (ResNet-18 at
``width`` 64 and ``blocks`` (2, 2, 2, 2)); ``small_input`` swaps the ImageNet stem (a /4
reduction) for a 3 x 3 convolution so the quick profile's 30 x 35 eye regions keep their detail.

The head follows Sec. IV-B: concatenated features -> FC 64 -> ReLU -> dropout 0.5 -> FC C.  The
paper also puts a dropout layer after the C-unit layer; dropping class scores before the softmax
only adds noise to the loss, so it is left out.  The frame-level feature the SVM sees is the
64-unit layer after its ReLU (:meth:`MAN.features`, dropout is off in eval mode).
"""

from __future__ import annotations

import torch
from torch import nn

from mer.errors import MerError
from mer.nn.resnet import imagenet_state, resnet


def trunk_dim(width: int, blocks: tuple[int, ...]) -> int:
    """Feature size of one trunk: the channels of its last stage."""
    return width * 2 ** (len(blocks) - 1)


class MAN(nn.Module):
    """Frames of every branch -> class scores; :meth:`features` gives the 64-unit frame features."""

    def __init__(self, branches: tuple[str, ...], n_classes: int, width: int = 64,
                 blocks: tuple[int, ...] = (2, 2, 2, 2), small_input: bool = False,
                 hidden: int = 64, dropout: float = 0.5, in_channels: int = 3):
        super().__init__()
        if not branches:
            raise ValueError("MAN needs at least one branch")
        self.branch_names = tuple(branches)
        self.width, self.blocks = width, tuple(blocks)
        self.trunks = nn.ModuleDict({name: resnet(in_channels, width, tuple(blocks), small_input)
                                     for name in self.branch_names})
        self.fc1 = nn.Linear(len(self.branch_names) * trunk_dim(width, tuple(blocks)), hidden)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, n_classes)

    def concatenated(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Eq. 2: the branch features side by side, in branch order. (N, B * D)"""
        return torch.cat([self.trunks[name](inputs[name]) for name in self.branch_names], 1)  # (N, B*D)

    def features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The frame-level feature: the first fully connected layer after its ReLU. (N, hidden)"""
        return self.act(self.fc1(self.concatenated(inputs)))                 # (N, hidden)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class scores (logits) of each frame. (N, C)"""
        return self.fc2(self.drop(self.features(inputs)))                   # (N, C)


def load_imagenet(model: MAN, small_input: bool) -> None:
    """ImageNet ResNet-18 weights into every trunk (same weights, as each branch starts alike).

    Only at width 64 with (2, 2, 2, 2) blocks do the shapes match; with ``small_input`` the 3 x 3
    stem has no ImageNet counterpart and starts random, the residual stages still load.
    """
    if model.width != 64 or model.blocks != (2, 2, 2, 2):
        raise MerError("pretrained weights need ResNet-18 trunks (width 64, blocks [2, 2, 2, 2])",
                       "params.yaml", "set width: 64 and blocks: [2, 2, 2, 2], or pretrained: false")
    for name, trunk in model.trunks.items():
        layer_names = {f"layer{i}": str(i) for i in range(1, 5)}
        if not small_input:
            layer_names.update({"conv1": "0.0", "bn1": "0.1"})
        _, unexpected = trunk.load_state_dict(imagenet_state(layer_names), strict=False)
        if unexpected:
            raise AssertionError(f"unexpected ImageNet tensors for branch {name}: {unexpected[:3]}")
