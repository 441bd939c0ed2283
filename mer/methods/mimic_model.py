"""The annotation-mimicking network's modules (Ruan et al., ACM MM 2022): no training logic here.

Layout (paper Table 1, Fig. 1): the 3-channel input is cut into its upper half (eyes) and lower
half (mouth); both halves go through the *same* base (ResNet-18 stem + layers 1-2), then through
*separate* branches (layers 3-4 each, followed by a Shuffle Attention module with unshared group
weights); each branch is average-pooled to X_eyes, X_mouth (D = 8 x width = 512 at width 64);
the Area Weighted Module fuses them into X_F (eq. 1-3); a two-layer head per branch classifies
X_eyes_w and X_mouth_w.  The single-branch ablation ("sb", Table 4) is the plain ResNet-18 on the
whole input with one head, its pooled output standing in for X_F.

Where the Shuffle Attention sits: the paper says it is "included" in feature extraction without a
place; here it ends each branch, so the attention is learnt per region and the AU-CAM (eq. 13)
reads the attended maps A_b the pooled features are made of.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mer.nn.resnet import layers, stem


class ShuffleAttention(nn.Module):
    """SA-Net's shuffle attention (Zhang & Yang 2021) with one set of gate weights per group.

    The channels are cut into ``groups`` groups and each group in two halves: the first half is
    re-weighted by a channel gate sigmoid(c_w * mean_hw(x) + c_b), the second by a spatial gate
    sigmoid(s_w * norm_hw(x) + s_b) (norm_hw: per-channel normalisation over the map, SA-Net's
    GroupNorm with one channel per group, whose affine part folds into s_w, s_b); a channel shuffle
    then mixes the halves.  SA-Net shares c_w, c_b, s_w, s_b between groups; the paper (§3.3) gives
    every group its own, so they are (groups, C / (2 groups)) here.
    """

    def __init__(self, channels: int, groups: int, eps: float = 1e-5):
        super().__init__()
        if channels % (2 * groups):
            raise ValueError(f"shuffle attention: {channels} channels do not split into {groups} "
                             "groups of two halves")
        self.groups, self.eps = groups, eps
        half = channels // (2 * groups)
        shape = (groups, half, 1, 1)
        self.c_w = nn.Parameter(torch.zeros(shape))     # SA-Net's initialisation: gates start at
        self.c_b = nn.Parameter(torch.ones(shape))      # sigmoid(1) everywhere, i.e. no preference
        self.s_w = nn.Parameter(torch.zeros(shape))
        self.s_b = nn.Parameter(torch.ones(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = x.reshape(n, self.groups, 2, c // (2 * self.groups), h, w)      # (N, G, 2, c', H, W)
        xc, xs = g[:, :, 0], g[:, :, 1]                                     # (N, G, c', H, W) each
        xc = xc * torch.sigmoid(self.c_w * xc.mean((-2, -1), keepdim=True) + self.c_b)
        mu = xs.mean((-2, -1), keepdim=True)                                # (N, G, c', 1, 1)
        var = xs.var((-2, -1), keepdim=True, unbiased=False)                # (N, G, c', 1, 1)
        xs = xs * torch.sigmoid(self.s_w * (xs - mu) / torch.sqrt(var + self.eps) + self.s_b)
        out = torch.stack([xc, xs], 2).reshape(n, c, h, w)                  # (N, C, H, W)
        return out.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)  # shuffled


class AreaWeightedModule(nn.Module):
    """Eq. 1-3: sigmoid weights from two linear layers on [X_eyes | X_mouth]; no softmax (a softmax
    would let one feature dominate through the exponential, §3.4)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 2 * dim))

    def forward(self, x_eyes: torch.Tensor, x_mouth: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        cat = torch.cat([x_eyes, x_mouth], 1)                               # (N, 2D)
        weight = torch.sigmoid(self.net(cat))                               # (N, 2D) X_weight
        return cat * weight, weight                                         # X_F (N, 2D), weight


def head(dim: int, hidden: int, n_classes: int) -> nn.Sequential:
    """The two-layer fully connected head of one branch (§3.6); softmax lives in the loss."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n_classes))


@dataclass
class MimicOutput:
    """Everything one forward pass yields; the method picks what its loss and figures need."""

    logits: list[torch.Tensor]        # per head (N, K): [eyes, mouth], or [whole] single-branch
    fused: torch.Tensor               # (N, 2D) X_F (single-branch: (N, D) pooled features)
    maps: list[torch.Tensor]          # per branch (N, D, h, w): A_b, the attended branch outputs
    area_weight: torch.Tensor | None  # (N, 2D) X_weight of the AWM, None without it


class MimicNet(nn.Module):
    """Dual-branch (eyes/mouth) ResNet-18 with shuffle attention, AWM and two heads.

    ``dual=False`` is the single-branch ablation; ``awm=False`` fuses by plain concatenation (the
    paper's footnote 3).  ``width`` 64 with the ImageNet stem is ResNet-18 exactly (Table 1).
    """

    def __init__(self, n_classes: int, width: int = 64, blocks: tuple[int, ...] = (2, 2, 2, 2),
                 small_input: bool = False, sa_groups: int = 8, awm_hidden: int = 1024,
                 head_hidden: int = 256, dual: bool = True, awm: bool = True, in_channels: int = 3):
        super().__init__()
        if len(blocks) != 4:
            raise ValueError("the base is ResNet layers 1-2 and each branch layers 3-4: give 4 block counts")
        stages = layers(width, tuple(blocks))
        self.dual, self.dim = dual, width * 8
        self.base = nn.Sequential(stem(in_channels, width, small_input), stages[0], stages[1])
        self.eyes = nn.Sequential(stages[2], stages[3], ShuffleAttention(self.dim, sa_groups))
        if dual:   # a second, independently initialised copy of layers 3-4 + SA for the mouth
            more = layers(width, tuple(blocks))
            self.mouth = nn.Sequential(more[2], more[3], ShuffleAttention(self.dim, sa_groups))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.awm = AreaWeightedModule(self.dim, awm_hidden) if dual and awm else None
        self.heads = nn.ModuleList([head(self.dim, head_hidden, n_classes)
                                    for _ in range(2 if dual else 1)])

    def forward(self, x: torch.Tensor) -> MimicOutput:
        if not self.dual:
            a = self.eyes(self.base(x))                                     # (N, D, h, w)
            feat = self.pool(a).flatten(1)                                  # (N, D)
            return MimicOutput([self.heads[0](feat)], feat, [a], None)
        half = x.shape[2] // 2
        a_eyes = self.eyes(self.base(x[:, :, :half]))                       # (N, D, h, w)
        a_mouth = self.mouth(self.base(x[:, :, half:]))                     # (N, D, h, w)
        x_eyes = self.pool(a_eyes).flatten(1)                               # (N, D)
        x_mouth = self.pool(a_mouth).flatten(1)                             # (N, D)
        if self.awm is not None:
            fused, weight = self.awm(x_eyes, x_mouth)                       # (N, 2D), (N, 2D)
        else:
            fused, weight = torch.cat([x_eyes, x_mouth], 1), None           # (N, 2D)
        logits = [self.heads[0](fused[:, :self.dim]),                       # (N, K) X_eyes_w head
                  self.heads[1](fused[:, self.dim:])]                       # (N, K) X_mouth_w head
        return MimicOutput(logits, fused, [a_eyes, a_mouth], weight)

    def imagenet_names(self) -> list[dict[str, str]]:
        """torchvision ResNet-18 prefixes -> ours (one map per branch: both branches start from
        ImageNet's layers 3-4)."""
        base = {"conv1": "base.0.0", "bn1": "base.0.1", "layer1": "base.1", "layer2": "base.2"}
        branches = ["eyes", "mouth"] if self.dual else ["eyes"]
        return [{**base, "layer3": f"{b}.0", "layer4": f"{b}.1"} for b in branches]
