"""insightface ArcFace IResNet building blocks, laid out as FSE (and SFE) use them.

The Feature-Style Encoder (InterDigitalInc/FeatureStyleEncoder, ``fs_encoder_v2``)
takes the children of an insightface ``iresnet50`` and keeps them as:

* ``conv``   = ``Sequential(conv1 3×3 s1 3→w, bn1, prelu)`` (keys ``conv.0/1/2``);
* ``block_1 .. block_4`` = ``layer1 .. layer4``: stages of :class:`IBasicBlock` with
  ``w, 2w, 4w, 8w`` channels (``w = 64``), ``(3, 4, 14, 3)`` blocks (iresnet50),
  stride 2 in the first block of every stage.  At a 256×256 input the stage
  outputs are 128, 64, 32 and 16 px.

The ArcFace head (``bn2``, ``dropout``, ``fc``, ``features``) is not used.  Key names
inside a stage are the insightface ones (``block_1.0.bn1.weight``,
``block_1.0.downsample.0.weight``, ...), so an FSE state dict loads unchanged;
:func:`insightface_to_fse` renames an insightface ``backbone.pth`` state dict
(``conv1``/``bn1``/``prelu``/``layerN``) to these names, e.g. to start training an
FSE from ArcFace weights as the upstream code does.

Shapes: images ``[B, 3, H, W]`` (FSE: ``H = W = 256``, normalised to ``[-1, 1]``);
stage ``i`` (1-based) returns ``[B, w·2^(i-1), H/2^i, W/2^i]`` with the default
strides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from torch import Tensor, nn

IRESNET50_LAYERS: tuple[int, int, int, int] = (3, 4, 14, 3)
BN_EPS = 1e-5


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3×3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1×1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class IBasicBlock(nn.Module):
    """insightface's pre-activation residual block (no squeeze-excitation).

    ``out = bn3(conv2_s(prelu(bn2(conv1(bn1(x)))))) + downsample(x)``; ``conv2`` carries
    the stride, ``downsample`` (1×1 conv with the stride + BN) exists when the stride
    or the channel count changes.  ``[B, inplanes, H, W] → [B, planes, H/s, W/s]``.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=BN_EPS)
        self.conv1 = conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(conv1x1(inplanes, planes, stride),
                                            nn.BatchNorm2d(planes, eps=BN_EPS))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


def stem(width: int = 64, in_channels: int = 3) -> nn.Sequential:
    """ArcFace's input layer ``conv1 (3×3, stride 1) → bn1 → prelu``: keys ``0``, ``1``, ``2``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(width, eps=BN_EPS),
        nn.PReLU(width),
    )


def make_stage(inplanes: int, planes: int, blocks: int, stride: int = 2) -> nn.Sequential:
    """One IResNet stage: ``blocks`` :class:`IBasicBlock` s, the first with ``stride``."""
    if blocks < 1:
        raise ValueError(f"a stage needs at least one block, got {blocks}")
    layers = [IBasicBlock(inplanes, planes, stride)]
    layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def stage_channels(width: int = 64) -> tuple[int, int, int, int]:
    """Output channels of the four stages: ``(w, 2w, 4w, 8w)`` (64..512 for ArcFace)."""
    return (width, 2 * width, 4 * width, 8 * width)


def make_stages(
    width: int = 64,
    layers: Sequence[int] = IRESNET50_LAYERS,
    strides: Sequence[int] = (2, 2, 2, 2),
) -> list[nn.Sequential]:
    """The four stages ``layer1 .. layer4`` of an IResNet whose stem has ``width`` channels."""
    if len(layers) != 4 or len(strides) != 4:
        raise ValueError(f"expected 4 stages, got layers={list(layers)} strides={list(strides)}")
    channels = stage_channels(width)
    inplanes, stages = width, []
    for planes, blocks, stride in zip(channels, layers, strides, strict=True):
        stages.append(make_stage(inplanes, planes, int(blocks), int(stride)))
        inplanes = planes
    return stages


_LAYER_RE = re.compile(r"^layer([1-4])\.(.+)$")
_STEM = {"conv1.": "conv.0.", "bn1.": "conv.1.", "prelu.": "conv.2."}
_HEAD = ("bn2.", "dropout.", "fc.", "features.")


def insightface_to_fse(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename an insightface IResNet state dict (``backbone.pth``) to FSE's names.

    ``conv1/bn1/prelu`` → ``conv.0/1/2``, ``layerN.*`` → ``block_N.*``; the ArcFace
    head (``bn2``, ``fc``, ``features``) is dropped.  Unknown keys raise ``KeyError``.
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith(_HEAD):
            continue
        match = _LAYER_RE.match(key)
        if match:
            out[f"block_{match.group(1)}.{match.group(2)}"] = value
            continue
        for old, new in _STEM.items():
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            raise KeyError(f"not an insightface IResNet key: {key!r}")
    return out
