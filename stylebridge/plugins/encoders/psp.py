"""pSp and e4e encoders (IR-SE50 + feature pyramid + 18 style heads).

Both encoders share the IR-SE50 backbone of :mod:`stylebridge.plugins.nets.irse` and
the same heads (``styles.0..17``: GradualStyleBlocks, ``latlayer1``/``latlayer2``: the
pyramid's lateral 1×1 convs); only the forward differs:

* ``psp`` (pixel2style2pixel ``GradualStyleEncoder``): ``w[:, i] = styles[i](f_i)``.
* ``e4e`` (encoder4editing ``Encoder4Editing``, inference stage): ``w[:, 0] = styles[0](c3)``
  and ``w[:, i] = w[:, 0] + styles[i](f_i)`` for ``i >= 1``.

with ``f_i = c3`` for ``i < 3``, ``p2 = up(c3) + latlayer1(c2)`` for ``3 <= i < 7`` and
``p1 = up(p2) + latlayer2(c1)`` for ``i >= 7`` (bilinear, ``align_corners=True``); ``c1``,
``c2``, ``c3`` are the outputs of backbone stages 2-4 (64/32/16 px at the 256 px input).
The inversion is ``w+ = codes + latent_avg`` (``start_from_latent_avg``), rendered by the
FFHQ StyleGAN2 with ``input_is_latent=True``.

Preprocessing: 256×256 with PIL's bilinear filter (``resize="pil-bilinear"``, upstream's
torchvision ``Resize((256, 256))`` on a PIL image: eladrich/pixel2style2pixel and
omertov/encoder4editing ``configs/transforms_config.py``, ``EncodeTransforms``), then
``(x - 0.5) / 0.5``; faces must be FFHQ-aligned (dlib 68 landmarks).  Config ``resize``
(one of :data:`stylebridge.core.resize.RESIZE_FILTERS`) overrides the filter.

Converters for the official files: :mod:`stylebridge.plugins.converters.psp`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylebridge.core.interfaces import (
    Encoder,
    Inversion,
    Preprocessing,
)
from stylebridge.core.schema import N_LATENT, STYLE_DIM, Field
from stylebridge.core.stylegan2.layers import EqualLinear
from stylebridge.plugins.nets.irse import (
    IRSE50_UNITS,
    IRSE50_WIDTHS,
    IRSEBackbone,
)
from stylebridge.registry import hookimpl

Mode = Literal["psp", "e4e"]
COARSE_END = 3  # styles 0..2 read c3
MIDDLE_END = 7  # styles 3..6 read p2, 7.. read p1

PSP_LICENCE = ("licence: pSp (eladrich/pixel2style2pixel) code and weights are MIT-licensed; "
               "the embedded FFHQ StyleGAN2 decoder is NVIDIA's (Source Code License-NC)")
E4E_LICENCE = ("licence: e4e (omertov/encoder4editing) code and weights are MIT-licensed; "
               "the embedded FFHQ StyleGAN2 decoder is NVIDIA's (Source Code License-NC)")


# ---------------------------------------------------------------------------------------------
# Architecture


class GradualStyleBlock(nn.Module):
    """``log2(spatial)`` × (Conv3×3 stride 2 + LeakyReLU(0.01)) to 1×1, then EqualLinear.

    ``[B, in_ch, spatial, spatial]`` → ``[B, out_ch]``.
    """

    def __init__(self, in_ch: int, out_ch: int, spatial: int) -> None:
        super().__init__()
        n = round(math.log2(spatial)) if spatial >= 1 else -1
        if n < 1 or 2**n != spatial:
            raise ValueError(f"GradualStyleBlock needs a power-of-two spatial size >= 2, got {spatial}")
        self.out_ch = out_ch
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, 2, 1), nn.LeakyReLU(0.01)]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_ch, out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.convs(x).reshape(x.shape[0], self.out_ch))


def _upsample_add(x: Tensor, y: Tensor) -> Tensor:
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


class IRSEStyleNet(IRSEBackbone):
    """The official ``encoder`` module (GradualStyleEncoder / Encoder4Editing) with upstream key names.

    ``forward(x)`` takes ``[B, 3, input_size, input_size]`` in ``[-1, 1]`` and returns
    ``(codes [B, n_styles, style_dim], c1 [B, widths[1], input_size/4, input_size/4])``;
    ``codes`` do not include ``latent_avg``.
    """

    def __init__(self, mode: Mode, n_styles: int = 18, style_dim: int = 512, input_size: int = 256,
                 widths: Sequence[int] = IRSE50_WIDTHS, units: Sequence[int] = IRSE50_UNITS) -> None:
        super().__init__(widths, units)
        if mode not in ("psp", "e4e"):
            raise ValueError(f"mode must be 'psp' or 'e4e', got {mode!r}")
        if len(self.widths) != 4:
            raise ValueError(f"the pSp/e4e feature pyramid needs 4 backbone stages, got {len(self.widths)}")
        if input_size < 32 or input_size & (input_size - 1):
            raise ValueError(f"input_size must be a power of two >= 32, got {input_size}")
        if n_styles < 1:
            raise ValueError(f"n_styles must be >= 1, got {n_styles}")
        self.mode: Mode = mode
        self.n_styles = int(n_styles)
        self.style_dim = int(style_dim)
        self.input_size = int(input_size)
        top = self.widths[3]
        self.styles = nn.ModuleList()
        for i in range(self.n_styles):
            spatial = input_size // (16 if i < COARSE_END else 8 if i < MIDDLE_END else 4)
            self.styles.append(GradualStyleBlock(top, self.style_dim, spatial))
        self.latlayer1 = nn.Conv2d(self.widths[2], top, 1)
        self.latlayer2 = nn.Conv2d(self.widths[1], top, 1)

    def arch_config(self) -> dict[str, Any]:
        return {"n_styles": self.n_styles, "style_dim": self.style_dim,
                "input_size": self.input_size, "widths": list(self.widths),
                "units": list(self.units)}

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _, c1, c2, c3 = self.stages(x)
        feats: list[Tensor] = []
        p2 = p1 = None
        for i in range(self.n_styles):
            if i < COARSE_END:
                f = c3
            elif i < MIDDLE_END:
                if p2 is None:
                    p2 = _upsample_add(c3, self.latlayer1(c2))
                f = p2
            else:
                if p1 is None:
                    if p2 is None:
                        p2 = _upsample_add(c3, self.latlayer1(c2))
                    p1 = _upsample_add(p2, self.latlayer2(c1))
                f = p1
            feats.append(f)
        if self.mode == "psp":
            codes = [style(f) for style, f in zip(self.styles, feats, strict=True)]
        else:
            w0 = self.styles[0](feats[0])
            codes = [w0] + [w0 + self.styles[i](feats[i]) for i in range(1, self.n_styles)]
        return torch.stack(codes, dim=1), c1


class IRSEStyleEncoder(Encoder):
    """Shared by ``psp``, ``e4e`` and ``styleres``: ``encoder`` (:class:`IRSEStyleNet`) + ``latent_avg``.

    The state dict is ``encoder.*`` (the official ``encoder.*`` / StyleRes ``e4e.*``
    tensors, unchanged) plus the buffer ``latent_avg`` ``[n_styles, style_dim]``.
    """

    mode: ClassVar[Mode] = "e4e"
    requires_weights: ClassVar[bool] = True
    #: the upstream input resize (:mod:`stylebridge.core.resize`); config ``resize`` overrides it
    resize_filter: ClassVar[str] = "pil-bilinear"
    config_schema: ClassVar[Mapping[str, Field]] = {
        "n_styles": N_LATENT, "style_dim": STYLE_DIM,
        "input_size": Field("int", 16, 1024, pow2=True),
        "widths": Field("ints", 16, 2048, max_len=8), "units": Field("ints", 1, 64, max_len=8),
    }

    def __init__(self, n_styles: int = 18, style_dim: int = 512, input_size: int = 256,
                 widths: Sequence[int] = IRSE50_WIDTHS, units: Sequence[int] = IRSE50_UNITS,
                 resize: str | None = None) -> None:
        super().__init__()
        self.preprocessing = Preprocessing(size=int(input_size),
                                           resize=resize or self.resize_filter)
        self.encoder = IRSEStyleNet(self.mode, n_styles, style_dim, input_size, widths, units)
        self.register_buffer("latent_avg", torch.zeros(int(n_styles), int(style_dim)))

    def config(self) -> dict[str, Any]:
        extra = ({} if self.preprocessing.resize == self.resize_filter
                 else {"resize": self.preprocessing.resize})
        return {**self.encoder.arch_config(), **extra}

    def codes(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Images in ``[0, 1]`` → ``(w+ [B, n_styles, style_dim], c1)``; ``w+`` includes ``latent_avg``."""
        x = self.preprocessing(images)
        codes, c1 = self.encoder(x)
        return codes + self.latent_avg.to(codes.dtype), c1

    def encode(self, images: Tensor) -> Inversion:
        w_plus, _ = self.codes(images)
        return Inversion(w_plus=w_plus)


class PSPEncoder(IRSEStyleEncoder):
    """pSp (pixel2style2pixel GradualStyleEncoder, IR-SE50): 18 independent style heads."""

    name = "psp"
    description = "pSp encoder (IR-SE50 + FPN, 18 independent style heads), w+ only"
    mode = "psp"
    licence: ClassVar[str] = PSP_LICENCE


class E4EEncoder(IRSEStyleEncoder):
    """e4e (encoder4editing Encoder4Editing, IR-SE50): base code w0 plus per-layer offsets."""

    name = "e4e"
    description = "e4e encoder (IR-SE50 + FPN, w0 + per-layer deltas), w+ only"
    mode = "e4e"
    licence: ClassVar[str] = E4E_LICENCE


@hookimpl
def register_encoders(register: Any) -> None:
    register(PSPEncoder)
    register(E4EEncoder)
