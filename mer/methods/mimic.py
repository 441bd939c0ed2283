"""Mimicking the annotation process (Ruan, Lo, Shuai, Cheng, ACM MM 2022), registry name ``mimic``.

Coders first find the action units (AUs) of a clip, each on the eyes or the mouth, then name the
emotion from their combination.  The network copies that: the input is cut into an eyes half and a
mouth half, each half gets its own ResNet branch (layers 3-4 after shared layers 1-2), an Area
Weighted Module (AWM) fuses the two region features into X_F, an auxiliary loss (WSCL) pulls
together the X_F of clips with similar AU sets, and each region's head votes for the emotion.
Modules: :mod:`mer.methods.mimic_model`; losses: :mod:`mer.methods.mimic_losses`; AU-CAM and the
t-SNE figure: :mod:`mer.methods.mimic_cam`.

Input (§3.1, Fig. 2), three channels at ``size`` x ``size`` built from two artifacts:

* channel 0, the amplified apex: magnify ``frames`` at key ``apex`` (magnified onset->apex; the
  paper's MagNet alpha 6 in the presets, the default EVM alpha 3 on SynthME), to gray, / 255;
* channel 1, On-A, and channel 2, Off-A: the TV-L1 flow ``magnitude`` of the pairs ``onset-apex``
  and ``offset-apex``; the apex of those pairs is the raw apex (``flow.apex_from: crop``, the
  paper's choice on CASME II) or the amplified one (``flow.apex_from: magnify``, its choice on SAMM):
  a flow-stage switch the presets set.  Each magnitude map is resized, pixels under
  ``flow_threshold`` (1.5) x the map's mean are zeroed (the authors' public code: keeps only the
  clearly moving pixels) and the map is min-max scaled to [0, 1].
* Every channel is then standardised with the training clips' per-channel mean and std.

Eyes = upper half of the input, mouth = lower half (§3.1.2).  AUs split the same way (FACS): the
upper-face AUs :data:`EYE_AUS` (brows, lids, cheek raiser 6, eye movements) describe the eyes half;
head-position AUs 51-58 (the paper's footnote: they move both regions) belong to both halves; every
other AU (9 nose wrinkler and the lower-face AUs 10-39) describes the mouth half.  The side prefixes
of CASME II / CAS(ME)^3 ('L10', 'R12') are dropped: AU12 on the left is AU12, and the random
horizontal flip swaps the sides anyway, so a side-aware similarity would be wrong half of the time.

Region Replacing (§3.2, p = ``region_replacing``): the mouth half of a training input is replaced
by the mouth half of a random other training clip of the same class; its AU set becomes the eye
AUs (and head AUs) of the first clip united with the mouth AUs (and head AUs) of the second.
Then random horizontal flip and random erasing (torchvision's defaults: area 2-33 %, aspect
0.3-3.3, erased to 0 = the channel mean after standardisation), all drawn from the fold's
generator.

Loss (eq. 8): (1 - lambda) L_cls + lambda L_wscl, L_cls the class-weighted cross-entropy of both
heads (weights eq. 6), L_wscl on X_F with Jaccard AU similarity (eq. 4-5).  Prediction: the mean
of the two heads' softmax outputs (argmax = the paper's argmax of their sum).

Training: AdamW, cosine annealing with warm restarts (T_0, T_mult), a fixed number of epochs.  The
authors' public code keeps, per LOSO fold, the epoch that scored best *on the test subject*; that
selects on test labels and inflates every number, so here the model after the last epoch is the
model, always.

Ablations (Table 4) are params: ``dual`` (false = "sb", the single-branch ResNet-18),
``au_lambda`` (0 = no AU alignment), ``awm`` (false = plain concatenation), ``region_replacing``
(0 = "w/o RR").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from mer.errors import MerError
from mer.io import load_npz
from mer.methods import mimic_cam
from mer.methods.mimic_losses import weighted_ce, wscl
from mer.methods.mimic_model import MimicNet
from mer.methods.registry import Samples, register
from mer.nn.fit import (
    TrainParams,
    class_weights,
    pick_device,
    predict_in_batches,
    seeded,
    train_epochs,
)
from mer.nn.resnet import imagenet_state

# FACS upper-face AUs: brows 1, 2, 4; lids 5, 7, 41-46; cheek raiser 6; eye positions 61-66, 69;
# 70-71 brows / eyes not visible.  Head positions 51-58 move both halves.  All else: mouth half.
EYE_AUS = frozenset({1, 2, 4, 5, 6, 7, 41, 42, 43, 44, 45, 46, 61, 62, 63, 64, 65, 66, 69, 70, 71})
HEAD_AUS = frozenset(range(51, 59))
_AU_TOKEN = re.compile(r"[A-Z]*?0*(\d+)[A-Z]?")
CAM_CLIPS = 2        # test clips per fold whose AU-CAM explain() keeps for the figures
_INPUTS: dict[tuple, np.ndarray] = {}   # per-process cache of assembled inputs (see _assembled)


def au_number(token: str) -> int:
    """'L10' -> 10, 'R12' -> 12, '4' -> 4: the AU number without side prefix or intensity letter."""
    m = _AU_TOKEN.fullmatch(str(token).strip().upper())
    if m is None:
        raise MerError(f"cannot read action unit '{token}'", "the manifest's aus column",
                       "re-run ingest (AUs are written as N, LN or RN)")
    return int(m[1])


def au_regions(aus: list[str]) -> tuple[set[int], set[int]]:
    """(AUs the eyes half shows, AUs the mouth half shows); head AUs are in both."""
    nums = {au_number(a) for a in aus}
    head = nums & HEAD_AUS
    eyes = (nums & EYE_AUS) | head
    return eyes, (nums - EYE_AUS) | head


def au_combination(aus: list[str] | None) -> str:
    """A clip's AU set as a figure label ('1+2', '4+7'): side prefixes dropped, numbers sorted."""
    nums = sorted({au_number(a) for a in aus or []})
    return "+".join(str(n) for n in nums) if nums else "none"


def flow_channel(magnitude: np.ndarray, size: int, threshold: float) -> np.ndarray:
    """One flow magnitude map as an input channel: resized, under ``threshold`` x mean zeroed,
    min-max scaled to [0, 1] (all zero when nothing moves).  (H, W) -> (size, size) float32."""
    m = cv2.resize(np.asarray(magnitude, np.float32), (size, size), interpolation=cv2.INTER_AREA)
    m = np.where(m < threshold * m.mean(), 0.0, m).astype(np.float32)      # (size, size)
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def assemble(magnify: dict[str, np.ndarray], flow: dict[str, np.ndarray], size: int,
             threshold: float, where: str = "") -> np.ndarray:
    """The 3-channel input of one clip in [0, 1]: (3, size, size) float32 (see the module doc)."""
    keys = [str(k) for k in magnify["keys"]]
    pairs = [str(p) for p in flow["pairs"]]
    for need, have, stage in (("apex", keys, "magnify"), ("onset-apex", pairs, "flow"),
                              ("offset-apex", pairs, "flow")):
        if need not in have:
            raise MerError(f"the {stage} artifact has no '{need}' (it has {have})", where,
                           f"rebuild it with the default {stage} keys/pairs: dvc repro {stage}@<dataset>")
    apex = magnify["frames"][keys.index("apex")]                            # (S', S', 3) uint8 RGB
    gray = cv2.cvtColor(apex, cv2.COLOR_RGB2GRAY)                           # (S', S') uint8
    amplified = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    on_a, off_a = (flow_channel(flow["magnitude"][pairs.index(p)], size, threshold)
                   for p in ("onset-apex", "offset-apex"))
    return np.stack([amplified, on_a, off_a])                               # (3, size, size)


def _assembled(magnify_path: Path, flow_path: Path, size: int, threshold: float) -> np.ndarray:
    """:func:`assemble` of one clip's files, cached per process by path, modification time and
    settings: a LOSO run fits 26 folds x seeds x 2 (control) models on the same clips, and reading
    the 224-px magnified frames again for every fit would cost more than training at quick sizes."""
    key = (str(magnify_path), magnify_path.stat().st_mtime_ns, str(flow_path),
           flow_path.stat().st_mtime_ns, size, threshold)
    if key not in _INPUTS:
        _INPUTS[key] = assemble(load_npz(magnify_path), load_npz(flow_path), size, threshold,
                                f"{magnify_path} / {flow_path}")
    return _INPUTS[key]


def random_erase(x: torch.Tensor, p: float, gen: torch.Generator,
                 scale: tuple[float, float] = (0.02, 0.33),
                 ratio: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """torchvision's RandomErasing (value 0) for a whole batch at once, drawn from ``gen``.

    One rectangle per image with probability ``p``; a rectangle that would not fit is clipped to
    the image (torchvision redraws up to ten times instead).  (N, C, H, W) -> same.
    """
    n, _, h, w = x.shape
    apply = torch.rand(n, generator=gen) < p                                # (N,)
    area = h * w * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=gen))
    log_r = np.log(ratio[0]) + (np.log(ratio[1]) - np.log(ratio[0])) * torch.rand(n, generator=gen)
    eh = torch.sqrt(area * torch.exp(log_r)).round().clamp(1, h).long()    # (N,)
    ew = torch.sqrt(area / torch.exp(log_r)).round().clamp(1, w).long()    # (N,)
    top = (torch.rand(n, generator=gen) * (h - eh + 1)).long()              # (N,)
    left = (torch.rand(n, generator=gen) * (w - ew + 1)).long()             # (N,)
    rows = torch.arange(h)[None, :]                                         # (1, H)
    cols = torch.arange(w)[None, :]                                         # (1, W)
    in_r = (rows >= top[:, None]) & (rows < (top + eh)[:, None])            # (N, H)
    in_c = (cols >= left[:, None]) & (cols < (left + ew)[:, None])          # (N, W)
    mask = in_r[:, :, None] & in_c[:, None, :] & apply[:, None, None]       # (N, H, W)
    return x.masked_fill(mask[:, None], 0.0)


def region_replace(x: torch.Tensor, y: torch.Tensor, eyes_au: torch.Tensor, mouth_au: torch.Tensor,
                   idx: torch.Tensor, p: float, gen: torch.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Region Replacing (§3.2) for the batch ``idx`` of the training set.

    With probability ``p`` a clip's lower half (mouth) is replaced by the lower half of another
    training clip of the same class (itself when its class has no other clip).  Returns the batch
    inputs (B, C, H, W), the AU sets after replacing (B, A) multi-hot (eye AUs of the clip ∪ mouth
    AUs of the donor) and the donors (B,) (= ``idx`` where nothing was replaced).
    ``x`` (N, C, H, W), ``y`` (N,), ``eyes_au`` / ``mouth_au`` (N, A) the whole training set's.
    """
    donors = idx.clone()
    replace = torch.rand(len(idx), generator=gen) < p                       # (B,)
    for b in torch.nonzero(replace).flatten().tolist():
        i = int(idx[b])
        mates = torch.nonzero((y == y[i]) & (torch.arange(len(y)) != i)).flatten()
        if len(mates):
            donors[b] = mates[int(torch.randint(len(mates), (1,), generator=gen))]
    half = x.shape[2] // 2
    xb = torch.cat([x[idx, :, :half], x[donors, :, half:]], 2)              # (B, C, H, W)
    au = eyes_au[idx] | mouth_au[donors]                                    # (B, A) bool
    return xb, au, donors


@register("mimic")
class Mimic:
    inputs = ("magnify", "flow")

    @dataclass
    class Params(TrainParams):
        # inherited: epochs, batch_size, lr, weight_decay, device (mer.nn.fit.TrainParams);
        # the paper's values (§4.3) are the defaults, the quick profile shrinks them
        epochs: int = 100               # fixed (the authors' code picked the best test epoch: never here)
        batch_size: int = 128
        lr: float = 3.0e-3              # AdamW
        weight_decay: float = 1.0e-2    # AdamW's default (the paper does not give one)
        t0: int = 10                    # cosine annealing with warm restarts: first cycle (epochs)
        t_mult: int = 2                 # each cycle this many times longer than the last
        size: int = 224                 # input side (px); eyes = upper half, mouth = lower half
        width: int = 64                 # ResNet base width: 64 = ResNet-18 (Table 1)
        blocks: list[int] = field(default_factory=lambda: [2, 2, 2, 2])  # BasicBlocks per layer 1-4
        small_input: bool = False       # 3x3/1 stem instead of ResNet's 7x7/2 + max-pool (/4)
        pretrained: bool = False        # ImageNet ResNet-18 weights (width 64, ImageNet stem; online once)
        sa_groups: int = 8              # shuffle attention groups (each with its own gate weights)
        awm_hidden: int = 1024          # h of the AWM's two linear layers (eq. 1)
        head_hidden: int = 256          # hidden units of each two-layer head (not given in the paper)
        dual: bool = True               # false: single-branch ResNet-18 ablation ("sb")
        awm: bool = True                # false: fuse by plain concatenation (ablation)
        au_lambda: float = 0.3          # lambda of eq. 8; 0 switches AU alignment (WSCL) off
        tau: float = 0.07               # WSCL temperature (not given in the paper; SCL's value)
        region_replacing: float = 0.5   # probability of Region Replacing per clip; 0 = off
        flip: float = 0.5               # random horizontal flip probability
        erasing: float = 0.5            # random erasing probability (torchvision's default)
        flow_threshold: float = 1.5     # flow pixels under this x the map's mean are zeroed

    def __init__(self, params: Mimic.Params):
        self.params = p = params
        checks = [
            (p.size >= 16 and p.size % 2 == 0, "size must be an even number >= 16"),
            (len(p.blocks) == 4 and min(p.blocks) >= 1, "blocks needs 4 counts >= 1 (layers 1-4)"),
            (p.width >= 1 and (8 * p.width) % (2 * p.sa_groups) == 0 and p.sa_groups >= 1,
             "8 x width must split into sa_groups groups of two halves"),
            (0 <= p.au_lambda < 1, "au_lambda must be in [0, 1)"),
            (p.tau > 0, "tau must be > 0"),
            (all(0 <= v <= 1 for v in (p.region_replacing, p.flip, p.erasing)),
             "region_replacing, flip and erasing are probabilities in [0, 1]"),
            (p.t0 >= 1 and p.t_mult >= 1, "t0 and t_mult must be >= 1"),
            (p.epochs >= 1 and p.batch_size >= 2, "epochs >= 1 and batch_size >= 2"),
            (not p.pretrained or (p.width == 64 and not p.small_input),
             "pretrained ImageNet weights need width 64 and the ImageNet stem (small_input false)"),
        ]
        for ok, message in checks:
            if not ok:
                raise MerError(f"models.mimic: {message}", "params.yaml", "fix the models.mimic section")
        self.device = pick_device(p.device)

    # ------------------------------------------------------------------ data
    def _raw_inputs(self, samples: Samples) -> np.ndarray:
        return np.stack([_assembled(m, f, self.params.size, self.params.flow_threshold)
                         for m, f in zip(samples.paths["magnify"], samples.paths["flow"])])

    def _standardised(self, raw: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((raw - self.mean_) / self.std_, dtype=torch.float32)

    def _au_rows(self, meta) -> tuple[torch.Tensor, torch.Tensor]:
        """Multi-hot (n, A) AU sets of the eyes and mouth halves over the training vocabulary."""
        regions = [au_regions(list(a) if a is not None else []) for a in meta["aus"]]
        self.au_vocab_ = sorted(set().union(*(e | m for e, m in regions))) if regions else []
        col = {a: j for j, a in enumerate(self.au_vocab_)}
        eyes = torch.zeros(len(regions), max(1, len(col)), dtype=torch.bool)
        mouth = torch.zeros_like(eyes)
        for i, (e, m) in enumerate(regions):
            eyes[i, [col[a] for a in e]] = True
            mouth[i, [col[a] for a in m]] = True
        return eyes, mouth

    def _network(self, n_classes: int) -> MimicNet:
        p = self.params
        net = MimicNet(n_classes, p.width, tuple(p.blocks), p.small_input, p.sa_groups, p.awm_hidden,
                       p.head_hidden, p.dual, p.awm)
        if p.pretrained:
            for names in net.imagenet_names():   # heads, AWM and SA start from scratch
                unexpected = net.load_state_dict(imagenet_state(names), strict=False).unexpected_keys
                if unexpected:
                    raise AssertionError(f"ImageNet tensors without a place: {unexpected[:3]}")
        return net.to(self.device)

    # ------------------------------------------------------------------ interface
    def fit(self, train: Samples, rng: np.random.Generator) -> Mimic:
        p = self.params
        gen = seeded(rng)
        if train.y is None:
            raise MerError("mimic needs labelled training clips", fix="pass the training fold")
        raw = self._raw_inputs(train)                                       # (n, 3, S, S) in [0, 1]
        self.mean_ = raw.mean((0, 2, 3), keepdims=True)[0]                  # (3, 1, 1)
        self.std_ = np.maximum(raw.std((0, 2, 3), keepdims=True)[0], 1e-6)  # (3, 1, 1)
        x = self._standardised(raw)                                         # (n, 3, S, S)
        y = torch.as_tensor(train.y, dtype=torch.long)                      # (n,)
        eyes_au, mouth_au = self._au_rows(train.meta)                       # (n, A) each
        self.n_classes_ = len(train.classes)
        w = class_weights(train.y, self.n_classes_).to(self.device)         # (K,) eq. 6
        self.net_ = net = self._network(self.n_classes_)

        def loss_of(idx: torch.Tensor) -> torch.Tensor:
            xb, au, _ = region_replace(x, y, eyes_au, mouth_au, idx, p.region_replacing, gen)
            flip = torch.rand(len(idx), generator=gen) < p.flip             # (B,)
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)     # (B, 3, S, S)
            xb = random_erase(xb, p.erasing, gen).to(self.device)
            yb = y[idx].to(self.device)                                     # (B,)
            out = net(xb)
            cls = sum(weighted_ce(logits, yb, w) for logits in out.logits)
            if p.au_lambda == 0:
                return cls
            return (1 - p.au_lambda) * cls + p.au_lambda * wscl(out.fused, au.to(self.device), p.tau)

        optimizer = torch.optim.AdamW(net.parameters(), lr=p.lr, weight_decay=p.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=p.t0,
                                                                         T_mult=p.t_mult)
        self.history_ = train_epochs(net, loss_of, len(y), p, gen, optimizer, scheduler)
        self.train_ids_ = train.meta["clip_id"].tolist()
        self.train_fused_ = self._forward_all(x)[1].numpy().astype(np.float16)   # (n, 2D) X_F
        return self

    def _forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(probabilities (n, K), X_F (n, 2D), AWM weights (n, 2D) or empty) of every input."""
        net = self.net_
        net.eval()

        def forward(idx: torch.Tensor) -> torch.Tensor:
            out = net(x[idx].to(self.device))
            proba = torch.stack([torch.softmax(z, 1) for z in out.logits]).mean(0)  # (B, K)
            weight = out.area_weight if out.area_weight is not None else out.fused[:, :0]
            return torch.cat([proba, out.fused, weight], 1)

        both = predict_in_batches(forward, len(x), self.params.batch_size)
        k, d = self.n_classes_, self.net_.dim * (2 if self.params.dual else 1)
        return both[:, :k], both[:, k:k + d], both[:, k + d:]

    def predict_proba(self, test: Samples) -> np.ndarray:
        """Mean of the heads' softmax outputs (n_test, n_classes); also keeps the held-out clips'
        X_F, AWM weights and the AU-CAM of the first :data:`CAM_CLIPS` clips for :meth:`explain`."""
        raw = self._raw_inputs(test)                                        # (m, 3, S, S)
        x = self._standardised(raw)
        proba, fused, weight = self._forward_all(x)
        self.test_ids_ = test.meta["clip_id"].tolist()
        self.test_fused_ = fused.numpy().astype(np.float16)                 # (m, 2D)
        d = self.net_.dim
        self.area_weight_ = ([float(weight[:, :d].mean()), float(weight[:, d:].mean())]
                             if weight.shape[1] else None)
        keep = slice(0, min(CAM_CLIPS, len(x)))
        self.cam_ = mimic_cam.au_cam(self.net_, x[keep].to(self.device)).cpu().numpy()  # (c, S, S)
        self.cam_inputs_ = (raw[keep] * 255).round().astype(np.uint8)                  # (c, 3, S, S)
        return proba.numpy().astype(np.float64)

    def clip_figures(self, out: Path) -> list[tuple[str, str]]:
        """``mer predict --report``: the AU-CAM of the clip just predicted (the first test clip)."""
        mimic_cam.draw_au_cams(self.cam_inputs_[:1] / 255.0, self.cam_[:1].astype(np.float32),
                               ["AU-CAM of this clip"], out / "au_cam.png")
        return [("au_cam.png", "AU-CAM (eq. 12-13): where the eyes and mouth branches' strongest "
                 "features look, over the input's three channels.")]

    def explain(self) -> dict:
        """Per fold: training loss curve, mean AWM weight of the eyes and mouth halves, X_F of the
        training and held-out clips (for the t-SNE) and a few held-out clips' AU-CAMs."""
        return {"history": [round(v, 5) for v in self.history_],
                "area_weight": self.area_weight_,
                "train_ids": self.train_ids_, "train_fused": self.train_fused_,
                "test_ids": self.test_ids_, "test_fused": self.test_fused_,
                "cam_ids": self.test_ids_[:len(self.cam_)], "cam": self.cam_.astype(np.float16),
                "cam_inputs": self.cam_inputs_}

    @classmethod
    def render(cls, explanations: dict[str, dict], samples: Samples, out: Path
               ) -> list[tuple[str, str]]:
        """``au_cam.png`` (AU-CAM of up to 8 held-out clips, one per fold in fold order) and
        ``tsne.png`` (t-SNE of the first fold's X_F, coloured by AU combination: paper Fig. 5)."""
        aus = dict(zip(samples.meta["clip_id"], samples.meta["aus"]))
        label = {c: samples.classes[k] for c, k in zip(samples.meta["clip_id"], samples.y)}
        made = []
        picks = [(f, 0) for f, e in explanations.items() if len(e["cam"])][:8]
        if picks:
            inputs = np.stack([explanations[f]["cam_inputs"][i] for f, i in picks]) / 255.0
            cams = np.stack([explanations[f]["cam"][i] for f, i in picks]).astype(np.float32)
            titles = []
            for f, i in picks:
                clip = explanations[f]["cam_ids"][i]
                titles.append(f"{clip}\n{label[clip]}, AU {au_combination(aus[clip])}")
            mimic_cam.draw_au_cams(inputs, cams, titles, out / "au_cam.png")
            made.append(("au_cam.png", (f"AU-CAM (eq. 12-13) of {len(picks)} held-out clips, each "
                                       "from its own fold's model (first seed)")))
        first = next(iter(explanations))
        e = explanations[first]
        ids = list(e["train_ids"]) + list(e["test_ids"])
        fused = np.concatenate([e["train_fused"], e["test_fused"]]).astype(np.float32)
        if len(ids) >= 5:
            points = mimic_cam.tsne_2d(fused)
            labels = [au_combination(aus[c]) for c in ids]
            held = np.arange(len(ids)) >= len(e["train_ids"])
            mimic_cam.draw_tsne(points, labels, held, out / "tsne.png",
                                f"X_F of fold {first}'s model (t-SNE), coloured by AU set")
            made.append(("tsne.png", (f"t-SNE of the fused features X_F of fold {first} (paper "
                                     "Fig. 5): training clips o, held-out clips x, colour = AU set")))
        return made
