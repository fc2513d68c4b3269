"""FSE, the Feature-Style Encoder (Xu et al., ECCV 2022; InterDigitalInc/FeatureStyleEncoder).

Network (upstream ``fs_encoder_v2`` with ``configs/001.yaml``: 18 styles, ``fs_stride`` 2),
shapes at the official size::

    x [B,3,256,256] ─ conv (ArcFace stem, 3→64) ─ block_1 [B,64,128,128] ─ block_2 [B,128,64,64]
                    ─ block_3 [B,256,32,32] ─ block_4 [B,512,16,16]
    F   = content_layer(block_3 out)         BN(256)→conv3×3 256→512→BN→PReLU
                                             →conv3×3 512→512 stride 2→BN   [B,512,16,16]
    enc = styles.i(cat(avgpool3×3(block_1..4)).flatten())   Linear(960·9=8640 → 512) × 18
    w+  = enc + latent_avg                                              [B,18,512]

The backbone is insightface's ArcFace iresnet50 (:mod:`stylebridge.plugins.nets.iresnet`).
``state_dict()`` keys are exactly the upstream ``143_enc.pth`` keys plus our buffer
``latent_avg`` ``[n_latent, style_dim]``, which upstream lives in the pSp FFHQ
checkpoint (``psp_ffhq_encode.pt['latent_avg']``), not in the FSE file.

**Input.**  Upstream ``test.py`` does ``Resize((1024, 1024))`` (PIL, bilinear) →
``ToTensor`` → ``Normalize(0.5, 0.5)``, then the trainer halves the image twice with
``F.interpolate(scale_factor=0.5, mode="bilinear")`` → 256×256 (InterDigitalInc/
FeatureStyleEncoder ``test.py`` and ``trainer.py``).  Here :attr:`FSEEncoder.preprocessing`
resizes to ``resolution`` (1024) with PIL's bilinear filter reproduced in torch
(``resize="pil-bilinear"``, :mod:`stylebridge.core.resize`, 8-bit rounding included) and
normalises with mean/std 0.5, and :meth:`FSEEncoder.prepare` then halves the image
``log2(resolution / input_size)`` times with exactly the upstream call (a 2×2 mean each
time).  Any input size is therefore processed as upstream; config ``resize`` overrides
the first filter.

**Modes** (``mode`` config, the thesis' three uses of FSE, section 4):

* ``latents``: only ``w+`` (no feature, like e4e);
* ``features``: ``w+`` and ``features={K: F}`` with ``feature_mode="replace"``: ``F``
  replaces generator activation ``K`` (``layer``, default 5 = output of
  ``convs[3]``, the second 16×16 conv, 512 channels at 1024 px; see
  :mod:`stylebridge.core.stylegan2.generator`), also after a domain change;
* ``shift``: as ``features`` with ``feature_mode="shift"``: when a domain method
  changes the styles from ``s`` to ``s'``, the synthesiser injects
  ``F + G^K(s') - G^K(s)`` (FSE's editing rule, the thesis' *generator shift*).

The upstream ``G([w], features_in=..., feature_scale=1)`` call uses random noise
(``randomize_noise=True``); :func:`stylebridge.core.synthesis.synthesize` defaults to
the generator's fixed noise buffers.

Licence: the official FSE weights are under the InterDigital *Limited Software
Evaluation License* (evaluation and non-commercial research use only); the
converter (:mod:`stylebridge.plugins.converters.fse`) prints it and stores it in the
checkpoint header (``extra.licence``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylebridge.core.interfaces import (
    Encoder,
    Inversion,
    Preprocessing,
)
from stylebridge.core.schema import N_LATENT, STYLE_DIM, WIDTH, Field
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.nets.iresnet import (
    BN_EPS,
    IRESNET50_LAYERS,
    make_stages,
    stage_channels,
    stem,
)
from stylebridge.registry import hookimpl

MODES = ("latents", "features", "shift")
POOL = 3  # AdaptiveAvgPool2d((3, 3)) before the style heads
SOURCE = "InterDigitalInc/FeatureStyleEncoder"
LICENCE = ("licence: FSE weights are InterDigital's, under the InterDigital Limited Software "
           "Evaluation License (evaluation / non-commercial research use only); the converted "
           "file keeps it")


class FSEConfigError(StylebridgeError, ValueError):
    """An invalid FSE configuration, or an FSE that does not fit a generator."""


class FSEEncoder(Encoder):
    """Feature-Style Encoder: images in ``[0, 1]`` → ``w+`` (+ a feature for activation K).

    The defaults are the official FFHQ model; ``width`` (ArcFace stem channels, 64),
    ``layers`` (blocks per stage, iresnet50 = 3/4/14/3), ``n_latent``, ``style_dim``,
    ``feature_channels``, ``feature_stride`` (stride of the last content conv, upstream
    ``fs_stride``), ``input_size`` (encoder input, 256) and ``resolution`` (the size
    images are first resized to, 1024) exist so tests can build small versions.
    ``F`` is ``[B, feature_channels, s, s]`` with ``s = input_size / (8 · feature_stride)``.
    """

    name = "fse"
    description = "Feature-Style Encoder (w+ and a generator feature at layer K=5; modes latents/features/shift)"
    requires_weights: ClassVar[bool] = True
    #: the web page lists the generator-shift mode beside it (``fse:mode=shift``)
    variants: ClassVar[tuple[tuple[str, str], ...]] = (("generator-shift mode", "mode=shift"),)
    config_schema: ClassVar[Mapping[str, Field]] = {
        "mode": Field("str", choices=MODES), "layer": Field("int", 0, 21),
        "n_latent": N_LATENT, "style_dim": STYLE_DIM, "width": Field("int", 1, 1024),
        "layers": Field("ints", 1, 64, length=4), "feature_channels": WIDTH,
        "feature_stride": Field("int", 1, 2), "input_size": Field("int", 8, 1024),
        "resolution": Field("int", 8, 4096),
    }

    def __init__(
        self,
        mode: str = "features",
        layer: int = 5,
        *,
        n_latent: int = 18,
        style_dim: int = 512,
        width: int = 64,
        layers: Sequence[int] = IRESNET50_LAYERS,
        feature_channels: int = 512,
        feature_stride: int = 2,
        input_size: int = 256,
        resolution: int = 1024,
        resize: str = "pil-bilinear",
    ) -> None:
        super().__init__()
        layers = tuple(int(n) for n in layers)
        _validate(mode, layer, n_latent, style_dim, width, layers, feature_channels,
                  feature_stride, input_size, resolution)
        self.mode = mode
        self.layer = int(layer)
        self.n_latent, self.style_dim = int(n_latent), int(style_dim)
        self.width, self.layers = int(width), layers
        self.feature_channels, self.feature_stride = int(feature_channels), int(feature_stride)
        self.input_size, self.resolution = int(input_size), int(resolution)
        self.n_downscale = (resolution // input_size).bit_length() - 1
        self.preprocessing = Preprocessing(size=self.resolution, mean=(0.5, 0.5, 0.5),
                                           std=(0.5, 0.5, 0.5), resize=resize)

        channels = stage_channels(width)
        self.conv = stem(width)
        self.block_1, self.block_2, self.block_3, self.block_4 = make_stages(width, layers)
        self.content_layer = nn.Sequential(
            nn.BatchNorm2d(channels[2], eps=BN_EPS),
            nn.Conv2d(channels[2], feature_channels, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(feature_channels, eps=BN_EPS),
            nn.PReLU(feature_channels),
            nn.Conv2d(feature_channels, feature_channels, 3, stride=feature_stride, padding=1,
                      bias=False),
            nn.BatchNorm2d(feature_channels, eps=BN_EPS),
        )
        self.avg_pool = nn.AdaptiveAvgPool2d((POOL, POOL))
        pooled = sum(channels) * POOL * POOL
        self.styles = nn.ModuleList(nn.Linear(pooled, style_dim) for _ in range(n_latent))
        self.register_buffer("latent_avg", torch.zeros(n_latent, style_dim))

    # -- configuration -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "layer": self.layer, "n_latent": self.n_latent,
            "style_dim": self.style_dim, "width": self.width, "layers": list(self.layers),
            "feature_channels": self.feature_channels, "feature_stride": self.feature_stride,
            "input_size": self.input_size, "resolution": self.resolution,
            **({} if self.preprocessing.resize == "pil-bilinear"
               else {"resize": self.preprocessing.resize}),
        }

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the predicted feature ``F``."""
        side = self.input_size // (8 * self.feature_stride)
        return (self.feature_channels, side, side)

    @property
    def feature_layer(self) -> int | None:
        """Activation ``K`` of ``F``; ``None`` in ``latents`` mode, which returns no ``F``."""
        return None if self.mode == "latents" else self.layer

    def check_generator(self, generator: Any) -> None:
        """Raise :class:`FSEConfigError` (one line) if ``generator`` cannot take this encoder's output."""
        if (generator.n_latent, generator.style_dim) != (self.n_latent, self.style_dim):
            raise FSEConfigError(
                f"fse encoder predicts w+ [{self.n_latent}, {self.style_dim}], the generator takes "
                f"[{generator.n_latent}, {generator.style_dim}]")
        if self.mode == "latents":
            return
        want = tuple(generator.feature_shapes()[self.layer])
        if want != self.feature_shape:
            raise FSEConfigError(
                f"fse feature is {list(self.feature_shape)} but generator activation "
                f"{self.layer} is {list(want)}; choose layer= to match")

    # -- forward -------------------------------------------------------------------------------
    def prepare(self, images: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` in ``[0, 1]`` → encoder input ``[B, 3, input_size, input_size]``
        in ``[-1, 1]``: resize to ``resolution``, normalise, halve ``n_downscale`` times
        with upstream's ``F.interpolate(scale_factor=0.5, mode="bilinear")``."""
        x = self.preprocessing(images)
        for _ in range(self.n_downscale):
            x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        return x

    def run_network(self, x: Tensor, *, with_features: bool = True) -> tuple[Tensor, Tensor | None]:
        """Upstream ``fs_encoder_v2.forward`` on a prepared input → ``(enc [B, n_latent,
        style_dim], F [B, C, s, s] or None)``; ``enc`` does not include ``latent_avg``."""
        x = self.conv(x)
        x1 = self.block_1(x)
        x2 = self.block_2(x1)
        x3 = self.block_3(x2)
        x4 = self.block_4(x3)
        feature = self.content_layer(x3) if with_features else None
        pooled = torch.cat([self.avg_pool(t) for t in (x1, x2, x3, x4)], dim=1).flatten(1)
        codes = torch.stack([head(pooled) for head in self.styles], dim=1)
        return codes, feature

    def encode(self, images: Tensor) -> Inversion:
        """Aligned faces ``[B, 3, H, W]`` in ``[0, 1]`` → :class:`Inversion` (see the modes above)."""
        with_features = self.mode != "latents"
        codes, feature = self.run_network(self.prepare(images), with_features=with_features)
        w_plus = codes + self.latent_avg.to(codes.dtype)
        if feature is None:
            return Inversion(w_plus=w_plus)
        return Inversion(w_plus=w_plus, features={self.layer: feature},
                         feature_mode="shift" if self.mode == "shift" else "replace")


def _validate(mode: str, layer: int, n_latent: int, style_dim: int, width: int,
              layers: tuple[int, ...], feature_channels: int, feature_stride: int,
              input_size: int, resolution: int) -> None:
    if mode not in MODES:
        raise FSEConfigError(f"fse mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not isinstance(layer, int) or not 0 <= layer < n_latent:
        raise FSEConfigError(f"fse layer must be an activation index 0..{n_latent - 1}, got {layer!r}")
    if min(n_latent, style_dim, width, feature_channels) < 1:
        raise FSEConfigError("fse n_latent, style_dim, width and feature_channels must be >= 1")
    if len(layers) != 4 or min(layers) < 1:
        raise FSEConfigError(f"fse layers must be 4 block counts >= 1, got {list(layers)}")
    if feature_stride not in (1, 2):
        raise FSEConfigError(f"fse feature_stride must be 1 or 2, got {feature_stride!r}")
    if input_size < 8 * feature_stride or input_size % (8 * feature_stride):
        raise FSEConfigError(
            f"fse input_size must be a multiple of {8 * feature_stride}, got {input_size!r}")
    ratio = resolution // input_size if input_size else 0
    if resolution % input_size or ratio < 1 or ratio & (ratio - 1):
        raise FSEConfigError(f"fse resolution ({resolution}) must be input_size ({input_size}) "
                             "times a power of two")


@hookimpl
def register_encoders(register: Any) -> None:
    register(FSEEncoder)
