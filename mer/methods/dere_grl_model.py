"""DeRe-GRL's networks (Wei, Chen, Lu, Yan, Xie, Zhao, §2.1): a spatial-temporal graph backbone,
the Action Decomposition Module (ADM) and the Relation Reconstruction Module (RRM).

Tensors are channel-last, ``(N, T, V, C)``: batch, key frames (onset, apex, offset: T = 3),
graph nodes, channels; every learned map is an ``nn.Linear`` on the last axis.  The modules hold
no training logic: the method class (:mod:`mer.methods.dere_grl`) owns data, losses and the loop.

Choices the paper leaves open, and ours:

* f_GC is a partitioned graph convolution, ``sum_p A_p X W_p`` (ST-GCN), with the adjacency
  partitions of :class:`mer.features.graph.Graph` (the same object that picked the nodes); f_TC a
  convolution over the key-frame axis.  A backbone layer is GC -> BN -> ReLU -> TC -> BN, plus a
  residual, then ReLU (the Graph-TCN / ST-GCN unit); the input is batch-normalised per node and
  coordinate first (ST-GCN's data BN).
* The map matrix M'_A of eq. 1 is one (N_f, N_a) matrix per clip: the ADM's TC has a kernel
  spanning the three key frames without padding, so it reads the whole onset-apex-offset motion and
  leaves one time step.  The same map then decomposes the part's features of every key frame
  (eq. 3 applied per frame), so the action features keep the temporal axis: (3 N_a, 3 C1).
* The RRM's graph over the 3 N_a action features is complete (which actions relate is what it
  learns): two partitions, the node itself and all the others, each normalised by 1/(3 N_a).  Its
  TC also collapses the key frames, so F' is (3 N_a, C2) exactly as eq. 4 and W (eq. 5) one
  weight per action feature.  W is then divided by its sum, so the weights of a clip sum to 1:
  the balance loss (eq. 9) pulls their batch mean to 1/(3 N_a), a target that presupposes that
  scale, while eq. 5's raw sums of |F'| start near C2 per action and would make the weight centre
  loss (eq. 8) a penalty on F''s size rather than on how the clip's actions are weighed.
* The classifier is batch norm + linear on F_ME: eq. 6 scales F_ME by W, whose size eq. 5 leaves
  free (sums of |F'| over C2 channels start near C2 per action, 3 N_a actions), and eq. 7 pulls
  F_A's scale down; the norm keeps the cross-entropy's logits independent of both scales, so
  the three terms do not fight over them (without it, the test suite's toy fold predicted a
  single class).
* Ablations (Table 1): ``backbone`` classifies the node-averaged X_B; ``adm`` the action features
  averaged with equal weights (what RRM's learned weights replace); ``full`` is eq. 6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mer.features.graph import Graph

MODULES = ("backbone", "adm", "full")
N_KEY_FRAMES = 3


class ChannelNorm(nn.BatchNorm1d):
    """BatchNorm over the last (channel) axis of a channel-last tensor ``(..., C)``: statistics
    over every other axis, as ``BatchNorm2d`` on ``(N, C, T, V)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).view(x.shape)   # (..., C)


class GraphConv(nn.Module):
    """f_GC: ``X'_i = sum_p sum_j A[p, i, j] X_j W_p``: aggregate over each partition's neighbours,
    then one linear map of the partitions' stacked features: the same map as ST-GCN's 1x1
    convolution per partition (both are linear; ``benchmarks/bench_dere_grl.py`` checks that they
    agree and times them: equal speed at 16 channels)."""

    def __init__(self, c_in: int, c_out: int, A: np.ndarray | torch.Tensor):
        super().__init__()
        A = torch.as_tensor(np.asarray(A), dtype=torch.float32)         # (P, V, V)
        self.register_buffer("A", A)
        self.linear = nn.Linear(A.shape[0] * c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, v, _ = x.shape                                            # (N, T, V, C)
        y = torch.einsum("pij,ntjc->ntipc", self.A, x)                  # (N, T, V, P, C)
        return self.linear(y.reshape(n, t, v, -1))                      # (N, T, V, C')


class TemporalConv(nn.Module):
    """f_TC: a convolution over the key-frame axis as one linear map of stacked, zero-padded
    frame windows; ``collapse`` (kernel = T = 3, no padding) leaves a single time step."""

    def __init__(self, c_in: int, c_out: int, kernel: int, collapse: bool = False):
        super().__init__()
        if collapse:
            kernel = N_KEY_FRAMES
        elif kernel % 2 == 0:
            raise ValueError(f"temporal kernel must be odd, got {kernel}")
        self.kernel, self.pad = kernel, 0 if collapse else kernel // 2
        self.linear = nn.Linear(kernel * c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]                                                  # (N, T, V, C)
        x = nn.functional.pad(x, (0, 0, 0, 0, self.pad, self.pad))      # (N, T + 2 pad, V, C)
        steps = t + 2 * self.pad - self.kernel + 1
        windows = torch.cat([x[:, k:k + steps] for k in range(self.kernel)], dim=3)  # (N, T', V, k*C)
        return self.linear(windows)                                     # (N, T', V, C')


class STBlock(nn.Module):
    """One backbone layer: GC -> BN -> ReLU -> TC -> BN, plus a residual (linear when widths differ)."""

    def __init__(self, c_in: int, c_out: int, A: np.ndarray, kernel: int, dropout: float = 0.0):
        super().__init__()
        self.gc = GraphConv(c_in, c_out, A)
        self.tc = nn.Sequential(ChannelNorm(c_out), nn.ReLU(), nn.Dropout(dropout),
                                TemporalConv(c_out, c_out, kernel), ChannelNorm(c_out))
        self.residual = (nn.Identity() if c_in == c_out else
                         nn.Sequential(nn.Linear(c_in, c_out), ChannelNorm(c_out)))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.tc(self.gc(x)) + self.residual(x))       # (N, T, V, C')


class CollapsingGCTC(nn.Module):
    """GC -> BN -> ReLU -> TC over all three key frames: ``(N, 3, V, C)`` -> ``(N, V, C')``.

    The form of eq. 1 (ADM's map logits, C' = N_a) and eq. 4 (RRM's F', C' = C2): raw outputs,
    no activation after the TC, since they feed a softmax (eq. 2) or an L1 norm (eq. 5).
    """

    def __init__(self, c_in: int, c_out: int, A: np.ndarray):
        super().__init__()
        self.gc = GraphConv(c_in, c_out, A)
        self.bn = ChannelNorm(c_out)
        self.tc = TemporalConv(c_out, c_out, N_KEY_FRAMES, collapse=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tc(torch.relu(self.bn(self.gc(x))))[:, 0]          # (N, V, C')


def complete_adjacency(k: int) -> np.ndarray:
    """Partitions (2, k, k) float32 of the complete graph on ``k`` nodes: self, the others; 1/k each."""
    eye = np.eye(k, dtype=np.float32)                                  # (k, k)
    return np.stack([eye, 1.0 - eye]) / k                              # (2, k, k)


@dataclass
class Output:
    """What one forward pass gives the losses: logits, and the ADM/RRM tensors they constrain."""

    logits: torch.Tensor                 # (N, K) class scores
    actions: torch.Tensor | None         # (N, 3 N_a, 3 C1) F_A, one row per action feature
    weights: torch.Tensor | None         # (N, 3 N_a) W of eq. 5 (``full`` only)
    maps: list[torch.Tensor] | None      # per part (N, N_f, N_a) M_A of eq. 2, rows sum to 1


class DeReGRL(nn.Module):
    """Backbone (2 layers) + ADM + RRM + a linear classifier on F_ME (Fig. 1)."""

    def __init__(self, graph: Graph, n_classes: int, c1: int = 16, hidden: int = 16, c2: int = 16,
                 n_actions: int = 3, modules: str = "full", kernel: int = 3, dropout: float = 0.0,
                 in_channels: int = 2):
        super().__init__()
        if modules not in MODULES:
            raise ValueError(f"modules must be one of {MODULES}, got {modules!r}")
        self.modules_used, self.n_actions = modules, n_actions
        v = graph.num_nodes
        self.data_bn = nn.BatchNorm1d(in_channels * v)                 # per node and coordinate
        self.backbone = nn.Sequential(STBlock(in_channels, hidden, graph.A, kernel, dropout),
                                      STBlock(hidden, c1, graph.A, kernel, dropout))
        self.parts = list(graph.parts.values())                        # node slices: brows, nose, mouth
        if modules != "backbone":
            self.adm = nn.ModuleList(CollapsingGCTC(c1, n_actions, graph.subgraph(name).A)
                                     for name in graph.parts)
        if modules == "full":
            self.rrm = CollapsingGCTC(c1, c2, complete_adjacency(len(self.parts) * n_actions))
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Sequential(nn.BatchNorm1d(c1 * N_KEY_FRAMES),
                                        nn.Linear(c1 * N_KEY_FRAMES, n_classes))

    def forward(self, x: torch.Tensor) -> Output:
        n, t, v, c = x.shape                                            # (N, 3, V, 2) coordinates
        x = self.data_bn(x.reshape(n * t, v * c)).view(n, t, v, c)      # (N, 3, V, 2) per node/axis
        xb = self.backbone(x)                                           # (N, 3, V, C1) X_B
        if self.modules_used == "backbone":
            return Output(self.classifier(self.drop(xb.mean(2).flatten(1))), None, None, None)
        maps, actions = [], []
        for part, adm in zip(self.parts, self.adm):
            xo = xb[:, :, part]                                         # (N, 3, N_f, C1) X_B^o
            m = torch.softmax(adm(xo), dim=2)                           # (N, N_f, N_a) eq. 2
            actions.append(torch.einsum("ntfc,nfa->ntac", xo, m))       # (N, 3, N_a, C1) eq. 3
            maps.append(m)
        fa = torch.cat(actions, dim=2)                                  # (N, 3, 3N_a, C1) F_A
        rows = fa.transpose(1, 2).flatten(2)                            # (N, 3N_a, 3*C1)
        if self.modules_used == "adm":
            return Output(self.classifier(self.drop(rows.mean(1))), rows, None, maps)
        w = self.rrm(fa).abs().sum(2)                                   # (N, 3N_a) eq. 5
        w = w / w.sum(1, keepdim=True).clamp_min(1e-12)                 # (N, 3N_a) sums to 1
        fme = torch.einsum("nk,nkd->nd", w, rows)                       # (N, 3*C1) eq. 6
        return Output(self.classifier(self.drop(fme)), rows, w, maps)
