"""Landmark graphs: which of the 68 iBUG points are nodes, how they connect, and their adjacency.

One :class:`Graph` object is shared by the data side (the ``graph@<dataset>`` stage picks its nodes
from the 68 landmarks with ``landmark_indices``) and the model side (a graph convolution reads the
partitioned, normalised adjacency ``A``), so the two can never disagree on node order.  The class
follows the shape of ST-GCN's graph (Yan et al., AAAI 2018): a *layout* names the node set and its
spatial edges, a *strategy* partitions every node's neighbourhood into subsets that get their own
convolution weights.

Layouts (all numbers are 0-based iBUG 300-W indices: jaw 0-16, brows 17-26, nose 27-35, eyes
36-47, outer lip 48-59, inner lip 60-67):

* ``dere31``: DeRe-GRL's 31 nodes (Wei et al., §2.1): eyebrows 17-26 (10), nose 27-35 (9) and the
  outer lip contour 48-59 (12); no eye points, whose blinks are noise for micro-expressions.  Why
  the *outer* lip for the mouth's 12: it is exactly 12 points, it holds the lip corners 48 and 54
  that AU12/AU14/AU15/AU20 move most, and the upper/lower lip outline that AU10/AU16/AU17/AU25 move.
  The inner contour (60-67) has only 8 points, its corners 60/64 nearly coincide with 48/54, and on
  a closed mouth (the usual case in micro-expressions) its upper and lower points collapse onto one
  another, so the predictor places them with little image evidence.
* ``ibug68``: all 68 points, for methods that want the whole face.

Spatial edges follow the facial contours: each brow a chain (17-21, 22-26); the nose bridge
27-30, the nostril chain 31-35 and the wings from the tip 30 to the alae 31 and 35; the outer lip
a closed loop 48-59-48.  The paper lists no edges (Graph-TCN learns its graph structure instead),
so the links that join parts are ours, chosen on anatomy and kept few:

* brows: 21-22 (inner brow ends: the corrugator, AU4, pulls them together; this link also keeps
  the eyebrows part connected as one subgraph);
* brows-nose: 21-27 and 22-27 (inner brows to the nose root across the glabella, AU4/AU9);
* nose-mouth: 33-51 (philtrum, AU10) and 31-48, 35-54 (alae to lip corners along the
  nasolabial folds, AU9/AU10/AU12).

``ibug68`` adds the jaw chain 0-16, two eye loops, the inner lip loop 60-67 tied to the outer one at
the corners (48-60, 54-64), and joins jaw-brows (0-17, 16-26), eyes-nose root (39-27, 42-27) and
chin-lower lip (8-57).

Strategies (``max_hop`` = 1 unless given; the neighbourhood of a node is the nodes within
``max_hop`` hops, itself included):

* ``uniform``: one partition, the whole neighbourhood (P = 1);
* ``distance``: one partition per hop distance 0..max_hop (P = 1 + max_hop);
* ``spatial``: the node itself, then per hop distance h >= 1 the *centripetal* neighbours (strictly
  closer, in hops, to the layout's centre nodes than the node is) and the *centrifugal* ones (as
  close or farther): P = 1 + 2 max_hop.  Centres lie on or nearest the facial midline: the nose
  tip 30 for a whole face, and per part the inner brow ends (21, 22), the nose tip (30), the lip
  midpoints (51, 57), the inner eye corners (39, 42) and the chin (8).

Normalisation: the neighbourhood matrix with self-loops, ``B`` (N, N), is normalised symmetrically,
``D^-1/2 B D^-1/2`` with ``D`` its row sums (Kipf & Welling's GCN rule; ST-GCN divides by the
degree on one side instead), so that the full normalised adjacency is symmetric and the partitions,
which only split it, sum to it exactly.  ``A[p, i, j]`` is the weight with which node ``j`` feeds
node ``i`` in partition ``p`` (a convolution computes ``A[p] @ X``).

Node features (:func:`node_features`): landmark coordinates made independent of face size and
position but not of motion.  Default ``onset``: every key frame is expressed relative to the
*onset* frame's eye midpoint and divided by the onset's inter-ocular distance, so the onset sits in
a canonical frame and whatever moves afterwards (the magnified expression) keeps its full
amplitude, in units of eye distances.  The reference is built from the four eye corners
(36, 39, 42, 45), which blinks and the expression barely move (a lid closing moves the lid points,
not the corners), and which are not nodes of ``dere31``, so no node is used to normalise itself.
``frame`` normalises each frame by its own eye corners instead: it removes head drift between
frames, at the price of also removing any motion the eye corners share.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse.csgraph import shortest_path

from mer.errors import MerError

STRATEGIES = ("uniform", "distance", "spatial")
NORMALISATIONS = ("onset", "frame")
EYE_CORNERS = ((36, 39), (42, 45))  # image-left eye's outer/inner corner, image-right eye's inner/outer


def _chain(*points: int) -> tuple[tuple[int, int], ...]:
    return tuple(itertools.pairwise(points))


def _loop(*points: int) -> tuple[tuple[int, int], ...]:
    return _chain(*points, points[0])


@dataclass(frozen=True)
class Layout:
    """A node set and its spatial edges, in 0-based iBUG-68 numbers.

    ``landmarks`` ascending; ``parts`` contiguous runs of ``landmarks`` that cover it, in order;
    ``centre`` the centre nodes of the whole layout and ``part_centres`` those of each part's
    subgraph (the ``spatial`` strategy measures hop distances from them).
    """

    name: str
    landmarks: tuple[int, ...]
    edges: tuple[tuple[int, int], ...]
    parts: Mapping[str, range]
    centre: tuple[int, ...]
    part_centres: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


BROW_EDGES = _chain(17, 18, 19, 20, 21) + _chain(22, 23, 24, 25, 26)
NOSE_EDGES = _chain(27, 28, 29, 30) + _chain(31, 32, 33, 34, 35) + ((30, 31), (30, 35))
OUTER_LIP_EDGES = _loop(*range(48, 60))
DERE_JOINS = ((21, 22), (21, 27), (22, 27), (33, 51), (31, 48), (35, 54))

JAW_EDGES = _chain(*range(17))
EYE_EDGES = _loop(*range(36, 42)) + _loop(*range(42, 48))
INNER_LIP_EDGES = _loop(*range(60, 68)) + ((48, 60), (54, 64))
IBUG_JOINS = ((0, 17), (16, 26), (27, 39), (27, 42), (8, 57))

LAYOUTS: dict[str, Layout] = {
    "dere31": Layout(
        name="dere31",
        landmarks=tuple(range(17, 36)) + tuple(range(48, 60)),
        edges=BROW_EDGES + NOSE_EDGES + OUTER_LIP_EDGES + DERE_JOINS,
        parts={"eyebrows": range(17, 27), "nose": range(27, 36), "mouth": range(48, 60)},
        centre=(30,),
        part_centres={"eyebrows": (21, 22), "nose": (30,), "mouth": (51, 57)},
    ),
    "ibug68": Layout(
        name="ibug68",
        landmarks=tuple(range(68)),
        edges=(JAW_EDGES + BROW_EDGES + NOSE_EDGES + EYE_EDGES + OUTER_LIP_EDGES + INNER_LIP_EDGES
               + DERE_JOINS + IBUG_JOINS),
        parts={"jaw": range(17), "eyebrows": range(17, 27), "nose": range(27, 36),
               "eyes": range(36, 48), "mouth": range(48, 68)},
        centre=(30,),
        part_centres={"jaw": (8,), "eyebrows": (21, 22), "nose": (30,), "eyes": (39, 42),
                      "mouth": (51, 57)},
    ),
}


def layout_names() -> list[str]:
    return sorted(LAYOUTS)


class Graph:
    """The spatial graph of one landmark layout and its partitioned adjacency.

    Attributes (N nodes, E spatial edges, P partitions):

    * ``landmark_indices`` ``(N,)`` int64: the iBUG index of each node (node order);
    * ``edges`` ``(E, 2)`` int64 node pairs ``(i, j)``, ``i < j``, sorted;
    * ``adjacency`` ``(N, N)`` bool: the edges, symmetric, no self-loops;
    * ``parts``: part name -> ``slice`` of node positions (e.g. ``dere31``: eyebrows 0:10,
      nose 10:19, mouth 19:31), in node order;
    * ``centre`` ``(C,)`` int64 node positions of the centre nodes;
    * ``hop_distance`` ``(N, N)`` float64 hops between nodes (``inf`` when unreachable);
    * ``A`` ``(P, N, N)`` float32: the partitions of the normalised adjacency (module docstring).
    """

    def __init__(self, layout: str | Layout = "dere31", strategy: str = "spatial", max_hop: int = 1):
        if isinstance(layout, str):
            if layout not in LAYOUTS:
                raise MerError(f"unknown graph layout {layout!r}", "params graph.layout",
                               f"use one of: {', '.join(layout_names())}")
            layout = LAYOUTS[layout]
        if strategy not in STRATEGIES:
            raise MerError(f"unknown graph strategy {strategy!r}", "graph strategy",
                           f"use one of: {', '.join(STRATEGIES)}")
        if not isinstance(max_hop, (int, np.integer)) or isinstance(max_hop, bool) or max_hop < 1:
            raise MerError(f"invalid max_hop {max_hop!r}", "graph strategy", "use an integer >= 1")
        self.layout, self.strategy, self.max_hop = layout, strategy, int(max_hop)
        self.name = layout.name
        self.landmark_indices = np.asarray(layout.landmarks, dtype=np.int64)  # (N,)
        self.num_nodes = n = len(self.landmark_indices)
        position = {int(k): i for i, k in enumerate(self.landmark_indices)}
        if len(position) != n or np.any(np.diff(self.landmark_indices) <= 0):
            raise ValueError(f"layout {layout.name}: landmarks must be unique and ascending")

        pairs = sorted({tuple(sorted((position[a], position[b]))) for a, b in layout.edges})
        self.edges = np.array(pairs, dtype=np.int64).reshape(-1, 2)  # (E, 2)
        self.adjacency = np.zeros((n, n), dtype=bool)  # (N, N)
        self.adjacency[self.edges[:, 0], self.edges[:, 1]] = True
        self.adjacency |= self.adjacency.T

        self.parts: dict[str, slice] = {}
        start = 0
        for name, run in layout.parts.items():
            stop = start + len(run)
            if tuple(run) != tuple(self.landmark_indices[start:stop]):
                raise ValueError(f"layout {layout.name}: part {name} is not the next run of landmarks")
            self.parts[name] = slice(start, stop)
            start = stop
        if start != n:
            raise ValueError(f"layout {layout.name}: parts cover {start} of {n} nodes")

        self.centre = np.array([position[c] for c in layout.centre], dtype=np.int64)  # (C,)
        self.hop_distance = shortest_path(self.adjacency.astype(np.float64), unweighted=True,
                                          directed=False)  # (N, N)
        self.A = self._partitions()  # (P, N, N) float32

    def __repr__(self) -> str:
        return (f"Graph(layout={self.name!r}, strategy={self.strategy!r}, max_hop={self.max_hop}: "
                f"{self.num_nodes} nodes, {len(self.edges)} edges, {len(self.A)} partitions)")

    def normalised_adjacency(self) -> np.ndarray:
        """``D^-1/2 B D^-1/2`` ``(N, N)`` float64, ``B`` = nodes within ``max_hop`` hops (self included)."""
        return _normalise(self.hop_distance <= self.max_hop)

    def _partitions(self) -> np.ndarray:
        full = self.normalised_adjacency()  # (N, N)
        hop = self.hop_distance
        if self.strategy == "uniform":
            parts = [full]
        elif self.strategy == "distance":
            parts = [full * (hop == h) for h in range(self.max_hop + 1)]
        else:  # spatial
            to_centre = hop[:, self.centre].min(axis=1)  # (N,) hops to the nearest centre node
            if not np.all(np.isfinite(to_centre)):
                lost = self.landmark_indices[~np.isfinite(to_centre)].tolist()
                raise ValueError(f"layout {self.name}: landmarks {lost} cannot reach a centre node")
            closer = to_centre[None, :] < to_centre[:, None]  # (N, N): column j closer than row i
            parts = [full * (hop == 0)]
            for h in range(1, self.max_hop + 1):
                ring = hop == h
                parts += [full * (ring & closer), full * (ring & ~closer)]
        return np.stack(parts).astype(np.float32)  # (P, N, N)

    def subgraph(self, part: str) -> Graph:
        """The graph of one part alone (DeRe-GRL's G^e, G^n, G^m): its nodes, the edges among
        them, the part's centre nodes, the same strategy.  Node ``k`` of the subgraph is node
        ``self.parts[part].start + k`` here."""
        if part not in self.parts:
            raise MerError(f"layout {self.name} has no part {part!r}", "graph part",
                           f"use one of: {', '.join(self.parts)}")
        run = self.layout.parts[part]
        inside = set(run)
        sub = Layout(name=f"{self.name}.{part}", landmarks=tuple(run),
                     edges=tuple(e for e in self.layout.edges if set(e) <= inside),
                     parts={part: run}, centre=tuple(self.layout.part_centres[part]),
                     part_centres={part: tuple(self.layout.part_centres[part])})
        return Graph(sub, self.strategy, self.max_hop)

    def temporal_edges(self, n_frames: int) -> np.ndarray:
        """``(N * (F - 1), 2)`` int64: the same node in consecutive frames, as positions in the
        frame-major flattening ``f * N + i`` of an ``(F, N, ...)`` array."""
        f = np.arange(n_frames - 1, dtype=np.int64)[:, None] * self.num_nodes  # (F-1, 1)
        here = (f + np.arange(self.num_nodes, dtype=np.int64)[None, :]).reshape(-1)  # (N*(F-1),)
        return np.stack([here, here + self.num_nodes], axis=1)

    def st_adjacency(self, n_frames: int) -> np.ndarray:
        """The spatio-temporal graph of ``n_frames`` frames as one ``(F*N, F*N)`` float32 matrix,
        frame-major: spatial edges within each frame, temporal edges between the same node in
        consecutive frames, self-loops, normalised like ``A`` (``D^-1/2 B D^-1/2``)."""
        if n_frames < 1:
            raise ValueError("n_frames must be >= 1")
        b = np.kron(np.eye(n_frames, dtype=bool), self.adjacency | np.eye(self.num_nodes, dtype=bool))
        t = self.temporal_edges(n_frames)  # (E_t, 2)
        b[t[:, 0], t[:, 1]] = b[t[:, 1], t[:, 0]] = True
        return _normalise(b).astype(np.float32)  # (F*N, F*N)


def _normalise(b: np.ndarray) -> np.ndarray:
    """Symmetric normalisation of a 0/1 matrix with self-loops: ``D^-1/2 B D^-1/2`` (float64)."""
    b = b.astype(np.float64)
    d = 1.0 / np.sqrt(b.sum(axis=1))  # (N,), every row has its self-loop
    return b * d[:, None] * d[None, :]


def face_reference(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Origin and unit of 68-point landmark sets ``(..., 68, 2)``: the midpoint between the two
    eyes' corner centres ``(..., 2)`` and the distance between those centres ``(...,)`` (float64)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    eyes = np.stack([pts[..., list(c), :].mean(axis=-2) for c in EYE_CORNERS], axis=-2)  # (..., 2, 2)
    return eyes.mean(axis=-2), np.linalg.norm(eyes[..., 1, :] - eyes[..., 0, :], axis=-1)


def node_features(landmarks: np.ndarray, graph: Graph, normalise: str = "onset") -> np.ndarray:
    """Normalised coordinates of ``graph``'s nodes from 68-point landmarks ``(..., F, 68, 2)``
    (frame 0 the onset): ``(..., F, N, 2)`` float32 in inter-ocular distances (module docstring)."""
    pts = np.asarray(landmarks, dtype=np.float64)  # (..., F, 68, 2)
    if pts.ndim < 3 or pts.shape[-2:] != (68, 2):
        raise ValueError(f"expected landmarks (..., F, 68, 2), got {pts.shape}")
    if normalise == "onset":
        origin, unit = face_reference(pts[..., :1, :, :])  # (..., 1, 2), (..., 1)
    elif normalise == "frame":
        origin, unit = face_reference(pts)  # (..., F, 2), (..., F)
    else:
        raise MerError(f"unknown normalisation {normalise!r}", "params graph.normalise",
                       f"use one of: {', '.join(NORMALISATIONS)}")
    if np.any(unit <= 0):
        raise ValueError("degenerate landmarks: the two eyes coincide")
    nodes = pts[..., graph.landmark_indices, :]  # (..., F, N, 2)
    return ((nodes - origin[..., None, :]) / unit[..., None, None]).astype(np.float32)
