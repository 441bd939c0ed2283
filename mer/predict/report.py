"""The visual report of one prediction: PNG figures and a small static ``index.html``.

What a person checks before trusting the answer: were the right frames chosen (key frames and the
motion curve with onset/apex/offset marked), what did the model see (the magnified apex, the flow
magnitude, the landmark graph, whichever of them its inputs use) and how sure is it (the
probability bars).  Figures are drawn from the one-clip corpus's artifacts, i.e. from exactly what
the model was given.  Files are written one by one, atomically, into the user's folder (which may
hold other files: it is never replaced as a whole); links in the page are relative.
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mer import artifacts
from mer.features.graph import Graph
from mer.io import atomic_path, load_npz, write_text
from mer.predict.chain import DATASET


def _save(fig, out: Path, name: str) -> str:
    with atomic_path(out / name) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return name


def _key_frames(crop: dict, pred, out: Path) -> str:
    frames = crop["frames"]                                       # (T, S, S, 3) uint8
    apex = int(np.asarray(crop["apex_index"]).reshape(-1)[0])
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    for ax, (name, i, number) in zip(axes, (("onset", 0, pred.onset), ("apex", apex, pred.apex),
                                            ("offset", len(frames) - 1, pred.offset))):
        ax.imshow(frames[i])
        ax.set_title(f"{name}: frame {number}")
        ax.axis("off")
    return _save(fig, out, "key_frames.png")


def _motion(curve: tuple[np.ndarray, np.ndarray, str], pred, out: Path) -> str:
    x, y, label = curve
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.plot(x, y, color="0.2", lw=1, label=label)
    ax.axvspan(pred.onset, pred.offset, color="tab:orange", alpha=0.2, label="onset..offset")
    for name, frame, style in (("onset", pred.onset, ":"), ("apex", pred.apex, "-"),
                               ("offset", pred.offset, "--")):
        ax.axvline(frame, color="tab:red", ls=style, lw=1.2, label=f"{name} {frame}")
    ax.set_xlabel("frame")
    ax.set_ylabel("motion (gray levels)")
    ax.set_title(f"window {pred.window}")
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, out, "motion.png")


def _probabilities(pred, out: Path) -> str:
    names = list(pred.probabilities)[::-1]                        # largest at the top
    values = [pred.probabilities[n] for n in names]
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(names) + 1))
    bars = ax.barh(names, values, color=["tab:blue" if n == pred.emotion else "0.6" for n in names])
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("probability")
    ax.set_title(f"{pred.method}: {pred.emotion}")
    return _save(fig, out, "probabilities.png")


def _magnified(mag: dict, out: Path) -> str:
    frames, keys = mag["frames"], [str(k) for k in mag["keys"]]  # (K, S, S, 3) uint8
    onset, apex = frames[keys.index("onset")], frames[keys.index("apex")]
    change = np.abs(apex.astype(np.int16) - onset).max(axis=2)    # (S, S) largest channel change
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    axes[0].imshow(onset)
    axes[0].set_title("onset")
    axes[1].imshow(apex)
    axes[1].set_title(f"apex magnified (alpha {float(np.asarray(mag['alpha']).reshape(-1)[0]):g})")
    shown = axes[2].imshow(change, cmap="magma")
    axes[2].set_title("|magnified apex - onset|")
    fig.colorbar(shown, ax=axes[2], fraction=0.046)
    for ax in axes:
        ax.axis("off")
    return _save(fig, out, "magnified.png")


def _flow(flow: dict, crop: dict, out: Path) -> str:
    pairs = [str(p) for p in flow["pairs"]]
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs), 3.3), squeeze=False)
    apex = crop["frames"][int(np.asarray(crop["apex_index"]).reshape(-1)[0])]  # (S, S, 3)
    for ax, pair, magnitude in zip(axes[0], pairs, flow["magnitude"].astype(np.float32)):
        size = magnitude.shape[0]                                 # (size, size) pixels at size
        ax.imshow(apex.mean(axis=2), cmap="gray", extent=(0, size, size, 0))
        shown = ax.imshow(magnitude, cmap="inferno", alpha=0.6, extent=(0, size, size, 0))
        fig.colorbar(shown, ax=ax, fraction=0.046, label="px")
        ax.set_title(f"flow magnitude {pair}")
        ax.axis("off")
    return _save(fig, out, "flow.png")


def _graph(graph_npz: dict, mag: dict | None, crop: dict, layout: str, out: Path) -> str:
    keys = [str(k) for k in graph_npz["keys"]]
    points = graph_npz["raw"][0, keys.index("apex")]              # (N, 2) version 0, apex, px
    if mag is not None:
        image = mag["frames"][[str(k) for k in mag["keys"]].index("apex")]
    else:
        image = crop["frames"][int(np.asarray(crop["apex_index"]).reshape(-1)[0])]
    edges = Graph(layout).edges                                   # (E, 2) node pairs
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(image)
    for i, j in edges:
        ax.plot(points[[i, j], 0], points[[i, j], 1], color="cyan", lw=1)
    ax.scatter(points[:, 0], points[:, 1], s=8, color="yellow", zorder=3)
    ax.set_title(f"landmark graph ({layout}) on the apex")
    ax.axis("off")
    return _save(fig, out, "landmark_graph.png")


def write_report(out: Path, pred, root: Path, clip_id: str,
                 curve: tuple[np.ndarray, np.ndarray, str], header: dict, model=None) -> Path:
    """Draw the figures of ``pred`` from the one-clip corpus at ``root`` into ``out``; write
    ``out/index.html``; return its path.  A model with ``clip_figures(out)`` (e.g. mimic's AU-CAM)
    adds its own figures of the clip it has just predicted."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def artifact(kind: str) -> dict | None:
        path = root / artifacts.artifact_path(kind, DATASET, clip_id)
        return load_npz(path) if path.exists() else None

    crop = artifact("crop")
    mag, flow, graph = artifact("magnify"), artifact("flow"), artifact("graph")
    figures = [(_key_frames(crop, pred, out), ("Aligned face crops (the crop stage's output) at "
                "the onset, apex and offset.")),
               (_motion(curve, pred, out), "Motion curve with the chosen onset, apex and offset."),
               (_probabilities(pred, out), "Class probabilities of the model.")]
    if mag is not None:
        figures.append((_magnified(mag, out), ("Motion-magnified apex against the onset (the "
                        "magnify stage's output).")))
    if flow is not None:
        figures.append((_flow(flow, crop, out), ("Optical-flow magnitude between the key frames "
                        "(the flow stage's output), over the apex.")))
    if graph is not None:
        figures.append((_graph(graph, mag, crop, header["params"]["graph"]["layout"], out),
                        "Landmark graph the model reads, drawn on the magnified apex."))
    if model is not None and hasattr(model, "clip_figures"):
        figures += model.clip_figures(out)
    rows = "".join(f"<tr><td>{html.escape(c)}</td><td>{p:.3f}</td></tr>"
                   for c, p in pred.probabilities.items())
    images = "".join(f'<figure><img src="{html.escape(name)}" alt="{html.escape(name)}">'
                     f"<figcaption>{html.escape(text)}</figcaption></figure>\n"
                     for name, text in figures)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mer predict: {html.escape(pred.source.name)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}img{{max-width:100%}}
table{{border-collapse:collapse}}td{{padding:0 1em 0 0}}figure{{margin:1.5em 0}}</style></head>
<body>
<h1>{html.escape(pred.emotion)}</h1>
<p>Clip <code>{html.escape(str(pred.source))}</code>; model <code>{html.escape(pred.method)}</code>
(scheme {html.escape(pred.scheme)}, mer {html.escape(str(header.get("mer_version")))}).</p>
<p>Onset {pred.onset}, apex {pred.apex}, offset {pred.offset} ({html.escape(pred.window)};
frame numbers from 0 at {pred.fps:g} fps).</p>
<table>{rows}</table>
{images}</body></html>
"""
    return write_text(out / "index.html", page)
