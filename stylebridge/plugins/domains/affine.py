"""StyleDomain's Affine+ and AffineLight+ domain methods (DissimilarDomains).

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

Both also train the conv weights of the 64 px block by default (``weight_offsets``, see
:mod:`stylebridge.plugins.domains.base`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylebridge.errors import CheckpointError
from stylebridge.plugins.domains.base import StyleDomainMethod, block_layers, parse_layer_list
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator


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

    @classmethod
    def for_generator(cls, generator: Generator, **options: Any) -> AffinePlus:
        """A new Affine+ for ``generator`` that starts as the identity domain (its affine
        layers copied from the generator's, see :meth:`init_from`)."""
        method = super().for_generator(generator, **options)
        assert isinstance(method, AffinePlus)
        return method.init_from(generator)

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
        # V is drawn by the CPU generator on the CPU, also when the default device is another
        # (meta, for the shape pre-check of a load: no arithmetic on meta tensors)
        self.affine_in = nn.ParameterDict()
        self.affine_out = nn.ParameterDict()
        for i in self.layers:
            v = torch.randn(self.rank, sd, generator=gen, device="cpu")
            v = (v / v.norm(dim=1, keepdim=True)).to(torch.get_default_device())
            self.affine_in[str(i)] = nn.Parameter(v)
            self.affine_out[str(i)] = nn.Parameter(torch.zeros(self.layout[i].in_ch, self.rank))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "rank": self.rank, "seed": self.seed}

    def _tuned(self, key: str, w: Tensor, modulation: nn.Module, source: Tensor) -> Tensor:
        delta_w = self.affine_out[key].to(w) @ self.affine_in[key].to(w)  # [C, style_dim]
        return source + F.linear(w, delta_w * modulation.scale)



@hookimpl
def register_domain_methods(register: Any) -> None:
    register(AffinePlus)
    register(AffineLightPlus)
