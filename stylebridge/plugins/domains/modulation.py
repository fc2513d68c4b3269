"""HyperDomainNet's domain modulation: one vector per conv layer, multiplying the modulated,
demodulated conv weight per input channel.

Alanov, Titov & Vetrov (2022) adapt a frozen StyleGAN2 with a small "domain-modulation"
vector ``d_i`` per modulated conv (17 at 1024 px; none on the ToRGB layers).  Upstream
(MACderRu/HyperDomainNet, ``patch_key: cin_mult`` in every FFHQ config;
``core/stylegan_patches.py`` ``ChannelINMult`` applied in
``gan_models/StyleGAN2/offsets_model.py`` *after* demodulation; heads ``conv_0 … conv_16``
in ``core/parametrizations.py``, ``params_in`` ``[1, 1, C_in, 1, 1]`` initialised to 0)::

    W'_i = demod(W_i · s_i) · (1 + d_i)          (per input channel of conv i)

Because the product comes after demodulation it is not a change of the style vector ``s``
(scaling ``s`` would also change the demodulation): :meth:`styles` returns the source styles
and :meth:`weight_deltas` returns, per conv, a
:class:`~stylebridge.core.stylegan2.layers.ConvEdit` with the input gain ``1 + scale_i·d_i``,
which :meth:`Generator.synthesis` applies for that call.  ``offset_scale`` (alpha-rescaling,
``--skip-layers``) scales the *change* ``d_i`` of layer ``i``: ``scale_i = 1/α_i`` divides
the domain's multiplicative change by the encoder's measured shrinkage, and 0 leaves the
layer as the source generator has it.

The thesis describes the method as "inserting domain-modulated styles", which can also be read
as a change of the style vector, ``s_i' = (1 + d_i)·s_i`` before demodulation (StyleDomain's
DissimilarDomains ``multiplicative`` parametrisation; the demodulation then renormalises the
product).  ``apply="styles"`` is that reading; ``apply="weights"`` (the default) is the
upstream code above, which every converted HyperDomainNet domain needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from stylebridge.core.stylegan2.layers import ConvEdit
from stylebridge.plugins.domains.base import ReferenceRows, StyleDomainMethod, as_scale
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator


class DomainModulation(ReferenceRows, StyleDomainMethod):
    """Domain modulation (HyperDomainNet ``cin_mult``): ``W' = demod(W·s)·(1 + d)`` per conv."""

    name = "domain_modulation"
    description = ("domain modulation (HyperDomainNet): a per-conv vector multiplying the "
                   "demodulated weight per input channel")

    def __init__(self, size: int = 1024, style_dim: int = 512,
                 channels: Mapping[Any, int] | None = None,
                 weight_offset_layers: Sequence[int] = (), apply: str = "weights",
                 mix: bool = True) -> None:
        super().__init__(size, style_dim, channels, weight_offset_layers)
        self._init_mixing(mix)  # an image domain's style rows (ReferenceRows)
        if apply not in APPLY:
            raise ValueError(f"apply={apply!r}: expected one of {', '.join(APPLY)}")
        self.apply_to = apply  # not `self.apply`: that is nn.Module.apply(fn)
        self.modulation = nn.ParameterDict([
            (str(layer.index), nn.Parameter(torch.zeros(layer.in_ch)))
            for layer in self.layout if not layer.is_rgb])

    def config(self) -> dict[str, Any]:
        # "apply" is written only when it is not the default: files stay as they were
        extra = {} if self.apply_to == "weights" else {"apply": self.apply_to}
        return {**super().config(), **extra, **self._mix_config()}

    @property
    def layers(self) -> list[int]:
        """Style-layer indices of the modulated convs (the ToRGB layers carry none)."""
        return [int(k) for k in self.modulation]

    def styles(self, generator: Generator, w_plus: Tensor,
               offset_scale: Sequence[float] | Tensor | None = None) -> list[Tensor]:
        """The source styles (``apply="weights"``: the demodulated weights change, not ``s``),
        or ``(1 + scale_i·d_i)·s_i`` per conv (``apply="styles"``); an image domain's styles
        of the mixed rows (:class:`~stylebridge.plugins.domains.base.ReferenceRows`)."""
        w_plus, styles, scale = self._prepare(generator, w_plus, offset_scale)
        self._mixed(generator, w_plus, scale, styles)
        if self.apply_to == "styles":
            for key, d in self.modulation.items():
                i = int(key)
                change = d.to(styles[i]) if scale is None else d.to(styles[i]) * scale[i]
                styles[i] = styles[i] * (1.0 + change)
        return styles

    def has_weight_offsets(self) -> bool:
        return super().has_weight_offsets() or (self.apply_to == "weights" and any(
            bool(d.detach().ne(0).any()) for d in self.modulation.values()))

    def weight_deltas(self, generator: Generator,
                      offset_scale: Sequence[float] | Tensor | None = None
                      ) -> dict[int, Tensor | ConvEdit]:
        """Per modulated conv ``i``: a :class:`ConvEdit` with the input gain
        ``1 + scale_i · d_i`` (plus any conv weight offsets of the base class)."""
        edits: dict[int, Tensor | ConvEdit] = dict(super().weight_deltas(generator, offset_scale))
        if self.apply_to == "styles":
            return edits
        first = next(iter(self.modulation.values()))
        scale = as_scale(offset_scale, self.n_style_layers, device=first.device, dtype=first.dtype)
        return modulation_edits(edits, {int(k): d for k, d in self.modulation.items()}, scale)


def modulation_edits(edits: Mapping[int, Tensor | ConvEdit], vectors: Mapping[int, Tensor],
                     scale: Tensor | None) -> dict[int, Tensor | ConvEdit]:
    """The domain-modulation edits: ``edits`` (conv weight offsets by style-layer index) plus,
    for every conv ``i`` in ``vectors``, a :class:`ConvEdit` with the input gain
    ``1 + scale_i · d_i`` (``d_i``: ``[C_in]`` for one domain, ``[B, C_in]`` for one domain
    vector per sample) that keeps a weight offset of that layer.

    Shared by ``domain_modulation`` (one learnt vector per conv) and ``hyperdomain`` (vectors
    predicted from a CLIP text embedding), so both apply ``W' = demod(W·s)·(1 + d)`` and
    alpha-rescaling / ``--skip-layers`` (``scale``) the same way.
    """
    out: dict[int, Tensor | ConvEdit] = dict(edits)
    for i, d in vectors.items():
        change = d if scale is None else d * scale[i].to(d)
        delta = out.get(i)
        out[i] = ConvEdit(weight_delta=delta if isinstance(delta, Tensor) else None,
                          input_gain=1.0 + change)
    return out


#: where the domain vector acts: on the demodulated weights (upstream) or on the styles
APPLY = ("weights", "styles")


@hookimpl
def register_domain_methods(register: Any) -> None:
    register(DomainModulation)
