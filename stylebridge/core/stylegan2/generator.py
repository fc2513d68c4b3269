"""The StyleGAN2 generator, with the style-space and feature APIs encoders and domains need.

Index conventions (documented here once; everything else refers to them):

**Latent rows** ``w+[:, i]``, ``i = 0 .. n_latent - 1`` (18 at 1024 px): ``conv1`` reads
row 0, ``to_rgb1`` row 1; in resolution stage ``j`` (8 px, 16 px, ...) the
upsampling conv ``convs[2j]`` reads row ``2j+1``, ``convs[2j+1]`` row ``2j+2`` and
``to_rgbs[j]`` row ``2j+3``.

**Style layers** (StyleSpace ``s``), in execution order, ``n_style_layers`` of them
(26 at 1024 px): 0 = ``conv1``, 1 = ``to_rgb1``, then per stage ``j``:
``2+3j`` = ``convs[2j]``, ``3+3j`` = ``convs[2j+1]``, ``4+3j`` = ``to_rgbs[j]``.
:meth:`Generator.style_layers` lists them with names, rows and widths;
:meth:`Generator.conv_style_indices` gives the 17 non-RGB ones (StyleDomain's
``s_delta`` order).

**Activations** ``K = 0 .. n_latent - 1``: 0 = the constant input, 1 = output of
``conv1``, ``K >= 2`` = output of ``convs[K-2]``.  At 1024 px, K = 5 is the
second 16×16 conv (512 ch, FSE), K = 9 the second 64×64 conv (SFE).  Replacing
activation K (``features={K: F}``) happens right after it is computed *and*
after any ToRGB that reads it, so the RGB skip up to that layer still comes from
the w path — the convention of the FSE and SFE code.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from stylebridge.core.precision import autocast_dtype
from stylebridge.core.stylegan2.config import GeneratorConfig
from stylebridge.core.stylegan2.layers import (
    UPCONV_ORDERS,
    ConstantInput,
    ConvEdit,
    EqualLinear,
    ModulatedConv2d,
    PixelNorm,
    StyledConv,
    ToRGB,
)


@dataclass(frozen=True)
class StyleLayer:
    """One modulated layer of the synthesis network."""

    index: int         # position in the style list
    name: str          # module path, e.g. "convs.3.conv"
    latent_index: int  # row of w+ it reads
    channels: int      # length of s (input channels of the conv)
    resolution: int    # spatial size of its output
    is_rgb: bool


@dataclass(frozen=True)
class _Step:
    activation: int
    conv: StyledConv
    style: int
    noise: int
    rgb: ToRGB | None
    rgb_style: int


class Generator(nn.Module):
    """StyleGAN2 generator (config-f layout), numerically matching the reference code.

    Build with keyword arguments of :class:`GeneratorConfig`
    (``Generator(size=64, style_dim=64, n_mlp=4, channels={...})``).
    ``latent_avg`` is a persistent buffer holding the average w (truncation centre).
    """

    def __init__(self, **config: Any) -> None:
        super().__init__()
        cfg = GeneratorConfig.from_dict(config)
        self.cfg = cfg
        self.size = cfg.size
        self.style_dim = cfg.style_dim
        self.n_latent = cfg.n_latent
        self.num_layers = cfg.num_layers
        ch = cfg.channels
        blur = cfg.blur_kernel

        layers: list[nn.Module] = [PixelNorm()]
        layers += [EqualLinear(cfg.style_dim, cfg.style_dim, lr_mul=cfg.lr_mlp, activation=True)
                   for _ in range(cfg.n_mlp)]
        self.style = nn.Sequential(*layers)

        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, cfg.style_dim, blur_kernel=blur,
                                conv_clamp=cfg.conv_clamp)
        self.to_rgb1 = ToRGB(ch[4], cfg.style_dim, upsample=False, conv_clamp=cfg.conv_clamp)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(cfg.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))
        in_ch = ch[4]
        for res in cfg.resolutions[1:]:
            out_ch = ch[res]
            self.convs.append(StyledConv(in_ch, out_ch, 3, cfg.style_dim, upsample=True,
                                         blur_kernel=blur, conv_clamp=cfg.conv_clamp))
            self.convs.append(StyledConv(out_ch, out_ch, 3, cfg.style_dim, blur_kernel=blur,
                                         conv_clamp=cfg.conv_clamp))
            self.to_rgbs.append(ToRGB(out_ch, cfg.style_dim, blur_kernel=blur,
                                      conv_clamp=cfg.conv_clamp))
            in_ch = out_ch
        self.register_buffer("latent_avg", torch.zeros(cfg.style_dim))
        # Activation memory layout: None = channels_last on CPU (oneDNN's convolutions, and
        # especially the transposed ones, are much faster in NHWC), NCHW elsewhere.
        self.channels_last: bool | None = None
        # Synthesis precision (stylebridge.core.precision): "fp32" (the reference), or "bf16" /
        # "fp16" under torch.autocast with float32 outputs; see set_precision.
        self.precision = "fp32"

    # -- configuration -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    @property
    def n_style_layers(self) -> int:
        return self.cfg.n_style_layers

    # -- mapping -------------------------------------------------------------------------------
    def mapping(self, z: Tensor) -> Tensor:
        """z ``[B, style_dim]`` → w ``[B, style_dim]``."""
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, *, seed: int | None = 0) -> Tensor:
        """Average w over ``n`` samples of z (``[style_dim]``)."""
        device = self.input.input.device
        gen = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.style_dim, device=device, generator=gen)
        return self.mapping(z).mean(0)

    def truncate(self, w: Tensor, truncation: float, center: Tensor | None = None) -> Tensor:
        """``center + truncation * (w - center)``; the centre defaults to ``latent_avg``."""
        if truncation == 1.0:
            return w
        center = self.latent_avg if center is None else center
        return torch.lerp(center.to(w.dtype), w, truncation)

    def make_wplus(
        self,
        latents: Tensor | Sequence[Tensor],
        *,
        input_is_latent: bool = False,
        truncation: float = 1.0,
        truncation_latent: Tensor | None = None,
        inject_index: int | None = None,
    ) -> Tensor:
        """z or w (``[B, D]``), or w+ (``[B, n_latent, D]``), one or two for mixing → w+."""
        if isinstance(latents, Tensor):
            latents = [latents]
        if not 1 <= len(latents) <= 2:
            raise ValueError(f"expected one latent (or two for style mixing), got {len(latents)}")
        ws = [lat if input_is_latent else self.mapping(lat) for lat in latents]
        ws = [self.truncate(w, truncation, truncation_latent) for w in ws]
        if len(ws) == 1:
            w = ws[0]
            return w.unsqueeze(1).repeat(1, self.n_latent, 1) if w.ndim == 2 else w
        if inject_index is None:
            inject_index = random.randint(1, self.n_latent - 1)
        first = ws[0].unsqueeze(1).repeat(1, inject_index, 1)
        second = ws[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)
        return torch.cat([first, second], 1)

    # -- style space ---------------------------------------------------------------------------
    def _style_modules(self) -> list[tuple[str, ModulatedConv2d, int, int, bool]]:
        out: list[tuple[str, ModulatedConv2d, int, int, bool]] = [
            ("conv1.conv", self.conv1.conv, 0, 4, False),
            ("to_rgb1.conv", self.to_rgb1.conv, 1, 4, True),
        ]
        for j in range(len(self.to_rgbs)):
            res = 2 ** (j + 3)
            c0, c1, rgb = self.convs[2 * j], self.convs[2 * j + 1], self.to_rgbs[j]
            out += [
                (f"convs.{2 * j}.conv", c0.conv, 2 * j + 1, res, False),
                (f"convs.{2 * j + 1}.conv", c1.conv, 2 * j + 2, res, False),
                (f"to_rgbs.{j}.conv", rgb.conv, 2 * j + 3, res, True),
            ]
        return out

    def set_upconv(self, order: str | None) -> None:
        """How the up-sampling convolutions evaluate ("transposed conv, then blur"):
        ``"transpose"``, ``"polyphase"`` (the blur folded into the weight), or ``None`` for the
        device default (:data:`~stylebridge.core.stylegan2.layers.UPCONV_BY_DEVICE`).  Same
        image to float rounding; a speed choice only."""
        if order is not None and order not in UPCONV_ORDERS:
            raise ValueError(f"upconv must be one of {', '.join(UPCONV_ORDERS)}, got {order!r}")
        for module in self.modules():
            if isinstance(module, ModulatedConv2d) and module.upsample:
                module.upconv = order

    def set_precision(self, precision: str) -> None:
        """``"fp32"`` (default), ``"bf16"`` or ``"fp16"``: the dtype the synthesis network runs
        in (under :func:`torch.autocast`; it returns float32 either way).  A speed choice that
        changes the numbers: see :mod:`stylebridge.core.precision`."""
        autocast_dtype(precision)  # ValueError if unknown
        self.precision = precision

    def style_layers(self) -> list[StyleLayer]:
        """The modulated layers in execution order (see the module docstring)."""
        return [StyleLayer(i, name, row, mod.in_channel, res, is_rgb)
                for i, (name, mod, row, res, is_rgb) in enumerate(self._style_modules())]

    def conv_style_indices(self) -> list[int]:
        """Style-list positions of the non-RGB layers (17 at 1024 px)."""
        return [layer.index for layer in self.style_layers() if not layer.is_rgb]

    def styles(self, w_plus: Tensor) -> list[Tensor]:
        """Per-layer style vectors ``s_i = A_i(w+[:, row_i])``, each ``[B, C_i]``."""
        if w_plus.ndim == 2:
            w_plus = w_plus.unsqueeze(1).expand(-1, self.n_latent, -1)
        if w_plus.shape[1] != self.n_latent:
            raise ValueError(f"w+ has {w_plus.shape[1]} rows, this generator needs {self.n_latent}")
        return [mod.modulation(w_plus[:, row]) for _, mod, row, _, _ in self._style_modules()]

    # -- synthesis -----------------------------------------------------------------------------
    def _plan(self) -> list[_Step]:
        steps = [_Step(1, self.conv1, 0, 0, self.to_rgb1, 1)]
        for j in range(len(self.to_rgbs)):
            steps.append(_Step(2 * j + 2, self.convs[2 * j], 2 + 3 * j, 2 * j + 1, None, -1))
            steps.append(_Step(2 * j + 3, self.convs[2 * j + 1], 3 + 3 * j, 2 * j + 2,
                               self.to_rgbs[j], 4 + 3 * j))
        return steps

    def feature_shapes(self) -> dict[int, tuple[int, int, int]]:
        """``K → (channels, height, width)`` of every activation."""
        shapes = {0: (self.cfg.channels[4], 4, 4)}
        for j, res in enumerate(self.cfg.resolutions):
            if j == 0:
                shapes[1] = (self.cfg.channels[4], 4, 4)
            else:
                shapes[2 * j] = shapes[2 * j + 1] = (self.cfg.channels[res], res, res)
        return shapes

    def noise_shapes(self) -> list[tuple[int, ...]]:
        """The shape of each fixed noise buffer (``[1, 1, res, res]``), in layer order."""
        return [tuple(getattr(self.noises, f"noise_{i}").shape) for i in range(self.num_layers)]

    def _noise_list(self, noise: Sequence[Tensor | None] | None, randomize: bool) -> list[Tensor | None]:
        if noise is not None:
            if len(noise) != self.num_layers:
                raise ValueError(f"expected {self.num_layers} noise tensors, got {len(noise)}")
            return list(noise)
        if randomize:
            return [None] * self.num_layers
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def _check_styles(self, styles: Sequence[Tensor]) -> None:
        if len(styles) != self.n_style_layers:
            raise ValueError(f"expected {self.n_style_layers} style vectors, got {len(styles)}")

    def _run(self, styles: Sequence[Tensor], noise: list[Tensor | None], **kwargs: Any
             ) -> tuple[Tensor, Tensor | None]:
        """:meth:`_run_layers` in the generator's :attr:`precision` (float32 results)."""
        dtype = autocast_dtype(self.precision)
        if dtype is None:
            return self._run_layers(styles, noise, **kwargs)
        if kwargs.get("start") is not None:  # the activation in the dtype it has in one run
            k, feature, skip = kwargs["start"]
            kwargs["start"] = (k, feature.to(dtype), skip)
        with torch.autocast(styles[0].device.type, dtype=dtype):
            out, skip = self._run_layers(styles, noise, **kwargs)
        return out.float(), None if skip is None else skip.float()

    def _run_layers(
        self,
        styles: Sequence[Tensor],
        noise: list[Tensor | None],
        *,
        features: Mapping[int, Tensor] | None = None,
        feature_scale: float = 1.0,
        stop_at: int | None = None,
        start: tuple[int, Tensor, Tensor | None] | None = None,
        modifiers: Mapping[int, Callable[[Tensor], Tensor]] | None = None,
        weight_deltas: Mapping[int, Tensor | ConvEdit] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        self._check_styles(styles)
        features = features or {}
        modifiers = modifiers or {}
        deltas = weight_deltas or {}
        bad_deltas = sorted(i for i in deltas if not 0 <= i < self.n_style_layers)
        if bad_deltas:
            raise ValueError(f"weight delta for style layer(s) {bad_deltas}: the generator has "
                             f"style layers 0..{self.n_style_layers - 1}")
        stray = sorted(i for i, d in deltas.items()
                       if i != 0 and isinstance(d, ConvEdit) and d.input_delta is not None)
        if stray:
            raise ValueError(f"input_delta on style layer(s) {stray}: only style layer 0 "
                             "(conv1) reads the constant input")
        bad = sorted(k for k in features if not 0 <= k < self.n_latent)
        if bad or (stop_at is not None and not 0 <= stop_at < self.n_latent):
            raise ValueError(f"activation index out of range 0..{self.n_latent - 1}: {bad or stop_at}")
        batch = styles[0].shape[0]
        fmt = torch.contiguous_format
        use_cl = self.channels_last
        if use_cl or (use_cl is None and styles[0].device.type == "cpu"):
            fmt = torch.channels_last
        if start is None:
            first = 0
            out, skip = self.input(batch), None
            edit = deltas.get(0)
            if isinstance(edit, ConvEdit) and edit.input_delta is not None:
                out = out + edit.input_delta.to(out)
            out = out.contiguous(memory_format=fmt)
            if 0 in features:
                out = torch.lerp(out, features[0].to(out.dtype), feature_scale)
            if stop_at == 0:
                return out.contiguous(), skip
        else:
            first, out, skip = start
            out = out.contiguous(memory_format=fmt)
            if first >= 1 and skip is None:
                raise ValueError(f"starting synthesis at activation {first} needs the RGB skip "
                                 "computed up to that layer (see features_upto)")
        for step in self._plan():
            if step.activation <= first:
                continue
            n = noise[step.noise]
            if n is None:
                res = out.shape[-1] * (2 if step.conv.conv.upsample else 1)
                n = out.new_empty(batch, 1, res, res).normal_()
            out = step.conv(out, styles[step.style], n, deltas.get(step.style))
            if step.rgb is not None:
                skip = step.rgb(out, styles[step.rgb_style], skip, deltas.get(step.rgb_style))
            if step.activation in features:
                out = torch.lerp(out, features[step.activation].to(out.dtype), feature_scale)
            if step.activation in modifiers:
                out = modifiers[step.activation](out)
            if stop_at == step.activation:
                return out.contiguous(), skip
        assert skip is not None
        skip = skip.contiguous()
        return skip, skip

    def synthesis(
        self,
        styles: Sequence[Tensor],
        *,
        noise: Sequence[Tensor | None] | None = None,
        randomize_noise: bool = True,
        features: Mapping[int, Tensor] | None = None,
        feature_scale: float = 1.0,
        modifiers: Mapping[int, Callable[[Tensor], Tensor]] | None = None,
        weight_deltas: Mapping[int, Tensor | ConvEdit] | None = None,
    ) -> Tensor:
        """Style vectors (from :meth:`styles`, possibly changed) → image ``[B, 3, size, size]``.

        ``features={K: F}`` replaces activation K by ``lerp(G^K, F, feature_scale)``;
        ``modifiers={K: f}`` replaces it by ``f(G^K)`` (after any replacement);
        ``weight_deltas={i: ΔW}`` adds ``ΔW`` to the conv weight of style layer ``i`` for
        this call (a domain's weight offsets; the module's parameters are never changed); a
        :class:`~stylebridge.core.stylegan2.layers.ConvEdit` value may also carry a
        post-demodulation input gain (domain modulation) and changes of the layer's bias,
        noise strength and (layer 0) the constant input (a generator delta, MindTheGap).
        """
        image, _ = self._run(styles, self._noise_list(noise, randomize_noise),
                             features=features, feature_scale=feature_scale,
                             modifiers=modifiers, weight_deltas=weight_deltas)
        return image

    def features_upto(
        self,
        styles: Sequence[Tensor],
        k: int,
        *,
        noise: Sequence[Tensor | None] | None = None,
        randomize_noise: bool = True,
        weight_deltas: Mapping[int, Tensor | ConvEdit] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Run the synthesis up to activation ``k``; return ``(G^k, rgb_skip)``."""
        return self._run(styles, self._noise_list(noise, randomize_noise), stop_at=k,
                         weight_deltas=weight_deltas)

    def synthesize_from(
        self,
        k: int,
        feature: Tensor,
        skip: Tensor | None,
        styles: Sequence[Tensor],
        *,
        noise: Sequence[Tensor | None] | None = None,
        randomize_noise: bool = True,
        weight_deltas: Mapping[int, Tensor | ConvEdit] | None = None,
    ) -> Tensor:
        """Continue the synthesis from activation ``k`` given its value and the RGB skip."""
        if not 0 <= k < self.n_latent:
            raise ValueError(f"activation index {k} out of range 0..{self.n_latent - 1}")
        image, _ = self._run(styles, self._noise_list(noise, randomize_noise),
                             start=(k, feature, skip), weight_deltas=weight_deltas)
        return image

    def forward(
        self,
        latents: Tensor | Sequence[Tensor],
        *,
        input_is_latent: bool = False,
        truncation: float = 1.0,
        truncation_latent: Tensor | None = None,
        inject_index: int | None = None,
        noise: Sequence[Tensor | None] | None = None,
        randomize_noise: bool = True,
        features: Mapping[int, Tensor] | None = None,
        feature_scale: float = 1.0,
        return_latents: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """z/w/w+ → image (and w+ with ``return_latents``), like the reference ``Generator``."""
        w_plus = self.make_wplus(latents, input_is_latent=input_is_latent, truncation=truncation,
                                 truncation_latent=truncation_latent, inject_index=inject_index)
        image = self.synthesis(self.styles(w_plus), noise=noise, randomize_noise=randomize_noise,
                               features=features, feature_scale=feature_scale)
        return (image, w_plus) if return_latents else image
