"""MindTheGap's one-shot adaptation as a generator delta: what fine-tuning changed, nothing else.

Zhu, Abdal, Femiani & Wonka (ICLR 2022; ZPdesu/MindTheGap) fine-tune the StyleGAN2 itself
from one reference image.  Upstream's default training phase (``--phase`` unset in
``options/MTG_options.py``; ``SG2Generator.get_training_layers`` in ``models/MTG.py``) trains
the learned constant ``input`` and every styled conv (``conv1`` and ``convs``): their conv
weights, modulation affines, noise strengths and activation biases; the mapping network and
the ToRGB layers stay frozen.  This method stores the *difference* of those parameters from
the source generator, per style layer ``i`` (the index convention of
:mod:`stylebridge.plugins.domains.base`):

* ``conv_weight[i]`` ``[out, in, k, k]``, ``bias[i]`` (``[out]``; ToRGB: ``[3]``) and
  ``noise_strength[i]`` (``[1]``, convs only) go to :meth:`Generator.synthesis` as a
  :class:`~stylebridge.core.stylegan2.layers.ConvEdit` (:meth:`weight_deltas`), as does the
  constant ``const_input`` ``[1, C, 4, 4]`` (on style layer 0, ``conv1``, which reads it);
* ``affine_weight[i]`` ``[in, style_dim]`` and ``affine_bias[i]`` ``[in]`` change the style
  vector: ``s'_i = A_i(w) + ΔA_i(w)`` with ``ΔA_i(w) = linear(w, ΔW·c, Δb·lr_mul)`` (the
  modulation's equalised-lr constants), returned by :meth:`styles`.

Every change is linear in the delta, so the rendered image equals that of a generator whose
parameters were replaced by ``θ0 + Δ`` (tested), while the generator itself is never
changed.  ``offset_scale[i]`` (``--calibrate alpha``, ``--skip-layers``) multiplies the delta
of style layer ``i`` (0 = the source layer, 1 = the fine-tuned one); the constant input
follows layer 0.  ``layers`` (default: every conv layer, upstream's default phase) lists the
style layers that carry a delta; ToRGB layers may be listed (upstream's ``--phase all``; the
converter adds them when a published file changed them); the mapping network cannot be
carried (a W+ method never sees it) and the converter refuses a file that changed it.

Reference mixing.  Upstream's ``inference.py`` and ``generate.py`` render every input with
the W+ rows ``7:`` replaced by the reference's own inversion (``style_latent``, saved in each
published checkpoint): the fine rows carry the reference's colours.  The method keeps that
latent (``reference_latent`` ``[n_latent, style_dim]``) and, with ``mix=true`` (what
``train mindthegap`` and the converter write when they have the latent), renders every
style layer that reads a row ``>= mix_from`` from ``lerp(w_row, reference_row, scale_i)``;
``mix=false`` (``--method mindthegap:RUN.safetensors:mix=false``) renders the fine-tuned
generator on the input's own latents (upstream's "without_color" samples).  Training never
mixes (upstream trains on plain w; :meth:`mixing` switches it off).  ``mix_from`` is 7 at
1024 px (upstream); ``train mindthegap`` scales it to other depths as ``round(7·n/18)``
(ours).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylebridge.core.schema import CHANNELS, LAYER_INDEX, SIZE, STYLE_DIM, Field
from stylebridge.core.stylegan2.layers import ConvEdit
from stylebridge.plugins.domains.base import (
    LayerShape,
    StyleDomainMethod,
    as_scale,
    parse_layer_list,
    reference_mixed,
)
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator

#: upstream's first W+ row taken from the reference at inference (``output_latent[:, 7:]``)
UPSTREAM_MIX_FROM = 7


def default_mix_from(n_latent: int) -> int:
    """Upstream's 7 of 18 rows; ``round(7·n/18)`` for generators of another depth (ours)."""
    return UPSTREAM_MIX_FROM if n_latent == 18 else max(1, round(UPSTREAM_MIX_FROM * n_latent / 18))


#: upstream's ``--phase`` choices (``SG2Generator.get_training_layers``) as rosinality
#: ``convs`` slices; every phase except ``all`` also trains ``input`` and ``conv1``
PHASES: dict[str, slice] = {
    "default": slice(None), "texture": slice(2, 10), "shape": slice(0, 2),
    "no_fine": slice(0, 10), "shape_expanded": slice(0, 3),
}


def phase_layers(phase: str, n_style_layers: int) -> list[int]:
    """Style-layer indices upstream's ``--phase`` trains (``default``: ``input``, ``conv1`` and
    every ``convs[k]``; rosinality's ``convs[k]`` is style layer ``k + 2 + k // 2``)."""
    if phase not in PHASES:
        raise ValueError(f"phase {phase!r}: expected one of {', '.join(PHASES)}")
    n_convs = 2 * ((n_style_layers - 2) // 3)
    convs = list(range(n_convs))[PHASES[phase]]
    return [0] + [k + 2 + k // 2 for k in convs]


def parameter_names(layer: LayerShape) -> dict[str, str]:
    """Part of this method → the generator parameter (rosinality layout) it changes, for one
    style layer (``convs.3.conv`` → ``convs.3.conv.weight``, ``convs.3.activate.bias`` ...)."""
    block = layer.name.rsplit(".", 1)[0]   # the StyledConv / ToRGB around the modulated conv
    out = {"conv_weight": f"{layer.name}.weight", "affine_weight": f"{layer.name}.modulation.weight",
           "affine_bias": f"{layer.name}.modulation.bias"}
    if layer.is_rgb:
        out["bias"] = f"{block}.bias"
    else:
        out["bias"] = f"{block}.activate.bias"
        out["noise_strength"] = f"{block}.noise.weight"
    return out


class MindTheGap(StyleDomainMethod):
    """A fine-tuned generator stored as its difference from the source (MindTheGap)."""

    name = "mindthegap"
    description = ("MindTheGap: one-shot fine-tuning of the synthesis network, stored as a "
                   "generator delta and applied per call")
    config_schema: ClassVar[Mapping[str, Field]] = {
        "size": SIZE, "style_dim": STYLE_DIM, "channels": CHANNELS, "layers": LAYER_INDEX,
        "input": Field("bool"), "mix": Field("bool"), "mix_from": Field("int", 0, 21),
    }

    def __init__(self, size: int = 1024, style_dim: int = 512,
                 channels: Mapping[Any, int] | None = None,
                 layers: Sequence[int] | int | str | None = None, input: bool = True,
                 mix: bool = False, mix_from: int = UPSTREAM_MIX_FROM) -> None:
        super().__init__(size, style_dim, channels)
        n_latent = self.generator_config.n_latent
        if not 0 <= int(mix_from) < n_latent:
            raise ValueError(f"mix_from {mix_from} out of range 0..{n_latent - 1} (W+ rows)")
        self.mix = bool(mix)
        self.mix_from = int(mix_from)
        self._mixing_enabled = True
        self.register_buffer("reference_latent", torch.zeros(n_latent, style_dim))
        n = len(self.layout)
        chosen = parse_layer_list(layers, "layers")
        if chosen is None:
            chosen = [layer.index for layer in self.layout if not layer.is_rgb]
        chosen = sorted(set(chosen))
        bad = [i for i in chosen if not 0 <= i < n]
        if bad:
            raise ValueError(f"layers {bad} out of range 0..{n - 1}")
        self.layers = chosen
        self.use_input = bool(input)
        shapes = [self.layout[i] for i in chosen]
        self.conv_weight = nn.ParameterDict([
            (str(s.index), nn.Parameter(torch.zeros(s.out_ch, s.in_ch, s.kernel, s.kernel)))
            for s in shapes])
        self.affine_weight = nn.ParameterDict([
            (str(s.index), nn.Parameter(torch.zeros(s.in_ch, style_dim))) for s in shapes])
        self.affine_bias = nn.ParameterDict([
            (str(s.index), nn.Parameter(torch.zeros(s.in_ch))) for s in shapes])
        self.bias = nn.ParameterDict([
            (str(s.index), nn.Parameter(torch.zeros(s.out_ch))) for s in shapes])
        self.noise_strength = nn.ParameterDict([
            (str(s.index), nn.Parameter(torch.zeros(1))) for s in shapes if not s.is_rgb])
        c4 = self.generator_config.channels[4]
        self.const_input = nn.Parameter(torch.zeros(1, c4, 4, 4)) if self.use_input else None

    def config(self) -> dict[str, Any]:
        return {**self.generator_description(), "layers": list(self.layers),
                "input": self.use_input, "mix": self.mix, "mix_from": self.mix_from}

    @torch.no_grad()
    def set_reference_latent(self, w_plus: Tensor, *, mix: bool = True) -> None:
        """Keep the reference's W+ (``[n_latent, style_dim]`` or ``[1, n_latent, style_dim]``)
        for reference mixing, and switch it on (``mix``)."""
        w = w_plus.detach().reshape(-1, w_plus.shape[-1])
        if tuple(w.shape) != tuple(self.reference_latent.shape):
            raise ValueError(f"reference latent of shape {list(w_plus.shape)}; this generator "
                             f"needs {list(self.reference_latent.shape)}")
        self.reference_latent.copy_(w.to(self.reference_latent))
        self.mix = bool(mix)

    @contextlib.contextmanager
    def mixing(self, enabled: bool) -> Iterator[None]:
        """Switch reference mixing on/off inside the block (training renders plain w)."""
        before = self._mixing_enabled
        self._mixing_enabled = enabled
        try:
            yield
        finally:
            self._mixing_enabled = before

    # -- parameters per generator tensor ------------------------------------------------------
    def generator_parameters(self) -> dict[str, Tensor]:
        """Generator parameter name (rosinality layout) → this method's delta tensor, shaped
        like that parameter (``θ0 + Δ`` gives the fine-tuned generator)."""
        out: dict[str, Tensor] = {}
        for i in self.layers:
            layer, key = self.layout[i], str(i)
            for part, name in parameter_names(layer).items():
                delta = getattr(self, part)[key]
                if part == "conv_weight":
                    delta = delta.unsqueeze(0)
                elif part == "bias" and layer.is_rgb:
                    delta = delta.view(1, -1, 1, 1)
                out[name] = delta
        if self.const_input is not None:
            out["input.input"] = self.const_input
        return out

    @torch.no_grad()
    def set_from_generators(self, base: Mapping[str, Tensor], tuned: Mapping[str, Tensor]) -> None:
        """Set every delta to ``tuned[name] - base[name]`` (state dicts in our layout)."""
        for name, delta in self.generator_parameters().items():
            delta.copy_((tuned[name].float() - base[name].float()).reshape(delta.shape))

    # -- the domain method --------------------------------------------------------------------
    def styles(self, generator: Generator, w_plus: Tensor,
               offset_scale: Sequence[float] | Tensor | None = None) -> list[Tensor]:
        """The source styles plus ``scale_i · ΔA_i(w+[:, row_i])`` on every layer with a delta."""
        w_plus, styles, scale = self._prepare(generator, w_plus, offset_scale)
        out = list(styles)
        mixed: dict[int, Tensor] = {}
        if self.mix and self._mixing_enabled:
            mixed = reference_mixed(generator, self.layout, w_plus, self.reference_latent,
                                    self.mix_from, scale, out)
        for i in self.layers:
            key, layer = str(i), self.layout[i]
            mod = generator.get_submodule(layer.name).modulation
            x = mixed.get(i, w_plus[:, layer.row])
            change = F.linear(x, self.affine_weight[key].to(x) * mod.scale,
                              self.affine_bias[key].to(x) * mod.lr_mul)
            if scale is not None:
                change = change * scale[i].to(x)
            out[i] = out[i] + change
        return out

    def has_weight_offsets(self) -> bool:
        return any(bool(p.detach().ne(0).any()) for name, p in self.named_parameters()
                   if not name.startswith("affine_"))

    def weight_deltas(self, generator: Generator,
                      offset_scale: Sequence[float] | Tensor | None = None
                      ) -> dict[int, Tensor | ConvEdit]:
        """Per layer with a delta: a :class:`ConvEdit` with the conv weight, bias and noise
        strength changes (and, on layer 0, the constant input's), each times ``scale_i``."""
        self.check_generator(generator)
        ref = self.bias[str(self.layers[0])] if self.layers else self.const_input
        if ref is None:
            return {}
        scale = as_scale(offset_scale, self.n_style_layers, device=ref.device, dtype=ref.dtype)

        def scaled(t: Tensor, i: int) -> Tensor:
            return t if scale is None else t * scale[i]

        edits: dict[int, Tensor | ConvEdit] = {}
        for i in self.layers:
            key = str(i)
            noise = self.noise_strength.get(key)
            edits[i] = ConvEdit(weight_delta=scaled(self.conv_weight[key], i).unsqueeze(0),
                                bias_delta=scaled(self.bias[key], i),
                                noise_delta=None if noise is None else scaled(noise, i))
        if self.const_input is not None:
            edit = edits.get(0)
            base = edit if isinstance(edit, ConvEdit) else ConvEdit()
            edits[0] = ConvEdit(weight_delta=base.weight_delta, bias_delta=base.bias_delta,
                                noise_delta=base.noise_delta,
                                input_delta=scaled(self.const_input, 0))
        return edits

    def layer_parameters(self, indices: Iterable[int]) -> list[nn.Parameter]:
        """Every delta of style layers ``indices`` (the constant input goes with layer 0)."""
        indices = [int(i) for i in indices]
        params = super().layer_parameters(indices)
        if 0 in indices and self.const_input is not None:
            params.append(self.const_input)
        return params


@hookimpl
def register_domain_methods(register: Any) -> None:
    register(MindTheGap)
