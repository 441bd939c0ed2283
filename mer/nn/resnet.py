"""ResNet trunks with a width knob, built from torchvision's own ``BasicBlock``.

Why not ``torchvision.models.resnet18`` as is: MER inputs are small (MAN's 14x12-pixel RoIs, the
quick profile's 64-112 px faces) and CPU budgets tight, so the trunk needs a base width other than
64 and, for small inputs, a stem without the 7x7 stride-2 convolution and max-pool that would
shrink a 40-pixel eye region to nothing.  At width 64 with the standard stem the layers are
torchvision's ResNet-18 exactly, so its ImageNet weights load by name (:func:`load_imagenet`).
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1

from mer.errors import MerError


def _layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """torchvision's ``ResNet._make_layer`` for BasicBlocks: a projection when the shape changes."""
    down = None
    if stride != 1 or inplanes != planes:
        down = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
    return nn.Sequential(BasicBlock(inplanes, planes, stride, down),
                         *[BasicBlock(planes, planes) for _ in range(blocks - 1)])


def stem(in_channels: int = 3, width: int = 64, small_input: bool = False) -> nn.Sequential:
    """ImageNet stem (7x7/2 conv + 3x3/2 max-pool: /4) or, for small inputs, a 3x3/1 conv (/1)."""
    if small_input:
        return nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                             nn.BatchNorm2d(width), nn.ReLU(inplace=True))
    return nn.Sequential(nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                         nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))


def layers(width: int = 64, blocks: tuple[int, ...] = (2, 2, 2, 2)) -> list[nn.Sequential]:
    """ResNet stages 1..len(blocks): widths w, 2w, 4w, 8w; every stage after the first halves H, W.

    ResNet-18 is ``blocks=(2, 2, 2, 2)``; shallower trunks drop trailing stages, e.g. ``(2, 2)``.
    """
    out, inplanes = [], width
    for i, n in enumerate(blocks):
        planes = width * 2 ** i
        out.append(_layer(inplanes, planes, n, 1 if i == 0 else 2))
        inplanes = planes
    return out


def resnet(in_channels: int = 3, width: int = 64, blocks: tuple[int, ...] = (2, 2, 2, 2),
           small_input: bool = False) -> nn.Sequential:
    """Stem + stages + global average pool + flatten: (N, C, H, W) -> (N, width * 2**(len(blocks)-1))."""
    return nn.Sequential(stem(in_channels, width, small_input), *layers(width, blocks),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


def imagenet_state(layer_names: dict[str, str]) -> dict:
    """ResNet-18's ImageNet weights (torchvision; downloaded once into torch's cache), renamed.

    ``layer_names`` maps torchvision prefixes (``conv1``, ``bn1``, ``layer1``..``layer4``) to the
    caller's module prefixes; other tensors (the ``fc`` head) are dropped.  Needs internet the
    first time: offline it stops with one message instead of silently training from scratch.
    """
    from torchvision.models import ResNet18_Weights
    weights = ResNet18_Weights.IMAGENET1K_V1
    try:
        state = weights.get_state_dict(progress=False)
    except Exception as err:  # urllib's URLError, socket errors, ...: all mean "not available"
        raise MerError(f"ImageNet ResNet-18 weights unavailable ({type(err).__name__}: {err})",
                       weights.url, "go online once (torch caches the file under ~/.cache/torch/hub) "
                       "or set the method's pretrained: false") from None
    out = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in layer_names:
            out[f"{layer_names[head]}.{rest}"] = value
    return out
