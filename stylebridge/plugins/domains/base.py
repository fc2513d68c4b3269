"""What the StyleDomain domain methods share: the generator layout and :class:`StyleDomainMethod`.

StyleDomain (Alanov et al., ICCV 2023; AIRI-Institute/StyleDomain) adapts a frozen
StyleGAN2 to a new domain with few parameters.  Its parameterisations are domain
methods (``DomainMethod.styles(generator, w_plus, offset_scale)``):
``stylespace`` (:mod:`stylebridge.plugins.domains.stylespace`), ``affine_plus`` and
``affinelight_plus`` (:mod:`stylebridge.plugins.domains.affine`); the
``styledomain`` converter (:mod:`stylebridge.plugins.converters.styledomain`) reads
the upstream files.

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
:func:`stylebridge.registry.resolve.create` / :func:`~stylebridge.registry.resolve.load_domain`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.interfaces import DomainMethod
from stylebridge.core.schema import CHANNELS, LAYER_INDEX, SIZE, STYLE_DIM, Field
from stylebridge.core.stylegan2.config import GeneratorConfig
from stylebridge.errors import CheckpointError

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator

KIND = "domain_method"

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


def make_generator_config(size: int, style_dim: int, channels: Mapping[Any, int] | None) -> GeneratorConfig:
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


def as_scale(offset_scale: Sequence[float] | Tensor | None, n_layers: int, *,
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

    requires_weights: ClassVar[bool] = True
    weights_hint: ClassVar[str | None] = (
        "train one with `stylebridge train domain` or convert an official domain with "
        "`stylebridge convert`")
    config_schema: ClassVar[Mapping[str, Field]] = {
        "size": SIZE, "style_dim": STYLE_DIM, "channels": CHANNELS,
        "weight_offset_layers": LAYER_INDEX, "layers": LAYER_INDEX,
        "torgb": Field("bool"), "rank": Field("int", 1, 512), "seed": Field("int", 0, 2**63 - 1),
        "apply": Field("str", choices=("weights", "styles")), "mix": Field("bool"),
    }

    def __init__(self, size: int = 1024, style_dim: int = 512,
                 channels: Mapping[Any, int] | None = None,
                 weight_offset_layers: Sequence[int] | int | str = ()) -> None:
        super().__init__()
        self.generator_config = make_generator_config(size, style_dim, channels)
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

    @classmethod
    def for_generator(cls, generator: Generator, **options: Any) -> StyleDomainMethod:
        """A new, untrained method for ``generator``: its ``size``, ``style_dim`` and
        ``channels`` fill whatever ``options`` leaves open (``train domain`` starts here)."""
        cfg = generator.config()
        fill = {k: cfg[k] for k in ("size", "style_dim", "channels") if k not in options}
        return cls(**fill, **options)

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
        scale = as_scale(offset_scale, self.n_style_layers, device=first.device, dtype=first.dtype)
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
        scale = as_scale(offset_scale, self.n_style_layers, device=styles[0].device,
                          dtype=styles[0].dtype)
        return w_plus, styles, scale

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, path: str | Path, *, extra: Mapping[str, Any] | None = None) -> Path:
        """Write this domain as a stylebridge checkpoint (kind ``domain_method``)."""
        return save_checkpoint(path, self.state_dict(), kind=KIND, plugin=self.name,
                               config=self.config(), extra=extra)



def reference_mixed(generator: Generator, layout: Sequence[LayerShape], w_plus: Tensor,
                    reference: Tensor, mix_from: int, scale: Tensor | None,
                    styles: list[Tensor]) -> dict[int, Tensor]:
    """Reference mixing: every style layer reading a W+ row ``>= mix_from`` reads
    ``lerp(w_row, reference[row], scale_i)`` instead (``scale_i`` 1 without ``offset_scale``:
    the row replaced, as upstream's inference does), its style in ``styles`` recomputed from
    it; returns that mixed row per style-layer index (for methods whose change reads w)."""
    mixed: dict[int, Tensor] = {}
    for layer in layout:
        if layer.row < mix_from:
            continue
        x = w_plus[:, layer.row]
        step = reference[layer.row].to(x) - x
        x = x + (step if scale is None else step * scale[layer.index].to(x))
        mixed[layer.index] = x
        styles[layer.index] = generator.get_submodule(layer.name).modulation(x)
    return mixed


class ReferenceRows:
    """StyleDomain's and HyperDomainNet's *image* domains (``da_type`` ``im2im``): upstream's
    ``Inferencer`` (SimilarDomains ``core/utils/example_utils.py``, ``_mtg_mixing_noise``)
    renders every input with its W+ rows ``7:`` replaced by the style image's own
    (``style_latents``, saved in each such file), scaled with the domain
    (``mx_n``: upstream's GIFs pass the same strength as the offsets).  The converters keep
    those rows in the header (``style_latents``); :meth:`read_extra` takes them, and the
    method renders with them mixed in (:func:`reference_mixed`, the first mixed row is
    ``n_latent - k`` for ``k`` rows: 7 at 1024 px).  ``mix=false``
    (``--method FILE:mix=false``) renders the domain change alone, on the input's own fine
    rows.  Text domains have no such rows and render as before.  Mixed into a
    :class:`StyleDomainMethod` subclass (``stylespace``, ``domain_modulation``)."""

    mix: bool
    #: the style image's W+ rows (``[n_latent, style_dim]``, zeros above ``mix_from``) or None
    reference_latent: Tensor | None = None
    mix_from: int = 0

    def _init_mixing(self, mix: bool) -> None:
        from stylebridge.core.options import as_bool

        self.mix = as_bool(mix, "mix")
        self.reference_latent = None

    def _mix_config(self) -> dict[str, Any]:
        """``mix`` is written only when it is not the default: files stay as they were."""
        return {} if self.mix else {"mix": False}

    def read_extra(self, extra: Mapping[str, Any]) -> None:
        latents = extra.get("style_latents")
        if latents is None:
            return
        cfg = self.generator_config  # type: ignore[attr-defined]
        try:
            rows = torch.tensor(latents, dtype=torch.float32).reshape(-1, cfg.style_dim)
        except (TypeError, ValueError, RuntimeError):
            raise CheckpointError(f"style_latents (header) of shape {extra.get('style_latents_shape')} "
                                  f"do not fit a {cfg.style_dim}-wide W+") from None
        if not 1 <= rows.shape[0] < cfg.n_latent:
            raise CheckpointError(f"style_latents (header) hold {rows.shape[0]} W+ rows; a "
                                  f"{cfg.size}px generator has {cfg.n_latent}")
        if not bool(torch.isfinite(rows).all()):
            raise CheckpointError("style_latents (header) hold NaN or Inf values")
        self.mix_from = cfg.n_latent - rows.shape[0]
        full = torch.zeros(cfg.n_latent, cfg.style_dim)
        full[self.mix_from:] = rows
        self.reference_latent = full

    def _mixed(self, generator: Generator, w_plus: Tensor, scale: Tensor | None,
               styles: list[Tensor]) -> dict[int, Tensor]:
        if self.reference_latent is None or not self.mix:
            return {}
        return reference_mixed(generator, self.layout, w_plus,  # type: ignore[attr-defined]
                               self.reference_latent, self.mix_from, scale, styles)

    def save(self, path: str | Path, *, extra: Mapping[str, Any] | None = None) -> Path:
        """As :meth:`StyleDomainMethod.save`, the style image's rows kept in the header."""
        more = dict(extra or {})
        if self.reference_latent is not None:
            rows = self.reference_latent[self.mix_from:]
            more.setdefault("da_type", "im2im")
            more["style_latents"] = rows[None].tolist()  # upstream's [1, k, style_dim]
            more["style_latents_shape"] = [1, *rows.shape]
        return super().save(path, extra=more)  # type: ignore[misc]


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

