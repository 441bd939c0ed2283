"""DeRe-GRL's graph convolution: ours (channel-last, aggregate over each partition's neighbours,
then one ``nn.Linear``) against ST-GCN's layout (a 1x1 ``Conv2d`` per partition on ``(N, C, T, V)``,
then the adjacency), forward and backward, with the same weights: the check that the two orders
of the linear maps (aggregate then project, project then aggregate) are one convolution, and
what ours costs against it (about the same at 16 channels: measured 20.0 vs 20.1 ms, 1 thread).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmarks.bench_kernels import Case, agree_within
from mer.features.graph import Graph
from mer.methods.dere_grl_model import GraphConv

C_IN, C_OUT = 16, 16


def _args() -> tuple:
    torch.manual_seed(0)
    graph = Graph("dere31")
    ours = GraphConv(C_IN, C_OUT, graph.A)
    p = graph.A.shape[0]
    ref = nn.Conv2d(C_IN, C_OUT * p, kernel_size=1)
    with torch.no_grad():    # the same map: Linear's columns are (partition, channel) blocks
        w = ours.linear.weight.view(C_OUT, p, C_IN)                     # (C', P, C)
        ref.weight.copy_(w.permute(1, 0, 2).reshape(p * C_OUT, C_IN, 1, 1))
        ref.bias.zero_()    # biases differ by design (ours adds one after aggregating): off
        ours.linear.bias.zero_()
    x = torch.randn(64, 3, graph.num_nodes, C_IN)                       # (N, T, V, C)
    return ours, ref, torch.as_tensor(graph.A), x


def _ours(ours: GraphConv, ref: nn.Conv2d, A: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    x = x.clone().requires_grad_(True)
    y = ours(x)                                                         # (N, T, V, C')
    y.square().sum().backward()
    return y.detach().numpy()


def _reference(ours: GraphConv, ref: nn.Conv2d, A: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    """ST-GCN: 1x1 convolution to P x C' channels on (N, C, T, V), then sum_p A_p per channel."""
    x = x.permute(0, 3, 1, 2).clone().requires_grad_(True)              # (N, C, T, V)
    n, _, t, v = x.shape
    y = ref(x).view(n, A.shape[0], C_OUT, t, v)                         # (N, P, C', T, V)
    y = torch.einsum("npctj,pij->ncti", y, A)                           # (N, C', T, V)
    y.square().sum().backward()
    return y.detach().permute(0, 2, 3, 1).numpy()                       # (N, T, V, C')




CASES = [
    Case("dere_grl_graphconv", "DeRe-GRL f_GC forward+backward, 64 clips x 3 frames x 31 nodes, "
         "16 -> 16 channels, 3 partitions", _args, _ours, _reference, agree_within(1e-5)),
]
