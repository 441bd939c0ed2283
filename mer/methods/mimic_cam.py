"""AU-CAM (paper eq. 12-13) and the t-SNE of the fused features X_F (paper Fig. 5), and their figures.

Why AU-CAM and not Grad-CAM: Grad-CAM back-propagates a class score and shows why the network
chose a class; AU-CAM back-propagates the largest entry of each branch's AU-aligned feature
X_b_w (eq. 3: the vector the WSCL loss shaped by AU similarity) and so shows which part of the eyes
or mouth region produced the strongest AU feature.  Per branch b: alpha_b^k is the spatial mean of
d max(X_b_w) / d A_b^k (Grad-CAM's pooling of the gradient), C_b = ReLU(sum_k alpha_b^k A_b^k),
upsampled to the region's size; the eyes map on top of the mouth map gives a map of the input's
size (eq. 12).

scikit-learn's t-SNE and matplotlib are imported where the figures are drawn: every fold's worker
imports this module, only the report step draws.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mer.methods.mimic_model import MimicNet

CHANNELS = ("amplified apex", "On-A flow", "Off-A flow")


def au_cam(net: MimicNet, x: torch.Tensor) -> torch.Tensor:
    """AU-CAM of each input: (N, 3, S, S) -> (N, S, S), >= 0 (eq. 12-13); the network in eval mode.

    Single-branch networks have one map over the whole input, from the max of their pooled feature.
    """
    was_training = net.training
    net.eval()
    with torch.enable_grad():
        out = net(x)
        dim = out.maps[0].shape[1]
        half = x.shape[2] // 2                     # the model's eyes/mouth cut
        regions = [(half, x.shape[3]), (x.shape[2] - half, x.shape[3])] if net.dual else [x.shape[2:]]
        parts = []
        for b, a in enumerate(out.maps):                                    # a: (N, D, h, w)
            x_bw = out.fused[:, b * dim:(b + 1) * dim]                      # (N, D) X_b_w
            target = x_bw.max(1).values.sum()      # samples are independent in eval mode
            grad, = torch.autograd.grad(target, a, retain_graph=b + 1 < len(out.maps))
            alpha = grad.mean((2, 3), keepdim=True)                         # (N, D, 1, 1)
            cam = torch.relu((alpha * a).sum(1, keepdim=True))              # (N, 1, h, w)
            parts.append(F.interpolate(cam, size=tuple(regions[b]), mode="bilinear", align_corners=False))
    net.train(was_training)
    return torch.cat(parts, 2)[:, 0].detach()                               # (N, S, S)


def tsne_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, F) -> (n, 2) t-SNE embedding (sklearn), perplexity capped for small n."""
    from sklearn.manifold import TSNE

    n = len(features)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed
                ).fit_transform(np.asarray(features, np.float64))


def draw_tsne(points: np.ndarray, labels: list[str], held_out: np.ndarray, path: Path,
              title: str, top: int = 10) -> None:
    """Scatter of the 2-D points coloured by AU combination (the ``top`` most frequent; the rest
    grey); held-out clips drawn as crosses."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names, counts = np.unique(labels, return_counts=True)
    common = list(names[np.argsort(-counts, kind="stable")][:top])
    fig = Figure(figsize=(7, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    lab = np.asarray(labels)
    rest = ~np.isin(lab, common)
    for mask, marker in ((~held_out, "o"), (held_out, "x")):
        ax.scatter(*points[mask & rest].T, s=12, c="0.75", marker=marker)
    colours = matplotlib.colormaps["tab10"]
    for i, name in enumerate(common):
        for mask, marker, legend in ((~held_out, "o", f"AU {name}"), (held_out, "x", None)):
            m = mask & (lab == name)
            if m.any():
                ax.scatter(*points[m].T, s=14, color=colours(i % 10),
                           marker=marker, label=legend)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([]), ax.set_yticks([])
    ax.legend(fontsize=7, loc="best", markerscale=1.2, title="o train, x held out", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def draw_au_cams(inputs: np.ndarray, cams: np.ndarray, titles: list[str], path: Path) -> None:
    """One row per clip: the three input channels and the AU-CAM over the amplified frame.

    ``inputs`` (n, 3, S, S) in [0, 1]; ``cams`` (n, S, S) >= 0 (each scaled to its own maximum).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(inputs)
    fig = Figure(figsize=(8, 2.1 * n))
    FigureCanvasAgg(fig)
    for r in range(n):
        for c in range(4):
            ax = fig.add_subplot(n, 4, 4 * r + c + 1)
            ax.set_xticks([]), ax.set_yticks([])
            if c < 3:
                ax.imshow(inputs[r, c], cmap="gray" if c == 0 else "magma", vmin=0, vmax=1)
                ax.set_title(CHANNELS[c], fontsize=7)
            else:
                cam = cams[r] / cams[r].max() if cams[r].max() > 0 else cams[r]
                ax.imshow(inputs[r, 0], cmap="gray", vmin=0, vmax=1)
                ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
                ax.axhline(inputs.shape[2] / 2 - 0.5, color="w", lw=0.6)
                ax.set_title("AU-CAM (eyes | mouth)", fontsize=7)
            if c == 0:
                ax.set_ylabel(titles[r], fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
