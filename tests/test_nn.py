"""The shared neural-training pieces: loop, seeding, class weights, ResNet trunks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from mer.errors import MerError
from mer.nn import resnet as rn
from mer.nn.fit import TrainParams, batches, class_weights, predict_in_batches, seeded, train_epochs


def test_class_weights_follow_eq6_and_zero_absent_classes():
    w = class_weights(np.array([0, 0, 0, 0, 1, 1, 3]), 4)
    assert w.tolist() == [1.0, 2.0, 0.0, 4.0]


def test_batches_cover_every_index_once_and_never_leave_a_single_sample():
    gen = torch.Generator().manual_seed(0)
    got = list(batches(9, 4, gen))
    assert [len(b) for b in got] == [4, 5]                      # 4 + 4 + 1 -> 4 + 5
    assert sorted(torch.cat(got).tolist()) == list(range(9))
    assert torch.cat(list(batches(9, 4))).tolist() == list(range(9))   # no generator: in order


def _toy(rng_seed: int):
    gen = seeded(np.random.default_rng(rng_seed))
    x = torch.randn(64, 5, generator=torch.Generator().manual_seed(1))
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2))
    loss = nn.CrossEntropyLoss()
    history = train_epochs(model, lambda idx: loss(model(x[idx]), y[idx]), len(x),
                           TrainParams(epochs=40, batch_size=16, lr=0.02, weight_decay=0.0), gen)
    return model, x, y, history


def test_training_loop_learns_and_repeats_bit_for_bit_under_a_seed():
    model, x, y, history = _toy(3)
    assert history[-1] < 0.5 * history[0]
    assert not model.training                                     # left in eval mode
    pred = predict_in_batches(lambda idx: model(x[idx]), len(x), 10).argmax(1)
    assert (pred == y).float().mean() > 0.9
    again = _toy(3)[0]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 again.state_dict().values()))
    other = _toy(4)[0]
    assert not torch.equal(model[0].weight, other[0].weight)


def test_training_loop_stops_on_divergence():
    model = nn.Linear(2, 1)
    with pytest.raises(MerError, match="diverged"):
        train_epochs(model, lambda idx: model(torch.full((len(idx), 2), float("nan"))).sum(), 4,
                     TrainParams(epochs=1, batch_size=2), torch.Generator())


def test_resnet18_trunk_matches_torchvision_and_loads_its_weights_by_name(monkeypatch):
    ours = rn.resnet()                                             # width 64, ImageNet stem
    ref = torchvision.models.resnet18()
    names = {"conv1": "0.0", "bn1": "0.1", **{f"layer{i}": str(i) for i in range(1, 5)}}
    monkeypatch.setattr(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict",
                        lambda self, progress=False: ref.state_dict())
    ours.load_state_dict(rn.imagenet_state(names), strict=True)
    ref.fc = nn.Identity()
    ours.eval(), ref.eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(ours(x), ref(x), atol=1e-5)


def test_small_input_trunk_keeps_resolution_and_scales_width():
    trunk = rn.resnet(in_channels=1, width=8, blocks=(1, 1), small_input=True)
    assert trunk(torch.zeros(2, 1, 14, 12)).shape == (2, 16)
    assert rn.stem(3, 8, small_input=True)(torch.zeros(1, 3, 14, 12)).shape == (1, 8, 14, 12)


def test_offline_imagenet_weights_stop_with_one_message(monkeypatch):
    def offline(self, progress=False):
        raise OSError("no network")
    monkeypatch.setattr(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict",
                        offline)
    with pytest.raises(MerError, match="pretrained: false"):
        rn.imagenet_state({"conv1": "0.0"})
