"""The annotation-mimicking network (mimic): AU split and Region Replacing, WSCL against its loop
reference, module shapes (Table 1, AWM, shuffle attention), input assembly, AU-CAM on a trained
model, and the method interface end to end on tiny synthetic clips."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from mer.errors import MerError
from mer.io import save_npz
from mer.methods import mimic_cam
from mer.methods.mimic import (
    Mimic,
    assemble,
    au_number,
    au_regions,
    flow_channel,
    random_erase,
    region_replace,
)
from mer.methods.mimic_losses import jaccard, weighted_ce, wscl, wscl_loop
from mer.methods.mimic_model import AreaWeightedModule, MimicNet, ShuffleAttention
from mer.methods.registry import Samples, build
from mer.nn.fit import TrainParams, seeded, train_epochs

CLASSES = ["happiness", "disgust", "surprise"]
AUS = {0: ["6", "R12"], 1: ["4", "L10"], 2: ["1", "2", "26"]}   # per class, as in the manifest


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # conftest.py


# ------------------------------------------------------------------ AU split, Region Replacing
def test_au_tokens_lose_their_side_and_split_into_eyes_and_mouth():
    assert [au_number(t) for t in ("L10", "R12", "4", "r2", "012")] == [10, 12, 4, 2, 12]
    eyes, mouth = au_regions(["1", "L2", "R12", "4", "53", "25", "9", "R6"])
    assert eyes == {1, 2, 4, 6, 53}              # brows, cheek raiser; head position in both
    assert mouth == {9, 12, 25, 53}
    with pytest.raises(MerError, match="cannot read action unit"):
        au_number("AU?")


def test_region_replacing_keeps_the_class_and_merges_au_sets():
    n = 9
    y = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 0])                   # class 2 has one clip only
    x = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 1, 4, 4).clone()
    eyes = torch.zeros(n, 6, dtype=torch.bool)
    mouth = torch.zeros(n, 6, dtype=torch.bool)
    eyes[torch.arange(n), torch.arange(n) % 3] = True               # AUs 0..2: eye AUs
    mouth[torch.arange(n), 3 + torch.arange(n) % 3] = True          # AUs 3..5: mouth AUs
    idx = torch.tensor([0, 3, 7, 8, 5, 1, 2])
    xb, au, donors = region_replace(x, y, eyes, mouth, idx, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(y[donors], y[idx])                           # same class, always
    assert donors[2] == 7                                           # a lone clip is its own donor
    others = [b for b in range(len(idx)) if b != 2]
    assert all(donors[b] != idx[b] for b in others)                 # everyone else: another clip
    assert torch.equal(xb[:, 0, :2], x[idx, 0, :2])                 # eyes half kept
    assert torch.equal(xb[:, 0, 2:], x[donors, 0, 2:])              # mouth half from the donor
    assert torch.equal(au, eyes[idx] | mouth[donors])
    assert (au.sum(1) == 2).all()                                   # one eye AU + one mouth AU
    keep, au0, d0 = region_replace(x, y, eyes, mouth, idx, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(d0, idx) and torch.equal(keep, x[idx])
    assert torch.equal(au0, eyes[idx] | mouth[idx])
    # over many draws the donors of a class spread over its other members
    seen = {int(region_replace(x, y, eyes, mouth, torch.tensor([3]), 1.0,
                               torch.Generator().manual_seed(s))[2]) for s in range(40)}
    assert seen == {4, 5, 6}


def test_random_erasing_zeroes_one_rectangle_per_chosen_image():
    x = torch.ones(64, 2, 16, 16)
    out = random_erase(x, 0.5, torch.Generator().manual_seed(1))
    erased = (out == 0).any(3).any(2)[:, 0]                         # (N,)
    assert 15 < int(erased.sum()) < 49                              # about half
    for img in out[erased]:
        zero = (img[0] == 0).nonzero()
        r0, c0 = zero.min(0).values
        r1, c1 = zero.max(0).values
        assert (img[:, r0:r1 + 1, c0:c1 + 1] == 0).all()            # a filled rectangle
        assert 0.02 * 256 * 0.5 <= len(zero) <= 0.33 * 256 * 1.5    # torchvision's area range
    assert torch.equal(out[~erased], x[~erased])


# ------------------------------------------------------------------ losses
def test_jaccard_similarity_is_eq4():
    au = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    w = jaccard(au)
    assert w[0, 1] == pytest.approx(1 / 3) and w[0, 3] == 1.0 and w[0, 0] == 1.0
    assert w[2].tolist() == [0.0, 0.0, 0.0, 0.0]                    # empty sets: no similarity
    assert torch.equal(w, w.T)


def test_wscl_equals_the_loop_reference_values_and_gradients():
    gen = torch.Generator().manual_seed(3)
    sets = [{"1", "2"}, {"2"}, {"4", "7"}, {"12"}, {"1", "2", "4"}, {"7"}, set()]
    vocab = sorted(set().union(*sets))
    au = torch.tensor([[a in s for a in vocab] for s in sets])
    f1 = torch.randn(len(sets), 6, generator=gen, requires_grad=True)
    f2 = f1.detach().clone().requires_grad_(True)
    fast = wscl(f1, au, 0.2)
    slow = wscl_loop(f2, sets, 0.2)
    fast.backward()
    slow.backward()
    assert fast.item() > 0
    assert fast.item() == pytest.approx(slow.item(), rel=1e-5)
    assert torch.allclose(f1.grad, f2.grad, atol=1e-6)
    assert f1.grad[3].abs().sum() > 0            # no positive of its own, still a negative of others


def test_wscl_is_lower_when_features_follow_au_similarity():
    au = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.bool)
    aligned = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    crossed = aligned[[0, 2, 1, 3]]
    assert wscl(aligned, au, 0.1) < wscl(crossed, au, 0.1) - 1.0


def test_weighted_ce_uses_eq6_weights():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    w = torch.tensor([1.0, 3.0])
    nll = -torch.log_softmax(logits, 1)[torch.arange(3), y]
    expected = (w[y] * nll).sum() / w[y].sum()
    assert weighted_ce(logits, y, w).item() == pytest.approx(expected.item())
    assert weighted_ce(logits, y, w).item() != pytest.approx(nll.mean().item())


# ------------------------------------------------------------------ modules
def test_table1_shapes_two_branches_and_awm():
    net = MimicNet(5, width=64).eval()                     # ResNet-18 width, ImageNet stem
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        base = net.base(x[:, :, :32])
        out = net(x)
    assert base.shape == (2, 128, 4, 8)                    # layer 2: 128 channels, /8 of the region
    assert [m.shape for m in out.maps] == [(2, 512, 1, 2)] * 2    # layer 4: 512 channels, /32
    assert out.fused.shape == (2, 1024) and out.area_weight.shape == (2, 1024)
    assert [z.shape for z in out.logits] == [(2, 5), (2, 5)]
    assert 0 < out.area_weight.min() and out.area_weight.max() < 1          # sigmoid, no softmax
    assert net.awm.net[0].in_features == 1024 and net.awm.net[0].out_features == 1024   # h = 1024
    # the branches share the base but not their weights
    assert net.eyes[0][0].conv1.weight.data_ptr() != net.mouth[0][0].conv1.weight.data_ptr()
    # the mouth branch sees only the lower half: changing the upper half leaves it alone
    y = x.clone()
    y[:, :, :32] = 0
    with torch.no_grad():
        other = net(y)
    assert torch.equal(other.maps[1], out.maps[1]) and not torch.equal(other.maps[0], out.maps[0])


def test_awm_is_eq1_to_3_and_ablations_change_the_fusion():
    awm = AreaWeightedModule(4, 3)
    xe, xm = torch.rand(2, 4), torch.rand(2, 4)
    fused, weight = awm(xe, xm)
    cat = torch.cat([xe, xm], 1)
    assert torch.allclose(weight, torch.sigmoid(awm.net(cat)))
    assert torch.allclose(fused, cat * weight)
    x = torch.randn(2, 3, 32, 32)
    plain = MimicNet(3, width=8, awm=False).eval()
    with torch.no_grad():
        out = plain(x)
    assert out.area_weight is None and out.fused.shape == (2, 128)
    single = MimicNet(3, width=8, dual=False).eval()
    with torch.no_grad():
        out = single(x)
    assert len(out.logits) == 1 and out.fused.shape == (2, 64) and len(out.maps) == 1


def test_shuffle_attention_has_its_own_weights_per_group():
    sa = ShuffleAttention(16, groups=2)
    assert sa.c_w.shape == (2, 4, 1, 1) and sa.s_b.shape == (2, 4, 1, 1)
    x = torch.randn(1, 8, 5, 5)
    x = torch.cat([x, x], 1)                               # both groups see identical features
    with torch.no_grad():
        shared = sa(x)
        sa.c_b[1] = -4.0                                   # only group 1's channel gate changes
        sa.s_w[1] = 2.0
        own = sa(x)
    changed = (own - shared).abs().amax((0, 2, 3)) > 1e-6  # (16,) output channels that moved
    assert int(changed.sum()) == 8                         # exactly group 1's 8 channels
    with pytest.raises(ValueError):
        ShuffleAttention(12, groups=4)


# ------------------------------------------------------------------ input assembly
def test_flow_channel_zeroes_weak_motion_and_scales_to_unit_range():
    m = np.zeros((8, 8), np.float32)
    m[2:4, 2:4] = 4.0
    m[6, 6] = 0.2                                          # mean 0.2656; 1.5 x mean = 0.398
    ch = flow_channel(m, 8, 1.5)
    assert ch.max() == 1.0 and ch[6, 6] == 0.0 and ch[2, 2] == 1.0
    assert flow_channel(np.zeros((8, 8)), 4, 1.5).tolist() == np.zeros((4, 4)).tolist()


def _clip_arrays(cls: int, rng: np.random.Generator, size: int = 32):
    """A clip whose motion sits where its class's AUs are: upper, lower or both halves."""
    frames = rng.integers(90, 160, (3, 48, 48, 3), dtype=np.uint8)
    mag = rng.gamma(1.0, 0.1, (2, size, size)).astype(np.float32)
    rows = {0: slice(20, 28), 1: slice(4, 12), 2: slice(6, 26)}[cls]
    cols = {0: slice(6, 26), 1: slice(4, 28), 2: slice(12, 20)}[cls]
    mag[:, rows, cols] += 2.0
    frames[1, 2 * rows.start:2 * rows.stop, 2 * cols.start:2 * cols.stop] += 60
    magnify = {"frames": frames, "keys": np.array(["onset", "apex", "offset"]),
               "index": np.array([0, 5, 9]), "alpha": np.float64(3.0)}
    flow = {"magnitude": mag.astype(np.float16), "pairs": np.array(["onset-apex", "offset-apex"])}
    return magnify, flow


def test_assembled_input_has_the_documented_channels():
    magnify, flow = _clip_arrays(0, np.random.default_rng(0))
    x = assemble(magnify, flow, 32, 1.5)
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    gray = cv2.cvtColor(magnify["frames"][1], cv2.COLOR_RGB2GRAY)   # the apex, not the onset
    assert np.allclose(x[0], cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA) / 255, atol=1e-6)
    assert x[1:].max() == 1.0 and x[1:].min() == 0.0
    assert x[1, 20:28, 6:26].mean() > 0.3 and x[1, :10].mean() < 0.05   # motion kept, noise gone
    with pytest.raises(MerError, match="no 'apex'"):
        assemble({**magnify, "keys": np.array(["onset", "peak", "offset"])}, flow, 32, 1.5)


# ------------------------------------------------------------------ method
QUICK = {"size": 32, "width": 4, "blocks": [1, 1, 1, 1], "sa_groups": 2, "awm_hidden": 32,
         "head_hidden": 16, "epochs": 12, "batch_size": 16, "lr": 0.01, "t0": 12, "device": "cpu"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("mimic")
    rng = np.random.default_rng(0)
    rows, paths = [], {"magnify": [], "flow": []}
    y = np.tile(np.arange(3), 12)                          # 6 subjects x 6 clips
    for i, cls in enumerate(y):
        clip = f"s{i // 6}_c{i}"
        magnify, flow = _clip_arrays(int(cls), rng)
        for kind, arrays in (("magnify", magnify), ("flow", flow)):
            path = root / kind / f"{clip}.npz"
            path.parent.mkdir(exist_ok=True)
            save_npz(path, **arrays)
            paths[kind].append(path)
        rows.append({"clip_id": clip, "dataset": "toy", "corpus": "toy", "subject": f"s{i // 6}",
                     "aus": AUS[int(cls)]})
    return Samples(pd.DataFrame(rows), y, CLASSES, paths)


def test_method_learns_predicts_repeats_and_draws(clips, tmp_path):
    train_idx, test_idx = np.arange(24), np.arange(24, 36)          # subjects 0-3 | 4-5
    train, test = clips.subset(train_idx), clips.subset(test_idx, hide_labels=True)
    assert test.y is None and test.meta["aus"].isna().all()
    model = build("mimic", QUICK).fit(train, np.random.default_rng(0))
    proba = model.predict_proba(test)
    assert proba.shape == (12, 3) and np.allclose(proba.sum(1), 1.0)
    assert (proba.argmax(1) == clips.y[test_idx]).mean() >= 0.75
    assert model.history_[-1] < 0.7 * model.history_[0]
    short = {**QUICK, "epochs": 2}
    first, again, other = (build("mimic", short).fit(train, np.random.default_rng(s)).predict_proba(test)
                           for s in (0, 0, 1))
    assert np.array_equal(first, again)                              # bit for bit under a seed
    assert not np.array_equal(first, other)
    e = model.explain()
    assert e["cam"].shape == (2, 32, 32) and len(e["cam_ids"]) == 2
    assert e["train_fused"].shape == (24, 64) and e["test_fused"].shape == (12, 64)
    assert len(e["area_weight"]) == 2 and len(e["history"]) == QUICK["epochs"]
    made = Mimic.render({"toy/s4": e, "toy/s5": e}, clips, tmp_path)
    assert [name for name, _ in made] == ["au_cam.png", "tsne.png"]
    assert all((tmp_path / name).stat().st_size > 5000 for name, _ in made)


def test_au_cam_has_the_input_size_and_is_not_constant_after_training():
    gen = seeded(np.random.default_rng(0))
    y = torch.arange(24) % 2
    x = torch.randn(24, 3, 48, 48, generator=gen) * 0.1
    x[y == 0, :, 6:14, 10:30] += 2.0                      # class 0 moves in the eyes half
    x[y == 1, :, 30:40, 8:40] += 2.0                      # class 1 in the mouth half
    # the 3x3/1 stem keeps 3x6 cells per region after layer 4 (the ImageNet stem: 1x1 at 48 px)
    net = MimicNet(2, width=4, blocks=(1, 1, 1, 1), small_input=True, sa_groups=2, awm_hidden=16,
                   head_hidden=8)
    train_epochs(net, lambda idx: sum(torch.nn.functional.cross_entropy(z, y[idx])
                                      for z in net(x[idx]).logits),
                 len(y), TrainParams(epochs=6, batch_size=8, lr=0.01), gen)
    cam = mimic_cam.au_cam(net, x[:4])
    assert cam.shape == (4, 48, 48) and cam.min() >= 0
    for c in cam:                                         # a map within each region, not a constant
        assert float(c[:24].max() - c[:24].min()) > 1e-4 * float(c.max())
        assert float(c[24:].max() - c[24:].min()) > 1e-4 * float(c.max())
    assert not net.training                               # left as it was found


def test_bad_params_stop_with_one_message():
    with pytest.raises(MerError, match="size must be"):
        build("mimic", {"size": 33})
    with pytest.raises(MerError, match="au_lambda"):
        build("mimic", {"au_lambda": 1.5})
    with pytest.raises(MerError, match="pretrained"):
        build("mimic", {"pretrained": True, "width": 16})
    with pytest.raises(MerError):
        build("mimic", {"region_replace": 0.5})                     # a typo is not ignored
