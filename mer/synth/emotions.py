"""Emotion labels from action-unit combinations, following CASME II's coding rules.

CASME II (Yan et al., 2014) labelled its clips from the AUs that moved: happiness when AU6 or AU12
appears; disgust for AU9, AU10 or AU4; repression for AU14, AU15 or AU17; surprise for AU1+2 or
AU25; fear for AU1+2+4 or AU20; sadness for AU1; others for any other movement.  The rules overlap
(AU1+2+4 is both fear and surprise and disgust), so :func:`emotion_for` applies them in a fixed
precedence, most specific first, and the combination table below holds only combinations whose
rule-derived emotion is the one they are listed under (a test checks it).

The table is what makes the 5-class problem learnable: each class moves a different facial region
(disgust the brows, happiness the mouth corners and cheeks, repression the chin and lower lip,
surprise the raised brows, others mostly the eyelids or one-sided movements).  Within a class the
combination frequencies loosely follow CASME II's sheet.

SMIC (Li et al., 2013) has no AU coding: its three classes come from the elicitation and the
subjects' reports.  :data:`SMIC_COMBOS` gives each class plausible FACS combinations (positive: the
cheek raiser and lip corner puller, AU6+12; negative: brow lowering, lid tightening, nose wrinkle,
upper-lip raise, chin raise, lip corner depression and lip press; surprise: brow raising AU1+2,
with upper-lid raise AU5 or parted lips AU25 -- AU26, the jaw drop, is not modelled).  Read with
CASME II's rules, every negative combination is disgust, repression, sadness or fear, every
positive one happiness and every surprise one surprise (a test checks it), so the CASME II 3-class
mapping and SMIC's classes agree on what each class looks like.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

#: every emotion SynthME writes, in CASME II's spelling (lower case)
EMOTIONS: tuple[str, ...] = ("happiness", "surprise", "disgust", "repression", "fear", "sadness",
                             "others")

#: per emotion: AU combination (CASME II's cell syntax) -> relative frequency within the emotion
COMBOS: dict[str, dict[str, float]] = {
    "happiness": {"12": 7, "L12": 5, "R12": 3, "6+12": 5, "R6+R12": 1, "6+7+12": 1, "L6+L12": 1},
    "disgust": {"4+7": 20, "4": 11, "4+9": 4, "4+R10": 4, "4+L10": 2, "4+10": 2, "4+7+9": 3,
                "4+9+10": 2, "4+7+10": 2, "L10": 1, "R10": 1, "R4+R10": 1, "4+5+L10": 1},
    "repression": {"17": 13, "15": 4, "15+17": 4, "14": 2, "14+15": 1, "L14+L15": 1, "R14": 1},
    "surprise": {"1+2": 5, "L1+L2": 4, "1+L2": 2, "R1+R2": 2, "25": 1, "1+2+25": 1, "1+R2+25": 1},
    "fear": {"20": 1, "1+2+4": 1},
    "sadness": {"1": 5, "L1": 1, "R1": 1},
    "others": {"7": 5, "L7": 2, "R7": 2, "L2": 1, "R2": 1, "24": 1, "18": 1, "5": 1, "L5": 1},
}


#: SMIC's classes (folder names) and their AU combinations -> relative frequency within the class
SMIC_EMOTIONS: tuple[str, ...] = ("negative", "positive", "surprise")
SMIC_COMBOS: dict[str, dict[str, float]] = {
    "positive": {"12": 6, "6+12": 6, "L12": 2, "R12": 2, "6+7+12": 2, "L6+L12": 1},
    "negative": {"4+7": 6, "4": 4, "4+9": 3, "4+10": 2, "L10": 1, "9+10": 1, "17": 3, "15+17": 2,
                 "17+24": 2, "4+24": 1, "15": 1, "1+4": 1},
    "surprise": {"1+2": 6, "1+2+5": 3, "1+2+25": 2, "1+2+5+25": 1, "L1+L2": 1, "R1+R2": 1},
}


def split_aus(text: str) -> list[str]:
    """'4+L10' -> ['4', 'L10']; a lone int (as the sheet stores '12') works too."""
    return [tok.strip() for tok in str(text).split("+") if tok.strip()]


def au_number(token: str) -> int:
    """'L10' -> 10; the side prefix (L/R) marks a one-sided movement."""
    return int(token.lstrip("LRlr"))


def emotion_for(aus: Iterable[str]) -> str:
    """The emotion CASME II's rules give an AU combination (see module docstring)."""
    n = {au_number(t) for t in aus}
    if {1, 2, 4} <= n or 20 in n:
        return "fear"
    if {1, 2} <= n or 25 in n:
        return "surprise"
    if n & {6, 12}:
        return "happiness"
    if n & {4, 9, 10}:
        return "disgust"
    if n & {14, 15, 17}:
        return "repression"
    if 1 in n:
        return "sadness"
    return "others"


def class_counts(weights: Mapping[str, float], total: int,
                 emotions: Sequence[str] = EMOTIONS) -> dict[str, int]:
    """Split ``total`` clips over emotions in proportion to ``weights`` (largest remainder).

    Exact counts (rather than per-clip sampling) keep the imbalance identical for every seed, so
    a difficulty curve over seeds measures the generator, not the luck of the draw.  ``emotions``
    is the layout's vocabulary; its order breaks ties and orders the result.
    """
    names = [e for e in emotions if weights.get(e, 0) > 0]
    w = np.array([float(weights[e]) for e in names])
    share = w / w.sum() * total
    counts = np.floor(share).astype(int)
    order = np.lexsort((np.arange(len(names)), -(share - counts)))  # ties: table order
    counts[order[: total - counts.sum()]] += 1
    return {e: int(c) for e, c in zip(names, counts)}


def draw_combo(emotion: str, rng: np.random.Generator,
               combos: Mapping[str, Mapping[str, float]] = COMBOS) -> str:
    """One AU combination of ``emotion``, drawn with the frequencies of ``combos`` (a layout's
    table: :data:`COMBOS` for CASME II's emotions, :data:`SMIC_COMBOS` for SMIC's classes)."""
    table = combos[emotion]
    combos = list(table)
    p = np.array([table[c] for c in combos], dtype=float)
    return combos[int(rng.choice(len(combos), p=p / p.sum()))]
