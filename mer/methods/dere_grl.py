"""DeRe-GRL: decomposition and reconstruction graph representation learning (Wei, Chen, Lu, Yan,
Xie, Zhao), registry name ``dere_grl``.

Input: the ``graph`` artifacts (:mod:`mer.features.graph_stage`): the 31 DeRe landmarks of the
magnified onset, apex and offset frames, coordinates as node features.  The network
(:mod:`mer.methods.dere_grl_model`) is a two-layer graph backbone, then the Action Decomposition
Module, which splits the nodes into eyebrows, nose and mouth (the parts of
:class:`mer.features.graph.Graph`, so node order can never disagree with the data) and maps each
part's nodes onto N_a action features, then the Relation Reconstruction Module, which weighs the
3 N_a action features into the clip's feature.  The loss (:mod:`mer.methods.dere_grl_losses`) is
eq. 10: cross-entropy plus the mean centre, weight centre and balance terms.

Augmentation (the paper: landmarks detected in differently sized face boxes act as noise): when
the graph stage wrote several versions per clip (``graph.box_scales`` with more than one factor),
every version of a *training* clip is an extra training sample (``augment: true``); test clips are
always version 0, the un-augmented landmarks, as the graph stage's docstring requires.

Node features (``features``): the paper's ``coordinates`` (the graph stage's, in inter-ocular
distances relative to the onset's eyes), their ``displacement`` from the onset frame (the onset's
row is then zero: only motion is left), or ``both``.  Why the switch: on SynthME the subjects'
face shapes vary across clips about as much as the expression moves the landmarks, and from raw
coordinates the network fits the shapes (measured in the quick-profile config's comment).

Ablations are params: ``modules`` (Table 1: ``backbone``, ``adm`` = backbone + ADM, ``full`` =
+ RRM) and the lambdas (Table 2: set one to 0).  Epochs are fixed (no early stopping, nothing is
picked on the test fold).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mer.errors import MerError
from mer.features.graph import Graph
from mer.io import load_npz
from mer.methods.dere_grl_losses import total_loss
from mer.methods.dere_grl_model import MODULES, N_KEY_FRAMES, DeReGRL
from mer.methods.registry import Samples, register
from mer.nn.fit import (
    TrainParams,
    class_weights,
    pick_device,
    predict_in_batches,
    seeded,
    train_epochs,
)

FEATURES = ("coordinates", "displacement", "both")
LAYOUT = "dere31"   # the paper's node set; the graph stage must have written this layout


@register("dere_grl")
class DeReGRLMethod:
    inputs = ("graph",)

    @dataclass
    class Params(TrainParams):
        # the defaults are the paper's configuration (conf/model/dere_grl_paper.yaml); the quick
        # profile (conf/model/dere_grl.yaml) departs from it where stated there
        epochs: int = 60             # fixed (the paper does not say; never chosen on the test fold)
        c1: int = 16                 # C1, backbone output node dimension (paper: 16 CASME II, 8 SAMM)
        hidden: int = 16             # width of the first backbone layer (the paper does not say)
        c2: int = 16                 # C2, node dimension of RRM's F' (eq. 4; the paper does not say)
        n_actions: int = 3           # N_a, action features per facial part (paper: 3; searched 2..8)
        modules: str = "full"        # Table 1: backbone | adm (backbone + ADM) | full (+ RRM)
        lambda_mc: float = 1.0       # lambda_1, mean centre loss (eq. 7); 0 drops it (Table 2)
        lambda_wc: float = 1.0       # lambda_2, weight centre loss (eq. 8)
        lambda_b: float = 0.1        # lambda_3, balance loss (eq. 9)
        strategy: str = "spatial"    # adjacency partitions of f_GC: uniform | distance | spatial
        temporal_kernel: int = 3     # backbone f_TC kernel over the 3 key frames (odd)
        dropout: float = 0.0         # before each backbone TC and the classifier
        augment: bool = True         # training clips contribute every graph version (box scales)
        class_weight: str = "none"   # none (the paper's plain cross-entropy) | balanced (max n_c / n_c)
        features: str = "coordinates"  # node features: coordinates (the paper) | displacement
        #                              # (minus the onset's) | both (4 channels)

    def __init__(self, params: DeReGRLMethod.Params):
        self.params = p = params

        def bad(key: str, rule: str) -> MerError:
            return MerError(f"invalid models.dere_grl.{key}: {getattr(p, key)!r}", "params.yaml", rule)

        if p.modules not in MODULES:
            raise bad("modules", f"use one of: {', '.join(MODULES)}")
        if p.features not in FEATURES:
            raise bad("features", f"use one of: {', '.join(FEATURES)}")
        if p.class_weight not in ("none", "balanced"):
            raise bad("class_weight", "use none or balanced")
        for key in ("c1", "hidden", "c2", "n_actions", "epochs", "batch_size"):
            if getattr(p, key) < 1:
                raise bad(key, "use a positive integer")
        if p.temporal_kernel < 1 or p.temporal_kernel % 2 == 0:
            raise bad("temporal_kernel", "use an odd kernel, e.g. 3 (or 1: no temporal mixing)")
        for key in ("lambda_mc", "lambda_wc", "lambda_b", "lr", "weight_decay"):
            if getattr(p, key) < 0:
                raise bad(key, "use a value >= 0")
        if not 0 <= p.dropout < 1:
            raise bad("dropout", "use a probability in [0, 1)")
        self.graph = Graph(LAYOUT, p.strategy)   # raises MerError on an unknown strategy
        self.device = pick_device(p.device)

    # ------------------------------------------------------------------ data
    def _nodes(self, samples: Samples) -> list[np.ndarray]:
        """Every clip's ``nodes`` (S_aug, 3, 31, 2) float32, checked against the DeRe layout."""
        out = []
        for path in samples.paths["graph"]:
            nodes = load_npz(path)["nodes"]
            if nodes.ndim != 4 or nodes.shape[1:] != (N_KEY_FRAMES, self.graph.num_nodes, 2):
                raise MerError(f"graph nodes of shape {nodes.shape}, expected (S_aug, 3, "
                               f"{self.graph.num_nodes}, 2) of the {LAYOUT} layout", path,
                               f"set graph.layout: {LAYOUT} and rerun the graph stage")
            out.append(nodes)
        return out

    def _features(self, nodes: np.ndarray) -> np.ndarray:
        """Node features (..., 3, V, C) from coordinates (..., 3, V, 2): as they are, their
        displacement from the onset frame, or both stacked (C = 4)."""
        moved = nodes - nodes[..., :1, :, :]                            # (..., 3, V, 2)
        return {"coordinates": nodes, "displacement": moved,
                "both": np.concatenate([nodes, moved], axis=-1)}[self.params.features]

    def _training_set(self, train: Samples) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (M, 3, 31, 2) and labels (M,): version 0 of every clip, plus the other versions
        when ``augment`` is on (M = n x S_aug)."""
        nodes = self._nodes(train)
        keep = [v if self.params.augment else v[:1] for v in nodes]     # n x (S, 3, V, 2)
        x = self._features(np.concatenate(keep))                        # (M, 3, V, C)
        y = np.repeat(np.asarray(train.y, np.int64), [len(v) for v in keep])  # (M,)
        return torch.as_tensor(x, device=self.device), torch.as_tensor(y, device=self.device)

    def _test_set(self, test: Samples) -> torch.Tensor:
        x = self._features(np.stack([v[0] for v in self._nodes(test)]))  # (n, 3, V, C) version 0
        return torch.as_tensor(x, device=self.device)

    # ------------------------------------------------------------------ interface
    def fit(self, train: Samples, rng: np.random.Generator) -> DeReGRLMethod:
        gen = seeded(rng)
        if train.y is None:
            raise MerError("DeRe-GRL needs labelled training clips", fix="pass the training fold")
        p = self.params
        k = len(train.classes)
        x, y = self._training_set(train)                                # (M, 3, V, 2), (M,)
        self.model_ = DeReGRL(self.graph, k, p.c1, p.hidden, p.c2, p.n_actions, p.modules,
                              p.temporal_kernel, p.dropout, in_channels=x.shape[-1]).to(self.device)
        weight = (class_weights(train.y, k).to(self.device) if p.class_weight == "balanced"
                  else None)
        lambdas = (p.lambda_mc, p.lambda_wc, p.lambda_b)

        def loss_of(idx: torch.Tensor) -> torch.Tensor:
            idx = idx.to(self.device)
            out = self.model_(x[idx])
            return total_loss(out.logits, y[idx], out.actions, out.weights, lambdas, weight)

        # foreach: one multi-tensor update of the ~60 small tensors instead of a Python loop over them
        optimizer = torch.optim.Adam(self.model_.parameters(), lr=p.lr, weight_decay=p.weight_decay,
                                     foreach=True)
        self.history_ = train_epochs(self.model_, loss_of, len(y), p, gen, optimizer)
        self._summarise(self._test_set(train), train.y, k)
        return self

    @torch.no_grad()
    def _forward_all(self, x: torch.Tensor):
        """Eval-mode forward of ``x`` (n, 3, V, 2) in batches: logits (n, K), W, M_A per part."""
        outs = [self.model_(x[idx.to(self.device)]) for idx in
                torch.arange(len(x)).split(max(self.params.batch_size, 2))]
        cat = (lambda ts: None if ts[0] is None else torch.cat(ts).cpu())
        maps = (None if outs[0].maps is None else
                [torch.cat([o.maps[i] for o in outs]).cpu() for i in range(len(outs[0].maps))])
        return cat([o.logits for o in outs]), cat([o.weights for o in outs]), maps

    def _summarise(self, x: torch.Tensor, y: np.ndarray, k: int) -> None:
        """What the fitted model does on its own training clips (version 0), for explain()."""
        self.model_.eval()
        _, w, maps = self._forward_all(x)
        self.class_weights_ = (None if w is None else
                               np.stack([w[torch.as_tensor(y) == c].mean(0).numpy() if np.any(y == c)
                                         else np.full(w.shape[1], np.nan) for c in range(k)]))
        self.maps_ = None if maps is None else [m.mean(0).numpy() for m in maps]  # (N_f, N_a) each

    def predict_proba(self, test: Samples) -> np.ndarray:
        """Softmax of the logits of each test clip's version 0.  (n_test, n_classes)"""
        x = self._test_set(test)                                        # (n, 3, V, 2)
        self.model_.eval()
        logits = predict_in_batches(lambda idx: self.model_(x[idx.to(self.device)]).logits,
                                    len(x), max(self.params.batch_size, 2))
        return torch.softmax(logits, dim=1).numpy().astype(np.float64)

    def explain(self) -> dict:
        """The learned decomposition and relations: mean M_A per part and mean W per class on the
        training clips, and the loss curve's ends (small and picklable)."""
        return {"modules": self.params.modules,
                "parts": list(self.graph.parts),
                "maps": None if self.maps_ is None else [m.tolist() for m in self.maps_],
                "class_weights": None if self.class_weights_ is None else self.class_weights_.tolist(),
                "loss_first": self.history_[0], "loss_last": self.history_[-1]}

    @classmethod
    def render(cls, explanations: dict[str, dict], samples: Samples, out: Path) -> list[tuple[str, str]]:
        """Two figures, averaged over folds: each node's dominant action (the ADM's decomposition,
        over the mean onset landmarks) and the RRM's mean action weights per class."""
        first = next(iter(explanations.values()))
        made = []
        if first["maps"] is not None:
            maps = [np.mean([np.asarray(e["maps"][i]) for e in explanations.values()], axis=0)
                    for i in range(len(first["parts"]))]               # per part (N_f, N_a)
            onset = np.mean([load_npz(p)["nodes"][0, 0] for p in samples.paths["graph"]], axis=0)
            draw_action_maps(onset, maps, first["parts"], out / "action_maps.png")
            made.append(("action_maps.png", ("ADM: each landmark coloured by the action feature its "
                                              f"map M_A sends it to most (mean over {len(explanations)} "
                                              "folds)")))
        if first["class_weights"] is not None:
            w = np.nanmean([np.asarray(e["class_weights"], float) for e in explanations.values()], axis=0)
            draw_class_weights(w, samples.classes, first["parts"], out / "action_weights.png")
            made.append(("action_weights.png", ("RRM: mean weight W of each action feature per "
                                                 f"class (training clips, mean over {len(explanations)} "
                                                 "folds)")))
        return made


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def draw_action_maps(onset: np.ndarray, maps: list[np.ndarray], parts: list[str], path: Path) -> None:
    """Landmarks ``onset`` (V, 2) (image axes: y down) coloured by their dominant action feature;
    ``maps`` per part (N_f, N_a), in node order; marker size grows with the map's confidence."""
    plt = _pyplot()
    n_a = maps[0].shape[1]
    colours = plt.get_cmap("tab20" if len(maps) * n_a > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    start = 0
    for p, (name, m) in enumerate(zip(parts, maps)):
        pts = onset[start:start + len(m)]                               # (N_f, 2)
        best = m.argmax(1)                                              # (N_f,)
        for a in range(n_a):
            hit = best == a
            if hit.any():
                ax.scatter(pts[hit, 0], pts[hit, 1], s=40 + 160 * m[hit, a], color=colours(p * n_a + a),
                           label=f"{name} action {a + 1}", edgecolors="k", linewidths=0.4)
        start += len(m)
    ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.set_xticks([]), ax.set_yticks([])
    ax.legend(fontsize=7, loc="upper left", frameon=False, bbox_to_anchor=(1.01, 1.0))
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)


def draw_class_weights(weights: np.ndarray, classes: list[str], parts: list[str], path: Path) -> None:
    """Heat map of the mean action weights ``weights`` (k classes, 3 N_a actions)."""
    plt = _pyplot()
    n_a = weights.shape[1] // len(parts)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * weights.shape[1], 0.9 + 0.4 * len(classes)))
    im = ax.imshow(weights, cmap="viridis", aspect="auto")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xticks(range(weights.shape[1]), [f"{p[:4]}{a + 1}" for p in parts for a in range(n_a)],
                  rotation=90)
    fig.colorbar(im, ax=ax, label="W (eq. 5)")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
