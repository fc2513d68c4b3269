"""StyleDomain's StyleSpace domain method: additive offsets on the style vectors.

``s_i' = s_i + scale_i * Δ_i``.  SimilarDomains' ``s_delta`` has one offset per
*conv* layer (17 at 1024 px, ``heads.conv_{k}.params_in`` [1, C]), none on ToRGB;
``torgb=True`` adds ToRGB offsets (DissimilarDomains' StyleSpace has them).  An image
domain renders with the style image's fine W+ rows mixed in, as upstream does
(:class:`~stylebridge.plugins.domains.base.ReferenceRows`; ``mix=false``: without).  Layout,
index convention and weight offsets: :mod:`stylebridge.plugins.domains.base`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from stylebridge.core.options import as_bool
from stylebridge.plugins.domains.base import ReferenceRows, StyleDomainMethod
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator


class StyleSpace(ReferenceRows, StyleDomainMethod):
    """StyleSpace: per-layer additive offsets on the style vectors s (StyleDomain)."""

    name = "stylespace"
    description = "StyleSpace: additive per-layer offsets on the style vectors s (StyleDomain)"

    def __init__(self, size: int = 1024, style_dim: int = 512,
                 channels: Mapping[Any, int] | None = None, torgb: bool = False,
                 weight_offset_layers: Sequence[int] = (), mix: bool = True) -> None:
        super().__init__(size, style_dim, channels, weight_offset_layers)
        self._init_mixing(mix)  # an image domain's style rows (ReferenceRows)
        self.torgb = as_bool(torgb, "torgb")
        self.offsets = nn.ParameterDict([
            (str(layer.index), nn.Parameter(torch.zeros(layer.in_ch)))
            for layer in self.layout if self.torgb or not layer.is_rgb])

    def config(self) -> dict[str, Any]:
        return {**super().config(), "torgb": self.torgb, **self._mix_config()}

    @property
    def layers(self) -> list[int]:
        """Style-layer indices that carry an offset."""
        return [int(k) for k in self.offsets]

    def styles(self, generator: Generator, w_plus: Tensor,
               offset_scale: Sequence[float] | Tensor | None = None) -> list[Tensor]:
        """``s_i + scale_i * Δ_i`` for every layer with an offset, the source ``s_i`` elsewhere
        (an image domain: ``s_i`` of the mixed rows, :class:`ReferenceRows`)."""
        w_plus, styles, scale = self._prepare(generator, w_plus, offset_scale)
        self._mixed(generator, w_plus, scale, styles)
        for key, offset in self.offsets.items():
            i = int(key)
            delta = offset.to(styles[i])
            if scale is not None:
                delta = delta * scale[i]
            styles[i] = styles[i] + delta
        return styles


@hookimpl
def register_domain_methods(register: Any) -> None:
    register(StyleSpace)
