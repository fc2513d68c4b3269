"""StyleDomain parameterisations as domain methods, and the ``styledomain`` converter.

StyleDomain (Alanov et al., ICCV 2023; AIRI-Institute/StyleDomain) adapts a frozen
StyleGAN2 to a new domain with few parameters.  Three of its parameterisations are
domain methods here (``DomainMethod.styles(generator, w_plus, offset_scale)``):

``stylespace``
    Additive offsets on the style vectors: ``s_i' = s_i + scale_i * Δ_i``.
    SimilarDomains' ``s_delta`` has one offset per *conv* layer (17 at 1024 px,
    ``heads.conv_{k}.params_in`` [1, C]), none on ToRGB; ``torgb=True`` adds
    ToRGB offsets (DissimilarDomains' StyleSpace has them).
``affine_plus``
    Affine+: the method holds its own copies of the modulation (affine, w → s)
    ``EqualLinear`` weights and biases of ``layers`` (all 26 at 1024 px, as in
    DissimilarDomains) and computes ``s_i' = lerp(A_i(w), A'_i(w), scale_i)``,
    i.e. ``s_src + scale_i * (s_tuned - s_src)``; the source affine ``A_i`` is
    the generator's.
``affinelight_plus``
    AffineLight+: a low-rank offset of every affine weight,
    ``A'_i = A_i + U_i V_i`` (``U`` [C_i, rank], ``V`` [rank, style_dim], rank 5
    in DissimilarDomains' ``affine_out_in_5_1_additive``), so
    ``s_i' = s_i + scale_i * ((U_i V_i) * g) w`` with ``g = 1/sqrt(style_dim)``
    (the affine's equalised-lr gain); the bias is untouched.

Weight offsets.  DissimilarDomains' Affine+ and AffineLight+ also fine-tune the
synthesis weights of one block (``synt_weights_offset.b64`` /
``tRGB_weights_offset.b64``: ``W + O`` with ``O`` [out, in, 1, 1] broadcast over
the kernel).  That is not a change of ``s``, so ``styles()`` cannot express it:
every method here carries optional ``weight_offsets`` (style-layer index →
[out, in, 1, 1]) that :meth:`StyleDomainMethod.weight_deltas` returns, scaled by
the same ``offset_scale`` entry as the layer's style change, for
:meth:`Generator.synthesis` to add to the conv weights of that call
(``synthesize`` and every renderer pass them; the generator's parameters are
never swapped).

Index convention: every per-layer tensor is keyed by the *style-layer index* of
:mod:`stylebridge.core.stylegan2.generator` (0 = ``conv1``, 1 = ``to_rgb1``, then
per stage ``j``: ``2+3j``, ``3+3j`` = the two convs, ``4+3j`` = ToRGB; 26 at
1024 px); ``offset_scale`` has one entry per style layer.  In the rosinality
layout ``s`` is the *unscaled* output of the modulation layer (the conv applies
``1/sqrt(fan_in)`` to its weight), which for convs equals NVlabs' ``affine(w)``;
for ToRGB NVlabs multiplies ``s`` by ``1/sqrt(C_in)``, which the converter
accounts for.

Each method records the generator it belongs to (``size``, ``style_dim``,
``channels``) in its config and refuses another one with a one-line error.
Checkpoints: kind ``domain_method`` (:meth:`StyleDomainMethod.save`; load with
``Registry.load`` / :func:`stylebridge.registry.resolve.load_plugin` /
:func:`load_domain`).
"""

from __future__ import annotations

import functools
import math
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylebridge.core.checkpoint import check_state_dict, save_checkpoint
from stylebridge.core.interfaces import ConversionResult, Converter, DomainMethod
from stylebridge.core.options import as_bool
from stylebridge.core.stylegan2.config import GeneratorConfig
from stylebridge.errors import CheckpointError, ConversionError
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator

KIND = "domain_method"

SIMILAR_LICENCE = ("licence: StyleDomain's SimilarDomains ships no licence for its trained offsets "
                   "(check with the authors before redistributing); they were trained on NVIDIA's "
                   "StyleGAN2 FFHQ weights (NVIDIA Source Code License-NC, non-commercial)")
DISSIMILAR_LICENCE = ("licence: StyleDomain's DissimilarDomains is under the NVIDIA Source Code "
                      "License for StyleGAN2-ADA (non-commercial use); the converted file keeps it")


class DomainMismatchError(CheckpointError):
    """A domain used with a generator of another architecture."""


# ---------------------------------------------------------------------------------------------
# Generator layout


@dataclass(frozen=True)
class LayerShape:
    """One modulated layer: style index, module path, w+ row, weight shape."""

    index: int
    name: str          # e.g. "convs.6.conv" (a ModulatedConv2d)
    row: int
    in_ch: int         # = len(s_i)
    out_ch: int
    kernel: int
    is_rgb: bool


@functools.lru_cache(maxsize=16)
def _layout_cached(size: int, channels: tuple[tuple[int, int], ...]) -> tuple[LayerShape, ...]:
    ch = dict(channels)
    out = [LayerShape(0, "conv1.conv", 0, ch[4], ch[4], 3, False),
           LayerShape(1, "to_rgb1.conv", 1, ch[4], 3, 1, True)]
    for j in range(int(math.log2(size)) - 2):
        r = 2 ** (j + 3)
        out += [LayerShape(2 + 3 * j, f"convs.{2 * j}.conv", 2 * j + 1, ch[r // 2], ch[r], 3, False),
                LayerShape(3 + 3 * j, f"convs.{2 * j + 1}.conv", 2 * j + 2, ch[r], ch[r], 3, False),
                LayerShape(4 + 3 * j, f"to_rgbs.{j}.conv", 2 * j + 3, ch[r], 3, 1, True)]
    return tuple(out)


def generator_layout(cfg: GeneratorConfig) -> tuple[LayerShape, ...]:
    """The modulated layers of a generator with config ``cfg``, in style-index order.

    Follows :class:`~stylebridge.core.stylegan2.generator.Generator`'s construction
    (``_style_modules``); the tests check it against ``style_layers()`` and the weights.
    """
    return _layout_cached(cfg.size, tuple(sorted(cfg.channels.items())))


def _generator_config(size: int, style_dim: int, channels: Mapping[Any, int] | None) -> GeneratorConfig:
    try:
        return GeneratorConfig(size=int(size), style_dim=int(style_dim), channels=dict(channels or {}))
    except ValueError as exc:
        raise CheckpointError(f"invalid generator description in domain config: {exc}") from None


def _describe(cfg: GeneratorConfig, other: GeneratorConfig) -> tuple[str, str]:
    """The fields in which two configs of the same size differ, as (mine, theirs)."""
    mine, theirs = [], []
    if cfg.style_dim != other.style_dim:
        mine.append(f"style_dim {cfg.style_dim}")
        theirs.append(f"style_dim {other.style_dim}")
    diff = [r for r in cfg.channels if cfg.channels[r] != other.channels.get(r)]
    if diff:
        mine.append("channels " + ", ".join(f"{r}px: {cfg.channels[r]}" for r in diff))
        theirs.append("channels " + ", ".join(f"{r}px: {other.channels.get(r)}" for r in diff))
    return " and ".join(mine), " and ".join(theirs)


def _as_scale(offset_scale: Sequence[float] | Tensor | None, n_layers: int, *,
              device: torch.device, dtype: torch.dtype) -> Tensor | None:
    """``offset_scale`` as a ``[n_layers]`` tensor (``None`` stays ``None``)."""
    if offset_scale is None:
        return None
    scale = torch.as_tensor(offset_scale, dtype=dtype, device=device)
    if scale.ndim != 1 or scale.shape[0] != n_layers:
        raise ValueError(f"offset_scale must have one entry per style layer ({n_layers}), "
                         f"got shape {list(scale.shape)}")
    return scale


# ---------------------------------------------------------------------------------------------
# Methods


class StyleDomainMethod(DomainMethod):
    """Shared by ``stylespace``, ``affine_plus`` and ``affinelight_plus``.

    Holds the generator description, the optional conv ``weight_offsets``
    (style index → ``[out, in, 1, 1]``), the compatibility check and
    :meth:`save`.  ``label`` names the domain in messages (the checkpoint file
    name when loaded through :func:`load_domain` or ``stylebridge adapt``).
    """

    requires_weights = True

    def __init__(self, size: int = 1024, style_dim: int = 512,
                 channels: Mapping[Any, int] | None = None,
                 weight_offset_layers: Sequence[int] | int | str = ()) -> None:
        super().__init__()
        self.generator_config = _generator_config(size, style_dim, channels)
        self.layout = generator_layout(self.generator_config)
        self.label = self.name
        n = len(self.layout)
        self.weight_offset_layers = sorted(set(
            parse_layer_list(weight_offset_layers, "weight_offset_layers") or []))
        bad = [i for i in self.weight_offset_layers if not 0 <= i < n]
        if bad:
            raise ValueError(f"weight_offset_layers {bad} out of range 0..{n - 1}")
        # (key, value) pairs: ParameterDict would sort a plain dict's keys as strings
        self.weight_offsets = nn.ParameterDict([
            (str(i), nn.Parameter(torch.zeros(self.layout[i].out_ch, self.layout[i].in_ch, 1, 1)))
            for i in self.weight_offset_layers])

    # -- description --------------------------------------------------------------------------
    def generator_description(self) -> dict[str, Any]:
        cfg = self.generator_config
        return {"size": cfg.size, "style_dim": cfg.style_dim,
                "channels": {str(r): c for r, c in cfg.channels.items()}}

    def config(self) -> dict[str, Any]:
        return {**self.generator_description(), "weight_offset_layers": list(self.weight_offset_layers)}

    @property
    def n_style_layers(self) -> int:
        return len(self.layout)

    def check_generator(self, generator: Generator) -> None:
        """Raise a one-line :class:`DomainMismatchError` unless ``generator`` has our architecture."""
        mine, theirs = self.generator_config, generator.cfg
        if (mine.size, mine.style_dim, mine.channels) == (theirs.size, theirs.style_dim,
                                                           dict(theirs.channels)):
            return
        if mine.size != theirs.size:
            raise DomainMismatchError(
                f"domain {self.label} was trained for a {mine.size}px generator "
                f"({mine.n_style_layers} style layers), this generator is {theirs.size}px "
                f"({theirs.n_style_layers})")
        a, b = _describe(mine, theirs)
        raise DomainMismatchError(f"domain {self.label} was trained for a {mine.size}px generator "
                                  f"with {a}, this generator has {b}")

    def layer_parameters(self, indices: Iterable[int]) -> list[nn.Parameter]:
        """The parameters that change style layers ``indices`` (every per-layer
        ``ParameterDict`` is keyed by the style-layer index), e.g. to freeze them."""
        keys = {str(int(i)) for i in indices}
        return [p for module in self.modules() if isinstance(module, nn.ParameterDict)
                for key, p in module.items() if key in keys]

    # -- weight offsets -----------------------------------------------------------------------
    def has_weight_offsets(self) -> bool:
        return any(bool(p.detach().ne(0).any()) for p in self.weight_offsets.values())

    def weight_deltas(self, generator: Generator,
                      offset_scale: Sequence[float] | Tensor | None = None) -> dict[int, Tensor]:
        """``scale_i * O_i`` for every style layer ``i`` with conv weight offsets, shaped
        ``[1, out, in, 1, 1]`` (broadcast over the k×k taps), for
        :meth:`Generator.synthesis` (gradients reach the offsets)."""
        self.check_generator(generator)
        if not self.weight_offsets:
            return {}
        first = next(iter(self.weight_offsets.values()))
        scale = _as_scale(offset_scale, self.n_style_layers, device=first.device, dtype=first.dtype)
        deltas: dict[int, Tensor] = {}
        for name, offset in self.weight_offsets.items():
            i = int(name)
            weight = generator.get_submodule(self.layout[i].name).weight
            delta = offset.to(weight).unsqueeze(0)  # [1, out, in, 1, 1]: broadcast over k×k
            if scale is not None:
                delta = delta * scale[i].to(weight)
            deltas[i] = delta
        return deltas

    def _prepare(self, generator: Generator, w_plus: Tensor,
                 offset_scale: Sequence[float] | Tensor | None
                 ) -> tuple[Tensor, list[Tensor], Tensor | None]:
        self.check_generator(generator)
        if w_plus.ndim == 2:
            w_plus = w_plus.unsqueeze(1).expand(-1, generator.n_latent, -1)
        styles = generator.styles(w_plus)
        scale = _as_scale(offset_scale, self.n_style_layers, device=styles[0].device,
                          dtype=styles[0].dtype)
        return w_plus, styles, scale

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, path: str | Path, *, extra: Mapping[str, Any] | None = None) -> Path:
        """Write this domain as a stylebridge checkpoint (kind ``domain_method``)."""
        return save_checkpoint(path, self.state_dict(), kind=KIND, plugin=self.name,
                               config=self.config(), extra=extra)


class StyleSpace(StyleDomainMethod):
    """StyleSpace: per-layer additive offsets on the style vectors s (StyleDomain)."""

    name = "stylespace"
    description = "StyleSpace: additive per-layer offsets on the style vectors s (StyleDomain)"

    def __init__(self, size: int = 1024, style_dim: int = 512,
                 channels: Mapping[Any, int] | None = None, torgb: bool = False,
                 weight_offset_layers: Sequence[int] = ()) -> None:
        super().__init__(size, style_dim, channels, weight_offset_layers)
        self.torgb = as_bool(torgb, "torgb")
        self.offsets = nn.ParameterDict([
            (str(layer.index), nn.Parameter(torch.zeros(layer.in_ch)))
            for layer in self.layout if self.torgb or not layer.is_rgb])

    def config(self) -> dict[str, Any]:
        return {**super().config(), "torgb": self.torgb}

    @property
    def layers(self) -> list[int]:
        """Style-layer indices that carry an offset."""
        return [int(k) for k in self.offsets]

    def styles(self, generator: Generator, w_plus: Tensor,
               offset_scale: Sequence[float] | Tensor | None = None) -> list[Tensor]:
        """``s_i + scale_i * Δ_i`` for every layer with an offset, the source ``s_i`` elsewhere."""
        _, styles, scale = self._prepare(generator, w_plus, offset_scale)
        for key, offset in self.offsets.items():
            i = int(key)
            delta = offset.to(styles[i])
            if scale is not None:
                delta = delta * scale[i]
            styles[i] = styles[i] + delta
        return styles


def block_layers(size: int, resolution: int) -> list[int]:
    """Style-layer indices of the synthesis block at ``resolution`` (its two convs and its
    ToRGB; 64 px → 11, 12, 13), or ``[]`` when the generator has no such block."""
    if resolution < 8 or resolution > size or resolution & (resolution - 1):
        return []
    stage = int(math.log2(resolution)) - 3        # 8 px is stage 0: style layers 2, 3, 4
    return [2 + 3 * stage, 3 + 3 * stage, 4 + 3 * stage]


def parse_layer_list(value: Sequence[int] | int | str | None, option: str) -> list[int] | None:
    """``[11, 12]``, ``11`` or ``"11+12+13"`` (a list option on the command line, where
    commas separate options) → a list of ints; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        parts = [p for p in value.replace(";", "+").split("+") if p.strip()]
        try:
            return [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"{option}={value!r}: expected style-layer indices like "
                             "11+12+13") from None
    return [int(v) for v in value]


#: Affine+/AffineLight+ (StyleDomain's DissimilarDomains) also train the 64 px block's
#: conv weights (``synt_weights_offset.b64``, ``tRGB_weights_offset.b64``).
AFFINE_PLUS_BLOCK = 64


class _AffineMethod(StyleDomainMethod):
    """Shared by Affine+ / AffineLight+: a set of style layers whose affine is changed.

    ``weight_offset_layers=None`` (default) = the 64 px block's layers, as StyleDomain's
    Affine+ ("+" = the block); ``()`` = affine layers only.
    """

    def __init__(self, size: int, style_dim: int, channels: Mapping[Any, int] | None,
                 layers: Sequence[int] | int | str | None,
                 weight_offset_layers: Sequence[int] | int | str | None) -> None:
        offsets = parse_layer_list(weight_offset_layers, "weight_offset_layers")
        if offsets is None:
            offsets = block_layers(int(size), AFFINE_PLUS_BLOCK)
        layers = parse_layer_list(layers, "layers")
        super().__init__(size, style_dim, channels, offsets)
        n = self.n_style_layers
        chosen = list(range(n)) if layers is None else sorted({int(i) for i in layers})
        bad = [i for i in chosen if not 0 <= i < n]
        if bad:
            raise ValueError(f"layers {bad} out of range 0..{n - 1}")
        self.layers = chosen

    def config(self) -> dict[str, Any]:
        return {**super().config(), "layers": list(self.layers)}

    def _tuned(self, key: str, w: Tensor, modulation: nn.Module, source: Tensor) -> Tensor:
        raise NotImplementedError

    def styles(self, generator: Generator, w_plus: Tensor,
               offset_scale: Sequence[float] | Tensor | None = None) -> list[Tensor]:
        """``lerp(s_src_i, s_tuned_i, scale_i)`` for the tuned layers, ``s_src_i`` elsewhere."""
        w_plus, styles, scale = self._prepare(generator, w_plus, offset_scale)
        for i in self.layers:
            layer = self.layout[i]
            modulation = generator.get_submodule(layer.name).modulation
            tuned = self._tuned(str(i), w_plus[:, layer.row], modulation, styles[i])
            styles[i] = tuned if scale is None else torch.lerp(styles[i], tuned, scale[i])
        return styles


class AffinePlus(_AffineMethod):
    """Affine+: fine-tuned copies of the affine (w → s) layers (StyleDomain DissimilarDomains)."""

    name = "affine_plus"
    description = "Affine+: fine-tuned affine (w -> s) layers, optional conv weight offsets (StyleDomain)"

    def __init__(self, size: int = 1024, style_dim: int = 512,
                 channels: Mapping[Any, int] | None = None,
                 layers: Sequence[int] | int | str | None = None,
                 weight_offset_layers: Sequence[int] | int | str | None = None) -> None:
        super().__init__(size, style_dim, channels, layers, weight_offset_layers)
        sd = self.generator_config.style_dim
        self.affine_weight = nn.ParameterDict([
            (str(i), nn.Parameter(torch.zeros(self.layout[i].in_ch, sd))) for i in self.layers])
        self.affine_bias = nn.ParameterDict([
            (str(i), nn.Parameter(torch.zeros(self.layout[i].in_ch))) for i in self.layers])
        self._ready = False

    @torch.no_grad()
    def init_from(self, generator: Generator) -> AffinePlus:
        """Start from the generator's own affine layers (the identity domain)."""
        self.check_generator(generator)
        for i in self.layers:
            mod = generator.get_submodule(self.layout[i].name).modulation
            self.affine_weight[str(i)].copy_(mod.weight)
            self.affine_bias[str(i)].copy_(mod.bias)
        self._ready = True
        return self

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> Any:
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._ready = True
        return result

    def _tuned(self, key: str, w: Tensor, modulation: nn.Module, source: Tensor) -> Tensor:
        if not self._ready:
            raise CheckpointError(f"domain {self.label} has no tuned affine weights yet: load a "
                                  "checkpoint or call init_from(generator)")
        weight = self.affine_weight[key].to(w) * modulation.scale
        bias = self.affine_bias[key].to(w) * modulation.lr_mul
        return F.linear(w, weight, bias)


class AffineLightPlus(_AffineMethod):
    """AffineLight+: low-rank offsets of the affine layers (StyleDomain DissimilarDomains)."""

    name = "affinelight_plus"
    description = "AffineLight+: low-rank offsets of the affine (w -> s) layers (StyleDomain)"

    def __init__(self, size: int = 1024, style_dim: int = 512,
                 channels: Mapping[Any, int] | None = None,
                 layers: Sequence[int] | int | str | None = None, rank: int = 5,
                 weight_offset_layers: Sequence[int] | int | str | None = None,
                 seed: int = 0) -> None:
        super().__init__(size, style_dim, channels, layers, weight_offset_layers)
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.rank, self.seed = int(rank), int(seed)
        sd = self.generator_config.style_dim
        gen = torch.Generator().manual_seed(self.seed)
        # DissimilarDomains' init: V = randn with unit rows (trained), U = 0 (so A' = A at first).
        self.affine_in = nn.ParameterDict()
        self.affine_out = nn.ParameterDict()
        for i in self.layers:
            v = torch.randn(self.rank, sd, generator=gen)
            self.affine_in[str(i)] = nn.Parameter(v / v.norm(dim=1, keepdim=True))
            self.affine_out[str(i)] = nn.Parameter(torch.zeros(self.layout[i].in_ch, self.rank))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "rank": self.rank, "seed": self.seed}

    def _tuned(self, key: str, w: Tensor, modulation: nn.Module, source: Tensor) -> Tensor:
        delta_w = self.affine_out[key].to(w) @ self.affine_in[key].to(w)  # [C, style_dim]
        return source + F.linear(w, delta_w * modulation.scale)


METHODS: dict[str, type[StyleDomainMethod]] = {
    cls.name: cls for cls in (StyleSpace, AffinePlus, AffineLightPlus)}


def load_domain(spec: str | Path, *, device: str | torch.device = "cpu", registry: Any = None,
                **overrides: Any) -> DomainMethod:
    """Load a domain checkpoint (``PATH`` or ``NAME:PATH[:k=v]``); its label is the file name."""
    from stylebridge.registry.resolve import load_plugin
    from stylebridge.registry.spec import parse_plugin_spec

    parsed = parse_plugin_spec(str(spec), what="domain method")
    method = load_plugin(KIND, parsed, device=device, registry=registry, **overrides)
    if parsed.path is not None and isinstance(method, StyleDomainMethod):
        method.label = parsed.path.name
    return method


# ---------------------------------------------------------------------------------------------
# Converter: SimilarDomains (.pt, s_delta)

_HEAD_RX = re.compile(r"^heads\.conv_(\d+)\.params_in$")
_NV_HEAD_RX = re.compile(r"^heads\.b(\d+)\.(conv0|conv1)$")


def _log2_size(n_convs: int, path: Path | None) -> int:
    if n_convs < 1 or n_convs % 2 == 0:
        raise ConversionError(f"has {n_convs} StyleSpace heads; a StyleGAN2 has an odd number "
                              "(17 at 1024 px)", path=path)
    return (n_convs - 1) // 2 + 2


def _head_width(value: Any, key: str, path: Path | None) -> int:
    if not isinstance(value, Tensor) or value.ndim != 2 or value.shape[0] != 1:
        shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ConversionError(f"head {key} is {shape}, expected [1, C]", path=path)
    if not value.is_floating_point():
        raise ConversionError(f"head {key} has dtype {value.dtype}, expected floating point",
                              path=path)
    return int(value.shape[1])


def similar_domains_offsets(state: Mapping[str, Any], *, style_dim: int = 512,
                            path: Path | None = None) -> tuple[dict[str, Any], dict[int, Tensor]]:
    """SimilarDomains ``s_delta`` state dict → (generator description, style index → Δ [C]).

    Two layouts: ``BaseParametrization`` (``heads.conv_{k}.params_in`` [1, C],
    k = 0 … 16; conv_0 = ``conv1``, conv_k = ``convs[k-1]``) and
    ``SG2NvidiaSDeltaOffsets`` (``heads.b4.conv1``, ``heads.b{R}.conv0|conv1``).
    The channel widths are read from the shapes (each head is the *input*
    width of its conv); works on meta tensors.
    """
    keys = list(state)
    conv = {int(m.group(1)): k for k in keys if (m := _HEAD_RX.match(k))}
    nv = {(int(m.group(1)), m.group(2)): k for k in keys if (m := _NV_HEAD_RX.match(k))}
    if conv and nv:
        raise ConversionError("mixes heads.conv_* and heads.b* StyleSpace heads", path=path)
    used = set(conv.values()) | set(nv.values())
    unexpected = sorted(set(keys) - used)
    if unexpected:
        shown = ", ".join(unexpected[:3]) + (f" (+{len(unexpected) - 3} more)" if len(unexpected) > 3 else "")
        raise ConversionError(f"has tensors that are not s_delta heads: {shown}", path=path)
    # widths of the conv layers in execution order (conv1, convs[0], convs[1], ...)
    widths: list[tuple[str, int]] = []
    if conv:
        n = len(conv)
        if sorted(conv) != list(range(n)):
            missing = sorted(set(range(max(conv) + 1)) - set(conv))
            raise ConversionError(f"lacks StyleSpace heads conv_{missing}", path=path)
        widths = [(conv[k], _head_width(state[conv[k]], conv[k], path)) for k in range(n)]
    elif nv:
        res = sorted({r for r, _ in nv})
        expected = [2 ** i for i in range(2, res[-1].bit_length())]
        want = {(4, "conv1")} | {(r, c) for r in expected[1:] for c in ("conv0", "conv1")}
        if set(nv) != want:
            missing = [f"b{r}.{c}" for r, c in sorted(want - set(nv))]
            extra = [f"b{r}.{c}" for r, c in sorted(set(nv) - want)]
            what = f"lacks heads {missing[:4]}" if missing else f"has unexpected heads {extra[:4]}"
            raise ConversionError(f"is not a StyleGAN2 StyleSpace layout: {what}", path=path)
        widths = [(nv[(4, "conv1")], _head_width(state[nv[(4, "conv1")]], "b4.conv1", path))]
        for r in expected[1:]:
            for c in ("conv0", "conv1"):
                widths.append((nv[(r, c)], _head_width(state[nv[(r, c)]], f"b{r}.{c}", path)))
    else:
        raise ConversionError("has no StyleSpace heads (heads.conv_{k}.params_in)", path=path)
    log_size = _log2_size(len(widths), path)
    channels = {4: widths[0][1]}
    for j in range(log_size - 2):
        r = 2 ** (j + 3)
        if widths[2 * j + 1][1] != channels[r // 2]:
            raise ConversionError(
                f"head {widths[2 * j + 1][0]} has {widths[2 * j + 1][1]} channels, but the "
                f"{r // 2}px layer before it has {channels[r // 2]}", path=path)
        channels[r] = widths[2 * j + 2][1]
    cfg = _generator_config(2 ** log_size, style_dim, channels)
    conv_idx = [layer.index for layer in generator_layout(cfg) if not layer.is_rgb]
    offsets = {conv_idx[k]: state[key].reshape(-1) for k, (key, _) in enumerate(widths)}
    desc = {"size": cfg.size, "style_dim": cfg.style_dim,
            "channels": {str(r): c for r, c in cfg.channels.items()}}
    return desc, offsets


def _convert_similar(src: Path, dst: Path, options: Mapping[str, Any]) -> ConversionResult:
    from stylebridge.core.stylegan2.rosinality import torch_load_safe

    ck = torch_load_safe(src)
    if not isinstance(ck, Mapping):
        raise ConversionError(f"holds a {type(ck).__name__}, expected the SimilarDomains dict "
                              "(model_type, patch_key, state_dict, ...)", path=src)
    notes: list[str] = []
    if "state_dict" in ck:
        state, patch_key = ck["state_dict"], ck.get("patch_key")
    elif "trainable" in ck:  # training checkpoint.pt
        state, patch_key = ck["trainable"], options.get("patch_key")
    elif ck and all(isinstance(k, str) and k.startswith("heads.") for k in ck):
        state, patch_key = ck, options.get("patch_key")
    else:
        keys = ", ".join(sorted(map(str, ck))[:8]) or "none"
        raise ConversionError(f"is not a SimilarDomains checkpoint (top-level keys: {keys})",
                              path=src)
    if patch_key is None:
        raise ConversionError("does not say its parameterisation (s_delta and s_mod share the key "
                              "layout); pass -o patch_key=s_delta if it is StyleSpace", path=src)
    if patch_key != "s_delta":
        raise ConversionError(f"holds a {patch_key!r} parameterisation; only StyleSpace ('s_delta') "
                              "can be converted", path=src)
    model_type = ck.get("model_type", "parametrization")
    if model_type != "parametrization":
        raise ConversionError(f"has model_type {model_type!r}; only 'parametrization' checkpoints "
                              "hold StyleSpace offsets", path=src)
    if not isinstance(state, Mapping):
        raise ConversionError(f"state_dict is a {type(state).__name__}, not a dict", path=src)
    sg2 = ck.get("sg2_params") if isinstance(ck.get("sg2_params"), Mapping) else {}
    style_dim = int(sg2.get("latent_size", Converter.option(options, "style_dim", int, 512, src)))
    desc, offsets = similar_domains_offsets(state, style_dim=style_dim, path=src)
    img_size = sg2.get("img_size")
    if img_size is not None and int(img_size) != desc["size"]:
        raise ConversionError(f"sg2_params say img_size={img_size}, but the heads describe a "
                              f"{desc['size']}px generator", path=src)
    method = StyleSpace(**desc, torgb=False)
    tensors = {f"offsets.{i}": t.detach().float() for i, t in offsets.items()}
    check_state_dict(src, {k: v.shape for k, v in method.state_dict().items()}, tensors,
                     what="StyleSpace domain", error=ConversionError)
    method.load_state_dict(tensors, strict=True)
    extra: dict[str, Any] = {"source": "AIRI-Institute/StyleDomain SimilarDomains",
                             "source_file": src.name, "patch_key": patch_key}
    da_type = ck.get("da_type")
    if da_type is not None:
        extra["da_type"] = str(da_type)
    latents = ck.get("style_latents")
    if isinstance(latents, Tensor):
        extra["style_latents"] = latents.detach().float().cpu().tolist()
        extra["style_latents_shape"] = list(latents.shape)
        notes.append(f"kept style_latents {list(latents.shape)} (w+ rows 7.. of the style image, "
                     "used by StyleDomain for style mixing) in the header extra")
    if sg2:
        extra["sg2_params"] = {k: v for k, v in sg2.items()
                               if isinstance(v, str | int | float | bool) and k != "device"}
    zero = [i for i, t in offsets.items() if not bool(t.ne(0).any())]
    if zero:
        notes.append(f"style layers {zero} have all-zero offsets (frozen during training, e.g. "
                     "no_coarse)")
    notes.append(SIMILAR_LICENCE)
    extra["notes"] = notes
    extra["licence"] = SIMILAR_LICENCE
    method.save(dst, extra=extra)
    return ConversionResult(path=dst, kind=KIND, plugin=method.name, n_tensors=len(tensors),
                            notes=tuple(notes))


# ---------------------------------------------------------------------------------------------
# Converter: DissimilarDomains (StyleGAN2-ADA pickles)

_NV_LAYER_RX = re.compile(r"^synthesis\.b(\d+)\.(conv0|conv1|torgb)\.(.+)$")
_S_SUFFIX = re.compile(r"^(offset|offset_mask|ones)$")
_W_SUFFIX = re.compile(r"^(weights_offset|ones_weights|weights_offset_(in|out)_\d+)$")
_A_SUFFIX = re.compile(r"^affine\.(ones_weights|weights_offset_(in|out)_\d+)$")
_AFFINE_RANK_RX = re.compile(r"^affine_out_in_(\d+)_(\d+)_additive$")
S_PARAMETRIZATIONS = ("multiplicative", "additive", "multiplicative_w_space", "additive_w_space")


@dataclass
class Parametrization:
    """How one DissimilarDomains layer applies its domain tensors (``None`` = not used)."""

    s: str | None = None
    weights: str | None = None
    affine: str | None = None

    @classmethod
    def from_list(cls, names: Sequence[str]) -> Parametrization:
        out = cls()
        for name in names:
            if name in S_PARAMETRIZATIONS:
                out.s = name
            elif name.startswith("affine_"):
                out.affine = name
            elif name:
                out.weights = name
        return out


def _nv_style_index(res: int, layer: str, path: Path | None) -> int:
    if res == 4:
        if layer == "conv0":
            raise ConversionError("has a b4.conv0 layer, which StyleGAN2 does not", path=path)
        return 0 if layer == "conv1" else 1
    j = int(math.log2(res)) - 3
    return 2 + 3 * j + {"conv0": 0, "conv1": 1, "torgb": 2}[layer]


@dataclass
class DissimilarDomain:
    """What :func:`dissimilar_domains_tensors` found: a method, its config and tensors."""

    method: str
    config: dict[str, Any]
    tensors: dict[str, Tensor]
    notes: list[str]
    parametrizations: dict[str, str]


def _layer_parametrizations(g: Any, default: Parametrization) -> dict[tuple[int, str], Parametrization]:
    """Per-layer parametrisation strings recorded in the pickled layer state (if any)."""
    from stylebridge.core.safe_pickle import PersistentObject

    out: dict[tuple[int, str], Parametrization] = {}
    if not isinstance(g, PersistentObject):
        return out
    synthesis = g.submodules().get("synthesis")
    if not isinstance(synthesis, PersistentObject):
        return out
    for bname, block in synthesis.submodules().items():
        m = re.match(r"^b(\d+)$", str(bname))
        if not m or not isinstance(block, PersistentObject):
            continue
        for lname, layer in block.submodules().items():
            if lname not in ("conv0", "conv1", "torgb") or not isinstance(layer, PersistentObject):
                continue
            p = Parametrization(default.s, default.weights, default.affine)
            st = layer.state
            if "domain_modulation_parametrization" in st or "use_domain_modulation" in st:
                p.s = st.get("domain_modulation_parametrization")
                p.weights = st.get("weights_domain_modulation_parametrization")
                affine = layer.submodules().get("affine")
                if isinstance(affine, PersistentObject):
                    p.affine = affine.state.get("affine_weights_domain_modulation_parametrization")
            out[(int(m.group(1)), str(lname))] = p
    return out


def _global_parametrization(init_kwargs: Mapping[str, Any]) -> tuple[Parametrization, list[str]]:
    synth = init_kwargs.get("synthesis_kwargs") if isinstance(init_kwargs, Mapping) else None
    synth = synth if isinstance(synth, Mapping) else {}
    parts = synth.get("generator_requires_grad_parts") or []
    parts = [str(p) for p in parts] if isinstance(parts, list | tuple) else [str(parts)]
    if not synth.get("use_domain_modulation", False):
        return Parametrization(), parts
    names = str(synth.get("domain_modulation_parametrization") or "multiplicative").split(",")
    return Parametrization.from_list([n.strip() for n in names]), parts


def dissimilar_domains_tensors(
    state: Mapping[str, Tensor],
    init_kwargs: Mapping[str, Any] | None = None,
    layer_params: Mapping[tuple[int, str], Parametrization] | None = None,
    *,
    method: str | None = None,
    path: Path | None = None,
) -> DissimilarDomain:
    """A DissimilarDomains ``G_ema`` state dict (NVlabs names) → one of our domain methods.

    Detection: ``*.offset`` tensors → ``stylespace`` (parametrisation
    ``additive`` only; offsets × ``offset_mask``; ToRGB offsets × sqrt(C_in)
    because NVlabs adds them after the ToRGB gain); ``*.affine.weights_offset_*``
    → ``affinelight_plus`` (``affine_out_in_K_T_additive``; the T rank-K terms
    are stacked into rank K·T with ``U`` divided by T); otherwise conv
    ``weights_offset`` or ``synt_affine``/``tRGB_affine`` in the recorded
    ``generator_requires_grad_parts`` → ``affine_plus`` (the pickle's affine
    layers are the tuned ones).  Conv weight offsets (``*_additive``;
    ``[out, in, 1, 1]`` or low-rank ``out_in_K…`` pairs) become
    ``weight_offsets``.  Works on meta tensors (shape checks of full-size
    layouts).  Parametrisations come from ``layer_params`` (the pickled layer
    state) or the recorded ``synthesis_kwargs``.
    """
    from stylebridge.core.stylegan2.nvlabs import convert_nvlabs_generator

    kw = dict(init_kwargs or {})
    default, parts = _global_parametrization(kw)
    layer_params = dict(layer_params or {})
    domain: dict[tuple[int, str], dict[str, Tensor]] = {}
    base: dict[str, Tensor] = {}
    for key, value in state.items():
        m = _NV_LAYER_RX.match(key)
        if m and (_S_SUFFIX.match(m.group(3)) or _W_SUFFIX.match(m.group(3))
                  or _A_SUFFIX.match(m.group(3))):
            domain.setdefault((int(m.group(1)), m.group(2)), {})[m.group(3)] = value
        else:
            base[key] = value
    _, g_config, _ = convert_nvlabs_generator(base, kw, path=path)
    cfg = _generator_config(g_config["size"], g_config["style_dim"], g_config["channels"])
    layout = generator_layout(cfg)
    desc = {"size": cfg.size, "style_dim": cfg.style_dim,
            "channels": {str(r): c for r, c in cfg.channels.items()}}

    def param(loc: tuple[int, str]) -> Parametrization:
        return layer_params.get(loc, default)

    has_s = any("offset" in d for d in domain.values())
    has_a = any(any(k.startswith("affine.weights_offset_") for k in d) for d in domain.values())
    has_w = any(any(k == "weights_offset" or k.startswith("weights_offset_") for k in d)
                for d in domain.values())
    tuned_affine = any(p in ("synt_affine", "tRGB_affine", "all") for p in parts)
    if has_s and has_a:
        raise ConversionError("combines StyleSpace offsets with low-rank affine offsets, which no "
                              "single domain method here holds", path=path)
    detected = ("stylespace" if has_s else "affinelight_plus" if has_a
                else "affine_plus" if (has_w or tuned_affine) else None)
    notes: list[str] = []
    if method is not None and method not in METHODS:
        raise ConversionError(f"unknown method {method!r} (known: {', '.join(METHODS)})", path=path)
    if detected is None:
        if method != "affine_plus":
            raise ConversionError(
                "has no StyleDomain parameters (no offset / weights_offset / "
                "affine.weights_offset_* tensors); if its affine layers were fine-tuned, convert "
                "with -o method=affine_plus", path=path)
        detected = "affine_plus"
    elif method is not None and method != detected:
        raise ConversionError(f"holds a {detected} domain, not {method}", path=path)

    tensors: dict[str, Tensor] = {}
    used_params: dict[str, str] = {}
    config: dict[str, Any] = dict(desc)

    def index_of(loc: tuple[int, str]) -> int:
        return _nv_style_index(loc[0], loc[1], path)

    # conv weight offsets (any method)
    weight_layers: list[int] = []
    for loc, items in sorted(domain.items()):
        keys = [k for k in items if k == "weights_offset" or k.startswith("weights_offset_")]
        if not keys:
            continue
        name = param(loc).weights
        label = f"b{loc[0]}.{loc[1]}"
        if name is None:
            raise ConversionError(f"{label} has weight offsets but the pickle does not say how they "
                                  "are applied (no weights parametrisation recorded)", path=path)
        if not name.endswith("additive") or name.startswith("out+in"):
            raise ConversionError(f"{label} uses weight parametrisation {name!r}; only additive "
                                  "ones (e.g. 'out_in_additive') can be converted", path=path)
        layer = layout[index_of(loc)]
        full = (layer.out_ch, layer.in_ch, 1, 1)
        if "weights_offset" in items:
            off = items["weights_offset"]
            if off.ndim != 4 or tuple(off.shape[2:]) != (1, 1) or any(
                    s not in (1, f) for s, f in zip(off.shape[:2], full[:2], strict=True)):
                raise ConversionError(f"{label}.weights_offset has shape {list(off.shape)}; only "
                                      f"offsets broadcastable to {list(full)} (no spatial part) "
                                      "can be converted", path=path)
            offset = off.float().expand(full)
        else:
            ins = sorted(k for k in items if k.startswith("weights_offset_in_"))
            outs = sorted(k for k in items if k.startswith("weights_offset_out_"))
            if len(ins) != len(outs) or not ins:
                raise ConversionError(f"{label} has unpaired low-rank weight offsets", path=path)
            offset = sum(items[o].float() @ items[i].float()
                         for o, i in zip(outs, ins, strict=True)) / len(ins)
            offset = offset.reshape(*offset.shape, 1, 1)
            if tuple(offset.shape) != full:
                raise ConversionError(f"{label} low-rank weight offsets give {list(offset.shape)}, "
                                      f"expected {list(full)}", path=path)
        tensors[f"weight_offsets.{layer.index}"] = offset.contiguous()
        weight_layers.append(layer.index)
        used_params[f"{label}.weights"] = name
    config["weight_offset_layers"] = sorted(weight_layers)
    if weight_layers:
        notes.append(f"conv weight offsets on style layers {sorted(weight_layers)}: render with "
                     "method.weight_deltas(generator) (every stylebridge renderer does)")

    if detected == "stylespace":
        torgb = False
        for loc, items in sorted(domain.items()):
            if "offset" not in items:
                continue
            name = param(loc).s
            label = f"b{loc[0]}.{loc[1]}"
            if name != "additive":
                raise ConversionError(
                    f"{label} uses StyleSpace parametrisation {name!r}; only 'additive' "
                    "(s + offset) is an additive StyleSpace domain", path=path)
            layer = layout[index_of(loc)]
            off = items["offset"].float()
            if tuple(off.shape) != (1, layer.in_ch):
                raise ConversionError(f"{label}.offset has shape {list(off.shape)}, expected "
                                      f"[1, {layer.in_ch}]", path=path)
            if "offset_mask" in items:
                off = off * items["offset_mask"].float()
            if layer.is_rgb:  # NVlabs: s = affine(w) / sqrt(C_in) + offset (see module docstring)
                off = off * math.sqrt(layer.in_ch * layer.kernel ** 2)
                torgb = True
            tensors[f"offsets.{layer.index}"] = off.reshape(-1)
            used_params[f"{label}.s"] = name
        for layer in layout:  # layers the pickle gives no offset: zero
            if (torgb or not layer.is_rgb) and f"offsets.{layer.index}" not in tensors:
                tensors[f"offsets.{layer.index}"] = torch.zeros(layer.in_ch, device=_device(state))
        config["torgb"] = torgb
    elif detected == "affinelight_plus":
        layers, ranks = [], set()
        for loc, items in sorted(domain.items()):
            ins = sorted((k for k in items if k.startswith("affine.weights_offset_in_")),
                         key=lambda k: int(k.rsplit("_", 1)[1]))
            outs = sorted((k for k in items if k.startswith("affine.weights_offset_out_")),
                          key=lambda k: int(k.rsplit("_", 1)[1]))
            if not ins:
                continue
            label = f"b{loc[0]}.{loc[1]}"
            name = param(loc).affine
            if name is None or not _AFFINE_RANK_RX.match(name):
                raise ConversionError(f"{label} uses affine parametrisation {name!r}; only "
                                      "'affine_out_in_K_T_additive' can be converted", path=path)
            if len(ins) != len(outs):
                raise ConversionError(f"{label} has unpaired low-rank affine offsets", path=path)
            layer = layout[index_of(loc)]
            v = torch.cat([items[k].float() for k in ins], dim=0)          # [K*T, style_dim]
            u = torch.cat([items[k].float() for k in outs], dim=1) / len(outs)  # [C, K*T]
            if v.shape[1] != cfg.style_dim or u.shape[0] != layer.in_ch or u.shape[1] != v.shape[0]:
                raise ConversionError(f"{label} low-rank affine offsets have shapes "
                                      f"{list(u.shape)} @ {list(v.shape)}, expected "
                                      f"[{layer.in_ch}, r] @ [r, {cfg.style_dim}]", path=path)
            tensors[f"affine_in.{layer.index}"] = v
            tensors[f"affine_out.{layer.index}"] = u
            layers.append(layer.index)
            ranks.add(int(v.shape[0]))
            used_params[f"{label}.affine"] = name
        if len(ranks) != 1:
            raise ConversionError(f"has low-rank affine offsets of different ranks {sorted(ranks)}",
                                  path=path)
        config["layers"] = sorted(layers)
        config["rank"] = ranks.pop()
    else:  # affine_plus
        layers = []
        for layer in layout:
            res, lname = _nv_name(layer)
            prefix = f"synthesis.b{res}.{lname}.affine"
            tensors[f"affine_weight.{layer.index}"] = base[f"{prefix}.weight"].float()
            tensors[f"affine_bias.{layer.index}"] = base[f"{prefix}.bias"].float()
            layers.append(layer.index)
        config["layers"] = layers
        notes.append("Affine+: the affine layers of this pickle's G_ema are taken as the tuned "
                     "ones; the source affines come from the generator you render with")
        if not has_w and not tuned_affine:
            notes.append("the pickle records no sign of fine-tuned affine layers; converted as "
                         "asked (method=affine_plus)")
    return DissimilarDomain(detected, config, tensors, notes, used_params)


def _device(state: Mapping[str, Tensor]) -> torch.device:
    for value in state.values():
        return value.device
    return torch.device("cpu")


def _nv_name(layer: LayerShape) -> tuple[int, str]:
    """Our style layer → NVlabs (resolution, conv0|conv1|torgb)."""
    if layer.index < 2:
        return 4, ("conv1", "torgb")[layer.index]
    j, k = divmod(layer.index - 2, 3)
    return 2 ** (j + 3), ("conv0", "conv1", "torgb")[k]


def expected_shapes(method: str, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of ``method`` built from ``config`` (on the meta device)."""
    with torch.device("meta"):
        obj = METHODS[method](**config)
    return {k: tuple(v.shape) for k, v in obj.state_dict().items()}


def _convert_dissimilar(src: Path, dst: Path, options: Mapping[str, Any]) -> ConversionResult:
    from stylebridge.core.safe_pickle import load_nvlabs_pickle, module_state_dict

    data = load_nvlabs_pickle(src)
    g = data["G_ema"]
    state = module_state_dict(g)
    kw = g.init_kwargs
    default, _ = _global_parametrization(kw)
    found = dissimilar_domains_tensors(state, kw, _layer_parametrizations(g, default),
                                       method=options.get("method"), path=src)
    method = METHODS[found.method](**found.config)
    check_state_dict(src, {k: v.shape for k, v in method.state_dict().items()}, found.tensors,
                     what=f"{found.method} domain", error=ConversionError)
    method.load_state_dict({k: v.contiguous() for k, v in found.tensors.items()}, strict=True)
    notes = [*found.notes, DISSIMILAR_LICENCE]
    extra = {"source": "AIRI-Institute/StyleDomain DissimilarDomains", "source_file": src.name,
             "parametrizations": found.parametrizations, "notes": notes,
             "licence": DISSIMILAR_LICENCE}
    method.save(dst, extra=extra)
    return ConversionResult(path=dst, kind=KIND, plugin=method.name,
                            n_tensors=len(found.tensors), notes=tuple(notes))


class StyleDomainConverter(Converter):
    """StyleDomain checkpoints → stylebridge domain methods (stylespace / affine_plus / affinelight_plus)."""

    name = "styledomain"
    accepted_options = frozenset({"patch_key", "style_dim", "method"})
    source = ("StyleDomain: SimilarDomains StyleSpace .pt (s_delta) or a DissimilarDomains "
              "StyleGAN2-ADA .pkl (StyleSpace / Affine+ / AffineLight+); pickled code never runs")

    def convert(self, src: Path, dst: Path, **options: Any) -> ConversionResult:
        src, dst = Path(src), Path(dst)
        self.check_options(options, src)
        if not src.is_file():
            raise ConversionError("no such file" if not src.exists() else "is not a file", path=src)
        if zipfile.is_zipfile(src) or src.suffix.lower() in (".pt", ".pth"):
            return _convert_similar(src, dst, options)
        return _convert_dissimilar(src, dst, options)


@hookimpl
def register_domain_methods(register: Any) -> None:
    for cls in METHODS.values():
        register(cls)


@hookimpl
def register_converters(register: Any) -> None:
    register(StyleDomainConverter())
