"""MoExt: motion extraction pre-trained by apex reconstruction, with macro-expressions (Li, Wang,
Yang, Xu, Ma, Li, Wei), registry name ``moext``.

Two phases per fit (paper §3, Fig. 1-2):

1. **Pre-training** (self-supervised, no labels): the feature separator F splits each frame into
   shape and texture features, the motion extractor E turns the onset's and apex's shape features
   into motion features M, and R rebuilds the apex from concat(M, T_o).  Loss eq. 9:
   L_re + alpha_1 L_st + alpha_2 L_ss (:mod:`mer.methods.moext_losses`), the contrastive terms on
   the view expansion sets (:mod:`mer.methods.moext_views`, m views per frame).
2. **Objective learning**: F without its texture branch + E (weights inherited) + a linear
   classifier on M, cross-entropy on the training subjects' labelled clips.
Networks: :mod:`mer.methods.moext_model`.

Design decisions (the paper leaves these open, or our pipeline already answers them):

* **Input**: the ``crop`` artifacts (every aligned frame, landmarks, ``apex_index``); a clip is its
  first frame (the onset: crops start at the onset) and its apex frame, resized to ``size``.  For
  a macro-expression clip the manifest's apex already is its 5th frame (``casme3`` adapter,
  ``macro_apex_frame: 5``, ``apex_source: frame5``).  Only the two frames are read from the
  uncompressed npz (:func:`key_frames`), not the whole clip.
* **Alignment**: the paper aligns with dlib landmarks "8, 9, 25, 40 and 43".  Read 1-based (dlib's
  figures number the points 1..68), they are the jaw point beside the chin, the chin, a left-brow
  point and the two inner eye corners (0-based 7, 8, 24, 39, 42); read 0-based, point 40 would be
  a lower eyelid, an odd choice for alignment, so we take the 1-based reading.  We do not re-align:
  the crop stage (mer/face/crop.py) already applies one similarity transform per clip, from the
  onset frame's eye centres, to every frame.  A similarity fit on the five points would fix the
  same four degrees of freedom (shift, rotation, scale) from three points on the eye/brow line and
  two on the chin; it would differ only by a small scale change from the chin (face length), and
  it too must come from the onset alone (fitting every frame on points that move, brow 25 and chin
  9, would register away the expression).  So the crop's alignment stands in.
* **Pre-training data and leakage**: the pool is the crop artifacts of ``pretrain_datasets``
  (e.g. the macro block ``synthme_macro``; CAS(ME)^3's ``casme3_macro``), plus the fold's own
  training clips when ``pretrain_micro`` (the paper adds the micro-expressions of its corpora).
  Rule (:func:`allowed`, asserted by :func:`check_pool` before every pre-training): a clip may join
  only if its corpus is not an evaluation corpus of the fold (the corpora of the training clips)
  or its subject is one of the fold's training subjects.  So CAS(ME)^3's macro clips of the test
  subject never reach pre-training when CAS(ME)^3 is evaluated.  ``macro: false`` (Table 7, "w/o
  macro-expressions") drops the macro-expression clips (manifest emotion ``macro-expression``).
* **Shared pre-training**: when the pool does not depend on the fold (SynthME's quick profile: the
  macro block only, its subjects disjoint from synthme's), the pre-trained weights are computed
  once per repeat seed and reused by every fold (an in-process cache keyed by the pool's clip ids,
  the pre-training params and the seed); otherwise every fold pre-trains.  The repeat seed is the
  first word of the fold generator's seed (the runner seeds fold generators with ``[seed, fold]``).
  explain() records whether the weights were shared.
* **Augmentation** (§4.1.2): every training pair mirrored and rotated in [-10, 10] degrees into
  ``copies`` (objective learning) or ``pretrain_copies`` (pre-training) versions, offline; views
  for L_ss/L_st: random noise, contrast increase, grayscale, ``views - 1`` of them at random.
* **Reconstruction target**: the paper's R outputs the apex image (``residual: false``).  From a
  1 x 1 bottleneck a decoder cannot redraw a face to the pixel, and copying the onset is already
  within a few gray levels of the apex (a micro-expression moves a few pixels), so the quick
  profile lets R output the apex as onset + a correction (``residual: true``; no final ReLU, the
  sum clipped to [0, 1]; its last convolution starts at zero, so R starts as "copy the onset"):
  R must then put the *motion* into the picture, which is what M is for.  Upsampling Table 2's
  1 x 1 input repeats one value, so only the zero padding tells positions apart; the quick
  profile's ``recon_stem: linear`` starts R from a learned map to 8 x 8 instead (on a toy problem
  the upsampling stem did not learn to place a movement in 40 epochs, the linear one did).
  explain() compares the held-out apex reconstruction (the test fold's clips, labels unused)
  with the "copy the onset" baseline (L1).
* **Objective learning depth**: ``freeze: 0`` (the paper) trains F's shape path, E and the
  classifier; ``freeze: n`` keeps the backbone's first n modules (the stem, then its stages) at
  their pre-trained weights, computes their output for every training pair once per fit and
  trains the rest on it.  The quick profile freezes the stem and the first two stages (3 of 4)
  and trains the last stage, the shape branch, E and the classifier (several times cheaper on a
  CPU).  With ``pretrain: false`` the frozen modules keep their random initialisation.
* Epochs are fixed in both phases; nothing is selected on the test fold.
"""

from __future__ import annotations

import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from mer import artifacts
from mer.data.manifest import read_manifest
from mer.errors import MerError
from mer.methods.moext_losses import (
    pretraining_loss,
    reconstruction_loss,
    shape_shape_loss,
    shape_texture_loss,
)
from mer.methods.moext_model import Arch, ClassifierNet, PretrainNet
from mer.methods.moext_views import (
    augment_pairs,
    draw_transforms,
    expansion_sets,
    transform_pairs,
)
from mer.methods.registry import Samples, register
from mer.nn.fit import (
    TrainParams,
    batches,
    class_weights,
    pick_device,
    predict_in_batches,
    seeded,
    train_epochs,
)
from mer.nn.resnet import imagenet_state

#: ImageNet statistics: the network sees (x - mean) / std of [0, 1] RGB (what ImageNet weights expect)
MEAN = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None]
_PAIRS: dict[tuple, np.ndarray] = {}        # (path, mtime, size) -> (2, S, S, 3) uint8
_PRETRAINED: dict[tuple, dict] = {}         # shared pre-training (see module docstring)


# ------------------------------------------------------------------ data
def key_frames(path: Path) -> tuple[np.ndarray, int]:
    """Frames 0 (onset) and ``apex_index`` of a crop artifact: (2, S, S, 3) uint8, apex index.

    The crop stage stores frames uncompressed, so only the two frames are read from the file (a
    clip's crop is ~10 MB, its two frames 0.3 MB); a compressed file is read whole.
    """
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        apex = int(np.load(zf.open("apex_index.npy")))
        info = zf.getinfo("frames.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            frames = np.load(zf.open("frames.npy"))
            return np.stack([frames[0], frames[apex]]), apex
    # a stored member is its bytes as they are, after the 30-byte local header, its name and its
    # extra field (zip specification 4.3.7); Python 3.11's ZipExtFile.seek reads up to the target
    with open(path, "rb") as raw:
        raw.seek(info.header_offset)
        local = raw.read(30)
        raw.seek(info.header_offset + 30 + int.from_bytes(local[26:28], "little")
                 + int.from_bytes(local[28:30], "little"))
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}[np.lib.format.read_magic(raw)]
        shape, fortran, dtype = read_header(raw)
        start = raw.tell()
        if fortran or dtype != np.uint8 or len(shape) != 4 or not 0 <= apex < shape[0]:
            raise MerError(f"crop frames {shape} {dtype}, apex {apex}: not (T, S, S, 3) uint8",
                           path, "rebuild the crop stage: dvc repro crop@<dataset>")
        frame = int(np.prod(shape[1:]))
        out = []
        for i in (0, apex):
            raw.seek(start + i * frame)
            out.append(np.frombuffer(raw.read(frame), np.uint8).reshape(shape[1:]))
    return np.stack(out), apex


def pair_at(path: Path, size: int) -> np.ndarray:
    """(2, size, size, 3) uint8 onset and apex of one crop artifact, cached per process (a LOSO
    run fits 26 folds x seeds x 2 models on the same clips)."""
    path = Path(path)
    key = (str(path), path.stat().st_mtime_ns, size)
    if key not in _PAIRS:
        frames, _ = key_frames(path)
        _PAIRS[key] = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA)
                                for f in frames])
    return _PAIRS[key]


def to_tensor(pairs: np.ndarray) -> torch.Tensor:
    """(N, 2, S, S, 3) uint8 -> (N, 2, 3, S, S) float32 in [0, 1]."""
    return torch.from_numpy(pairs).permute(0, 1, 4, 2, 3).float().div_(255)


def net_input(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB (..., 3, S, S) -> the network's input (ImageNet standardisation)."""
    return (x - MEAN.to(x.device)) / STD.to(x.device)


@dataclass(frozen=True)
class PoolClip:
    """A candidate pre-training clip: where it comes from and its crop artifact."""

    clip_id: str
    dataset: str
    corpus: str
    subject: str
    macro: bool
    path: Path


def corpus_pool(datasets: list[str]) -> list[PoolClip]:
    """Every clip of ``datasets`` with an ``ok`` crop artifact (manifest + crop index)."""
    out = []
    for dataset in datasets:
        manifest = artifacts.manifest_path(dataset)
        if not manifest.exists():
            raise MerError(f"pre-training corpus '{dataset}' has no manifest", manifest,
                           f"compose a dataset config that lists it in `pretraining` (e.g. "
                           f"-S dataset=synthme_macro, -S dataset=casme2_pretrain) and run: dvc repro "
                           f"ingest@{dataset} crop@{dataset}")
        crop = artifacts.artifact_dir("crop", dataset)
        ok = set(artifacts.ok_clips(artifacts.read_index(crop, f"crop@{dataset}")))
        for clip in read_manifest(manifest):
            if clip.clip_id in ok:
                out.append(PoolClip(clip.clip_id, dataset, clip.corpus, str(clip.subject),
                                    clip.emotion == "macro-expression",
                                    artifacts.artifact_path("crop", dataset, clip.clip_id)))
    return out


def training_pool(train: Samples) -> list[PoolClip]:
    """The fold's training clips as pre-training candidates (labels unused)."""
    m = train.meta
    return [PoolClip(c, d, k, str(s), False, Path(p)) for c, d, k, s, p in
            zip(m["clip_id"], m["dataset"], m["corpus"], m["subject"], train.paths["crop"])]


def allowed(clip: PoolClip, eval_corpora: set[str], train_subjects: set[tuple[str, str]]) -> bool:
    """The leakage rule: not from an evaluation corpus, or from one of the training subjects."""
    return clip.corpus not in eval_corpora or (clip.corpus, clip.subject) in train_subjects


def fold_scope(train: Samples) -> tuple[set[str], set[tuple[str, str]]]:
    """(evaluation corpora of the fold, its training subjects as (corpus, subject))."""
    m = train.meta
    return set(m["corpus"].astype(str)), set(zip(m["corpus"].astype(str), m["subject"].astype(str)))


def check_pool(pool: list[PoolClip], train: Samples) -> None:
    """Assert the leakage rule on a pre-training pool (raises on the first clip that breaks it)."""
    corpora, subjects = fold_scope(train)
    for clip in pool:
        if not allowed(clip, corpora, subjects):
            raise AssertionError(f"pre-training clip {clip.dataset}/{clip.clip_id} (corpus "
                                 f"{clip.corpus}, subject {clip.subject}) belongs to an evaluation "
                                 "corpus but not to the fold's training subjects: leakage")


def repeat_seed(rng: np.random.Generator) -> int:
    """The repeat seed: the first word of the fold generator's seed (see module docstring)."""
    entropy = rng.bit_generator.seed_seq.entropy
    return int(entropy[0] if isinstance(entropy, (list, tuple)) else entropy)


# ------------------------------------------------------------------ method
@register("moext")
class MoExt:
    inputs = ("crop",)

    @dataclass
    class Params(TrainParams):
        # inherited: epochs, batch_size, lr, weight_decay, device (objective learning); the
        # defaults are the paper's (§4.1.2), conf/model/moext.yaml holds the quick profile
        epochs: int = 30                # objective learning, fixed
        batch_size: int = 20
        lr: float = 1.0e-4              # Adam (the paper also names momentum 0.9 = Adam's beta1)
        weight_decay: float = 1.0e-4
        pretrain: bool = True           # false: Table 7 "w/o pre-training"
        # corpora of the pool (each also in `datasets`); SynthME's macro block by default, the
        # presets name the real ones
        pretrain_datasets: list[str] = field(default_factory=lambda: ["synthme_macro"])
        pretrain_micro: bool = True     # the fold's training clips join the pool (labels unused)
        macro: bool = True              # false: Table 7 "w/o macro-expressions" (pool without them)
        pretrain_epochs: int = 30
        pretrain_batch_size: int = 20
        pretrain_lr: float = 1.0e-4
        alpha_st: float = 0.5           # alpha_1 of eq. 9; 0: Table 7 "w/o L_st"
        alpha_ss: float = 1.0           # alpha_2 of eq. 9; 0: Table 7 "w/o L_ss" (the paper's L_oa)
        margin: float = 0.3             # epsilon of eq. 6 and 8 (paper: in [0.2, 0.5])
        views: int = 3                  # m: the frame + (m - 1) photometric views (paper: 3)
        noise_sigma: float = 0.05       # random-noise view: Gaussian sigma on [0, 1] pixels
        contrast: float = 1.5           # contrast-increase view: gain about the image mean
        copies: int = 10                # objective learning: versions of each pair (paper: 10)
        pretrain_copies: int = 10       # pre-training: versions of each pair
        rotation: float = 10.0          # augmentation rotation range +- degrees (paper: 10)
        mirror: bool = True             # augmentation mirroring
        size: int = 224                 # input side, 7 x 2^k (paper: 224)
        width: int = 64                 # backbone base width (64: ResNet-18's)
        blocks: list[int] = field(default_factory=lambda: [2, 2, 2])  # BasicBlocks per stage
        small_input: bool = False       # 3x3/1 stem instead of ResNet's 7x7/2 + max-pool
        branch_channels: int = 512      # shape/texture branch Conv block width
        branch_blocks: int = 1          # Conv blocks per branch
        pool: int = 7                   # branch map pooled to pool x pool before its FC layers
        dim: int = 512                  # S, T, M size (Table 2: 512)
        recon_width: int = 512          # R's first width (Table 2: 512)
        recon_blocks: int = 5           # R's Conv blocks (Table 2: 5)
        proj_dim: int = 128             # f's output size (not given in the paper)
        residual: bool = False          # R outputs onset + correction (quick) instead of the apex
        recon_stem: str = "upsample"    # R's 1x1 -> 8x8 start: upsample (Table 2) | linear (quick)
        motion_extractor: bool = True   # false: M = |S_a - S_o| (Table 7)
        freeze: int = 0                 # backbone modules (stem, stages) fixed after pre-training
        dropout: float = 0.0            # before the classifier
        class_weight: str = "none"      # none (paper: cross-entropy) | balanced (max n_c / n_c)
        pretrained: bool = False        # ImageNet ResNet-18 backbone (width 64, ImageNet stem)

    def __init__(self, params: MoExt.Params):
        self.params = p = params
        k = np.log2(p.size / 7) if p.size > 0 else -1
        checks = [
            (p.size % 7 == 0 and float(k).is_integer() and k >= 1,
             "size must be 7 x 2^k: 14, 28, 56, 112 or 224"),
            (1 <= p.views <= 4, "views (m) is the frame plus 0-3 photometric operations: 1..4"),
            (0 <= p.freeze <= len(p.blocks) + 1,
             "freeze counts backbone modules: 0 .. 1 + len(blocks) (the stem and each stage)"),
            (p.recon_stem in ("upsample", "linear"), "recon_stem must be upsample or linear"),
            (p.class_weight in ("none", "balanced"), "class_weight must be none or balanced"),
            (min(p.copies, p.pretrain_copies) >= 1, "copies and pretrain_copies must be >= 1"),
            (len(p.blocks) >= 1 and min(p.blocks) >= 1, "blocks needs counts >= 1"),
            (min(p.epochs, p.pretrain_epochs, p.batch_size - 1, p.pretrain_batch_size - 1) >= 1,
             "epochs >= 1 and batch sizes >= 2 in both phases"),
            (p.margin > 0 and p.alpha_st >= 0 and p.alpha_ss >= 0,
             "margin must be > 0 and the alphas >= 0"),
            (not p.pretrained or (p.width == 64 and not p.small_input and len(p.blocks) <= 4
                                  and all(b == 2 for b in p.blocks)),
             ("pretrained ImageNet weights need ResNet-18's trunk: width 64, the ImageNet stem, "
              "2 blocks per stage")),
            (not p.pretrain or p.pretrain_datasets or p.pretrain_micro,
             ("pre-training needs a pool: pretrain_datasets (a dataset config's `pretraining`, "
              "e.g. -S dataset=synthme_macro) or pretrain_micro, or set pretrain: false")),
        ]
        for ok, message in checks:
            if not ok:
                raise MerError(f"models.moext: {message}", "params.yaml",
                               "fix the models.moext section")
        self.arch = Arch(p.size, p.width, tuple(p.blocks), p.small_input, p.branch_channels,
                         p.branch_blocks, p.pool, p.dim, p.recon_width, p.recon_blocks, p.proj_dim,
                         p.motion_extractor, p.dropout, p.residual, p.recon_stem)
        self.device = pick_device(p.device)

    # ------------------------------------------------------------------ data
    def _pairs(self, paths: list[Path]) -> np.ndarray:
        return np.stack([pair_at(path, self.params.size) for path in paths])  # (N, 2, S, S, 3)

    def _pool(self, train: Samples) -> list[PoolClip]:
        """The fold's pre-training clips under the leakage rule (module docstring)."""
        p = self.params
        corpora, subjects = fold_scope(train)
        pool = [c for c in corpus_pool(list(p.pretrain_datasets)) if allowed(c, corpora, subjects)]
        if p.pretrain_micro:
            pool += training_pool(train)
        pool = list({(c.dataset, c.clip_id): c for c in pool}.values())   # a clip joins once
        if not p.macro:
            pool = [c for c in pool if not c.macro]
        if not pool:
            raise MerError("the pre-training pool is empty", "params.yaml",
                           "check models.moext.pretrain_datasets / pretrain_micro / macro")
        return pool

    def _fold_dependent(self, pool: list[PoolClip], train: Samples) -> bool:
        """True when the pool changes with the fold: the fold's own clips join it
        (pretrain_micro), or a pool corpus is also evaluated (its clips depend on the subjects)."""
        corpora, _ = fold_scope(train)
        return self.params.pretrain_micro or any(c.corpus in corpora for c in pool)

    # ------------------------------------------------------------------ pre-training
    def _new_pretrain_net(self) -> PretrainNet:
        net = PretrainNet(self.arch)
        if self.params.pretrained:
            names = {"conv1": "separator.backbone.0.0", "bn1": "separator.backbone.0.1",
                     **{f"layer{i + 1}": f"separator.backbone.{i + 1}"
                        for i in range(len(self.params.blocks))}}
            state = imagenet_state(names)
            missing = net.load_state_dict(state, strict=False).unexpected_keys
            if missing:
                raise AssertionError(f"ImageNet tensors without a place: {missing[:3]}")
        return net.to(self.device)

    def _pretrain(self, pool: list[PoolClip], seed: int) -> tuple[dict, list[float]]:
        """Pre-train F, E, R, f on ``pool`` (eq. 9); return the state dict and the loss history."""
        p = self.params
        rng = np.random.default_rng([seed, 104729])
        torch.manual_seed(int(rng.integers(2**62)))
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        pairs = self._pairs([c.path for c in pool])                     # (N, 2, S, S, 3) uint8
        net = self._new_pretrain_net()
        m, n = p.views, len(pairs)

        def loss_of(idx: torch.Tensor) -> torch.Tensor:
            # item k is copy k // n of pair k % n; copy 0 is the pair itself (online tenfold)
            base, copy = idx.numpy() % n, idx.numpy() // n
            flips, angles = draw_transforms(len(idx), p.rotation, p.mirror, rng)
            flips[copy == 0], angles[copy == 0] = False, 0.0
            xb = to_tensor(transform_pairs(pairs[base], flips, angles)).to(self.device)
            sets = expansion_sets(xb[:, 0], xb[:, 1], m, gen, p.noise_sigma, p.contrast)
            out = net(net_input(sets))                                  # (B, 2m, 3, S, S) in
            rebuilt = self._rebuilt(out.reconstructed, xb[:, 0])        # (B, 3, S, S)
            l_re = reconstruction_loss(xb[:, 1], rebuilt)
            f_s = net.projector(out.shape.flatten(0, 1)).view(*out.shape.shape[:2], -1)
            f_t = net.projector(out.texture.flatten(0, 1)).view(*out.texture.shape[:2], -1)
            f_bar = net.projector(out.shape.mean((0, 1))[None])[0]      # (P,) f(S_bar), eq. 7
            l_st = shape_texture_loss(f_bar, f_s, f_t, p.margin)
            l_ss = shape_shape_loss(f_s, p.margin)
            return pretraining_loss(l_re, l_st, l_ss, (p.alpha_st, p.alpha_ss))

        hp = TrainParams(p.pretrain_epochs, p.pretrain_batch_size, p.pretrain_lr, p.weight_decay,
                         p.device)
        optimizer = torch.optim.Adam(net.parameters(), lr=hp.lr, weight_decay=hp.weight_decay,
                                     foreach=True)
        history = train_epochs(net, loss_of, n * p.pretrain_copies, hp, gen, optimizer)
        return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}, history

    def _rebuilt(self, out: torch.Tensor, onset: torch.Tensor) -> torch.Tensor:
        """R's output as an apex in [0, 1]: onset + correction (residual) or the image itself."""
        return (onset + out).clamp(0, 1) if self.params.residual else out

    def _pretrained_state(self, train: Samples, rng: np.random.Generator, fold_seed: int) -> None:
        """Pre-train for this fold, or reuse the weights of an identical pool (same seed)."""
        p = self.params
        pool = self._pool(train)
        check_pool(pool, train)
        seed = repeat_seed(rng)
        keys = ("pretrain_datasets", "pretrain_micro", "macro", "pretrain_epochs",
                "pretrain_batch_size", "pretrain_lr", "weight_decay", "alpha_st", "alpha_ss",
                "margin", "views", "noise_sigma", "contrast", "pretrain_copies", "rotation",
                "mirror", "pretrained", "device")
        key = (tuple(sorted(f"{c.dataset}/{c.clip_id}" for c in pool)), repr(asdict(self.arch)),
               repr([getattr(p, k) for k in keys]), seed)
        self.pool_size_ = len(pool)
        self.pool_macro_ = sum(c.macro for c in pool)
        if self._fold_dependent(pool, train):   # its own pool: pre-train, keep nothing
            self.scope_ = "per fold"
            state, history = self._pretrain(pool, fold_seed)
            self.pretrained_ = {"state": state, "history": history}
            return
        self.scope_ = "per seed, shared across folds"
        self.shared_ = key in _PRETRAINED
        if not self.shared_:
            _PRETRAINED[key] = dict(zip(("state", "history"), self._pretrain(pool, seed)))
        self.pretrained_ = _PRETRAINED[key]

    # ------------------------------------------------------------------ objective learning
    def fit(self, train: Samples, rng: np.random.Generator) -> MoExt:
        p = self.params
        if train.y is None:
            raise MerError("moext needs labelled training clips", fix="pass the training fold")
        seeded(rng)
        # both seeds are drawn whatever happens next, so a fold's numbers never depend on
        # whether its pre-trained weights came from the cache
        fold_seed, tune_seed = (int(v) for v in rng.integers(2**62, size=2))
        self.pretrained_ = None
        self.shared_ = False
        self.scope_ = "none"
        self.pool_size_ = self.pool_macro_ = 0
        self.recon_l1_ = self.copy_l1_ = self.recon_example_ = None   # set by predict_proba
        if p.pretrain:
            self._pretrained_state(train, rng, fold_seed)
        torch.manual_seed(tune_seed)            # pre-training moved torch's global generator
        gen = torch.Generator().manual_seed(tune_seed)
        k = len(train.classes)
        self.n_classes_ = k
        pre = PretrainNet(self.arch)
        if self.pretrained_ is not None:
            pre.load_state_dict(self.pretrained_["state"])
        elif p.pretrained:
            pre = self._new_pretrain_net()
        self.pre_ = pre.to(self.device).eval()  # kept for the held-out reconstruction check
        net = ClassifierNet(self.arch, k)
        net.load_pretrained(pre)
        self.net_ = net = net.to(self.device)
        pairs = augment_pairs(self._pairs(train.paths["crop"]), p.copies, p.rotation, p.mirror, rng)
        y = torch.as_tensor(np.repeat(train.y, p.copies), dtype=torch.long)  # (N c,)
        w = class_weights(train.y, k).to(self.device) if p.class_weight == "balanced" else None

        fixed, rest = net.separator.backbone[:p.freeze], net.separator.backbone[p.freeze:]
        for q in fixed.parameters():
            q.requires_grad_(False)
        trained = [q for q in net.parameters() if q.requires_grad]
        # frozen modules: their output once; none: the input itself, per batch (uint8 kept)
        g = self._fixed_features(fixed, pairs) if p.freeze else None    # (N c, 2, C, h, w)

        def loss_of(idx: torch.Tensor) -> torch.Tensor:
            gb = (g[idx] if g is not None else net_input(to_tensor(pairs[idx.numpy()])))
            gb = gb.to(self.device).flatten(0, 1)                       # (2B, C, h, w)
            s = net.separator.shape(rest(gb)).view(len(idx), 2, -1)     # (B, 2, dim)
            logits = net.head(net.extractor(s[:, 0], s[:, 1]))          # (B, K)
            return torch.nn.functional.cross_entropy(logits, y[idx].to(self.device), weight=w)

        optimizer = torch.optim.Adam(trained, lr=p.lr, weight_decay=p.weight_decay, foreach=True)
        self.history_ = train_epochs(net, loss_of, len(y), p, gen, optimizer)
        return self

    @torch.no_grad()
    def _fixed_features(self, fixed: torch.nn.Module, pairs: np.ndarray) -> torch.Tensor:
        """The frozen backbone modules' output for every frame, in eval mode (BN statistics of
        pre-training): (N, 2, S, S, 3) uint8 -> (N, 2, C, h, w)."""
        fixed.eval()
        out = [fixed(net_input(to_tensor(pairs[idx.numpy()]).flatten(0, 1).to(self.device))).cpu()
               for idx in batches(len(pairs), 64)]
        g = torch.cat(out)                                              # (2N, C, h, w)
        return g.view(len(pairs), 2, *g.shape[1:])

    # ------------------------------------------------------------------ prediction
    def predict_proba(self, test: Samples) -> np.ndarray:
        """Softmax of the classifier on each test clip's onset/apex; also measures the held-out
        apex reconstruction against "copy the onset" (labels unused) for :meth:`explain`."""
        x = to_tensor(self._pairs(test.paths["crop"]))                  # (n, 2, 3, S, S)
        net = self.net_.eval()

        def forward(idx: torch.Tensor) -> torch.Tensor:
            xb = net_input(x[idx].to(self.device))
            return torch.softmax(net(xb[:, 0], xb[:, 1]), 1)

        proba = predict_in_batches(forward, len(x), max(2, self.params.batch_size))
        self._reconstruction_check(x, test.meta["clip_id"].tolist())
        return proba.numpy().astype(np.float64)

    @torch.no_grad()
    def _reconstruction_check(self, x: torch.Tensor, ids: list[str]) -> None:
        """Mean L1 of R's apex and of the onset against the true apex, over held-out clips."""
        self.recon_l1_ = self.copy_l1_ = None
        self.recon_example_ = None
        if self.pretrained_ is None:
            return
        pre = self.pre_.eval()
        rebuilt = []
        for idx in batches(len(x), 16):
            xb = x[idx].to(self.device)                                 # (B, 2, 3, S, S)
            out = pre(net_input(xb))                                    # sets of m = 1 view
            rebuilt.append(self._rebuilt(out.reconstructed, xb[:, 0]).cpu())
        rebuilt = torch.cat(rebuilt)                                    # (n, 3, S, S)
        self.recon_l1_ = float((rebuilt - x[:, 1]).abs().mean())
        self.copy_l1_ = float((x[:, 0] - x[:, 1]).abs().mean())
        self.recon_example_ = {"clip_id": ids[0], "frames": (torch.stack(
            [x[0, 0], x[0, 1], rebuilt[0]]).permute(0, 2, 3, 1) * 255).round().byte().numpy()}

    def explain(self) -> dict:
        """Per fold: pre-training pool, whether its weights are per fold or per seed (``scope``) and
        whether this fold reused another fold's (``shared``), loss
        curves of both phases, held-out apex reconstruction L1 vs copying the onset."""
        pre = self.pretrained_
        return {"pretrained": pre is not None, "scope": self.scope_, "shared": bool(self.shared_),
                "pool_size": self.pool_size_, "pool_macro": self.pool_macro_,
                "pretrain_history": [round(v, 5) for v in pre["history"]] if pre else [],
                "history": [round(v, 5) for v in self.history_],
                "recon_l1": self.recon_l1_, "copy_onset_l1": self.copy_l1_,
                "recon_example": self.recon_example_}

    @classmethod
    def render(cls, explanations: dict[str, dict], samples: Samples, out: Path
               ) -> list[tuple[str, str]]:
        """``reconstruction.png``: held-out onset, apex and R's apex for a few folds, with the
        mean L1 of R against copying the onset; ``losses.png``: both phases' loss curves."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        made = []
        done = [(f, e) for f, e in explanations.items() if e.get("recon_example")]
        if done:
            picks = done[:4]
            fig, axes = plt.subplots(len(picks), 3, figsize=(6, 2 * len(picks)), squeeze=False)
            for row, (fold, e) in zip(axes, picks):
                for ax, img, title in zip(row, e["recon_example"]["frames"],
                                          ("onset", "apex", "R's apex")):
                    ax.imshow(img)
                    ax.set_title(f"{e['recon_example']['clip_id']}: {title}" if title == "onset"
                                 else title, fontsize=7)
                    ax.axis("off")
            fig.tight_layout()
            fig.savefig(out / "reconstruction.png", dpi=120)
            plt.close(fig)
            r = np.mean([e["recon_l1"] for _, e in done])
            c = np.mean([e["copy_onset_l1"] for _, e in done])
            made.append(("reconstruction.png", (
                f"held-out apex reconstruction (pre-trained F, E, R; first seed): mean L1 {r:.4f} "
                f"against {c:.4f} for copying the onset, over {len(done)} folds' test clips")))
        fig, ax = plt.subplots(1, 2, figsize=(8, 3))
        for e in explanations.values():
            if e["pretrain_history"]:
                ax[0].plot(e["pretrain_history"], color="C0", alpha=0.4)
            ax[1].plot(e["history"], color="C1", alpha=0.4)
        ax[0].set_title("pre-training loss (eq. 9)")
        ax[1].set_title("objective learning (cross-entropy)")
        for a in ax:
            a.set_xlabel("epoch")
        fig.tight_layout()
        fig.savefig(out / "losses.png", dpi=120)
        plt.close(fig)
        made.append(("losses.png", "training loss per epoch of every fold (first seed)"))
        return made
