"""FeatureShift, the network that shifts FSE's feature map for a domain (thesis, "Improving the gap").

FSE (``features`` mode) reconstructs an image well by replacing generator activation
``K`` (5 = the second 16×16 conv, 512 channels at 1024 px) with its own feature ``F``,
but then a domain method that changes the styles barely changes the image.
FeatureShift takes ``F`` and the change that the domain makes to the generator's
layer-``K`` features of the *guiding* encoder's latents ``w_E`` (e4e, or FSE
latents-only)::

    Δ  = G^K(s(w_E)) − G^K(s_domain(w_E))        (DELTA_SIGN = "source_minus_domain")
    F' = FeatureShift(concat(F, Δ))               [B, 2C, H, W] → [B, C, H, W]
    image = G(s_domain(w_F), activation K := F')

The sign is the thesis' ``Δ = F_{w_E} − F_{w'_E}`` and StyleFeatureEditor's
``delta = orig − edited``; it is recorded in every checkpoint header
(``extra.delta_sign``).  ``Δ = 0`` means "no domain": the network must then
reproduce ``F``.

**Network** (:class:`FeatureShift`): an iResNet of ``n_blocks`` (6) insightface
``IBasicBlock`` s (BN → Conv3×3 → BN → PReLU → Conv3×3 → BN, plus the identity, or a
1×1 conv + BN projection when the channel count changes; stride 1).  The thesis'
"each 2 blocks lower the channel number 1024 → 768 → 512" is read as three stages of
two blocks with widths ``2C``, ``hidden``, ``C`` (1024, 768, 512 officially), the first
block of a stage projecting from the previous width::

    blocks: 2C→2C, 2C→2C, 2C→hidden, hidden→hidden, hidden→C, C→C

(other ``n_blocks >= 3`` split the blocks into three near-equal stages).  ``residual``
(off by default, as in the thesis/SFE, which predict ``F'`` directly) adds ``F`` to the
output.  The block is the one of :mod:`stylebridge.plugins.nets.iresnet` (the FSE backbone).

FeatureShift is a :class:`~stylebridge.core.interfaces.Renderer` (registered as renderer
``featureshift``, :attr:`~FeatureShift.needs_guide`): ``FeatureShift.render(generator,
inversion, method, guide=w_E)`` is :func:`apply_featureshift`.  Checkpoints have their own
kind ``"featureshift"`` (:func:`save_featureshift` / :func:`load_featureshift`).  Training lives in
:mod:`stylebridge.pipelines.featureshift`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from stylebridge.core.checkpoint import (
    CheckpointHeader,
    check_implied_shapes,
    check_state_dict,
    load_checkpoint,
    save_checkpoint,
)
from stylebridge.core.device import keep_rng_state
from stylebridge.core.interfaces import DomainMethod, Encoder, Inversion, Renderer
from stylebridge.core.loading import assignable, load_weights
from stylebridge.core.schema import WIDTH, Field
from stylebridge.core.synthesis import method_styles, synthesize
from stylebridge.errors import CheckpointError, StylebridgeError
from stylebridge.registry import hookimpl

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator

KIND = "featureshift"
PLUGIN = "featureshift"
DELTA_SIGN = "source_minus_domain"
DELTA_FORMULA = "delta = G^K(s(w_guide)) - G^K(s_domain(w_guide))"


class FeatureShift(Renderer):
    """``(F [B, C, H, W], Δ [B, C, H, W]) → F' [B, C, H, W]`` (see the module docstring).

    ``feature_channels`` = C (512 at 1024 px, layer 5), ``hidden`` the middle stage
    width (768), ``n_blocks`` (6, at least 3), ``layer`` the generator activation K the
    output replaces (5), ``residual`` adds F to the output.

    As a renderer (:meth:`render`) it renders a domain through ``F'`` with ``Δ`` from the
    guiding encoder's latents (``needs_guide``), and the inversion itself (no method) as
    the plain renderer does.
    """

    name: ClassVar[str] = "featureshift"
    checkpoint_kind: ClassVar[str | None] = KIND
    description: ClassVar[str] = ("FeatureShift: domains shift the encoder's feature F by the "
                                  "guide's domain change (thesis step 4)")
    needs_guide: ClassVar[bool] = True
    config_schema: ClassVar[Mapping[str, Field]] = {
        "feature_channels": WIDTH, "hidden": WIDTH, "n_blocks": Field("int", 3, 64),
        "layer": Field("int", 0, 21), "residual": Field("bool"),
    }

    def __init__(self, feature_channels: int = 512, hidden: int = 768, n_blocks: int = 6,
                 layer: int = 5, residual: bool = False) -> None:
        super().__init__()
        if feature_channels < 1 or hidden < 1:
            raise ValueError(f"feature_channels and hidden must be >= 1, got {feature_channels}, "
                             f"{hidden}")
        if n_blocks < 3:
            raise ValueError(f"FeatureShift needs n_blocks >= 3 (three stages), got {n_blocks}")
        if layer < 0:
            raise ValueError(f"layer must be a generator activation index >= 0, got {layer}")
        from stylebridge.plugins.nets.iresnet import IBasicBlock

        self.feature_channels = int(feature_channels)
        self.hidden = int(hidden)
        self.n_blocks = int(n_blocks)
        self.layer = int(layer)
        self.residual = bool(residual)
        self.blocks = nn.Sequential(*[IBasicBlock(i, o) for i, o in self.block_channels()])

    def config(self) -> dict[str, Any]:
        return {"feature_channels": self.feature_channels, "hidden": self.hidden,
                "n_blocks": self.n_blocks, "layer": self.layer, "residual": self.residual}

    def stage_widths(self) -> tuple[int, int, int]:
        c = self.feature_channels
        return 2 * c, self.hidden, c

    def block_channels(self) -> list[tuple[int, int]]:
        """``(in, out)`` channels of every block (block ``i`` is in stage ``⌊3i/n⌋``)."""
        widths = self.stage_widths()
        out: list[tuple[int, int]] = []
        prev = widths[0]
        for i in range(self.n_blocks):
            width = widths[min(3 * i // self.n_blocks, 2)]
            out.append((prev, width))
            prev = width
        return out

    @torch.no_grad()
    def reset_delta_input_stats(self) -> None:
        """Set the first BatchNorm's running statistics of the Δ channels to mean 0, var 1.

        In inversion-only pre-training Δ is always 0, so those statistics would decay to
        a variance of 0 and an eval-mode network would blow a real Δ up by 1/sqrt(eps).
        """
        bn = self.blocks[0].bn1
        bn.running_mean[self.feature_channels:].zero_()
        bn.running_var[self.feature_channels:].fill_(1.0)

    def render(
        self,
        generator: Generator,
        inversion: Inversion,
        method: DomainMethod | None = None,
        *,
        offset_scale: Sequence[float] | Tensor | None = None,
        guide: Tensor | None = None,
    ) -> Tensor:
        """With ``method``: :func:`apply_featureshift` (``guide`` = the guiding encoder's
        latents, required); without: the inversion, :func:`~stylebridge.core.synthesis.synthesize`."""
        if method is None:
            return synthesize(generator, inversion)
        if guide is None:
            raise StylebridgeError("the FeatureShift renderer needs the guiding encoder's latents "
                                   "(guide=) to render a domain")
        return apply_featureshift(generator, self, inversion, guide, method,
                                  offset_scale=offset_scale)

    def check_generator(self, generator: Generator, encoder: Encoder | None = None) -> None:
        """:func:`check_featureshift`: layer and channels fit ``generator``, ``encoder``
        returns the feature at :attr:`layer`."""
        check_featureshift(self, generator, encoder)

    @classmethod
    def check_header(cls, extra: Mapping[str, Any]) -> str | None:
        """A checkpoint trained with the other Δ sign convention is refused."""
        sign = extra.get("delta_sign", DELTA_SIGN)
        if sign != DELTA_SIGN:
            return f"uses the Δ sign convention {sign!r}, this stylebridge uses {DELTA_SIGN!r}"
        return None

    def read_extra(self, extra: Mapping[str, Any]) -> None:
        """The guide encoder spec ``build-dataset --guide`` recorded (``sources.guide``)."""
        sources = extra.get("sources")
        guide = sources.get("guide") if isinstance(sources, Mapping) else None
        self.trained_guide = str(guide) if guide else None

    def forward(self, features: Tensor, delta: Tensor) -> Tensor:
        if features.shape != delta.shape or features.ndim != 4:
            raise ValueError(f"FeatureShift expects F and Δ of the same shape [B, C, H, W], got "
                             f"{list(features.shape)} and {list(delta.shape)}")
        if features.shape[1] != self.feature_channels:
            raise ValueError(f"FeatureShift was built for {self.feature_channels}-channel features, "
                             f"got {features.shape[1]}")
        out = self.blocks(torch.cat([features, delta], dim=1))
        return features + out if self.residual else out


def save_featureshift(path: str | Path, model: FeatureShift, *,
                      extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a ``featureshift`` checkpoint (header records the Δ sign convention)."""
    info = {"delta_sign": DELTA_SIGN, "delta": DELTA_FORMULA, "layer": model.layer, **(extra or {})}
    return save_checkpoint(path, model.state_dict(), kind=KIND, plugin=PLUGIN,
                           config=model.config(), extra=info)


def load_featureshift(path: str | Path, *, device: str | torch.device = "cpu",
                      keep_rng: bool = False, **overrides: Any
                      ) -> tuple[FeatureShift, CheckpointHeader]:
    """Load a ``featureshift`` checkpoint (eval mode) and its header; one-line errors.

    ``keep_rng=True`` leaves torch's random state as it was: the model is built on ``meta``
    and takes the file's tensors by assignment (no random initialisation, no second copy; the
    same tensors).  ``False`` (as before) builds it on the CPU, drawing the initialisation
    that the weights overwrite from the caller's random stream (``train featureshift
    --init`` seeds before loading and its losses draw after)."""
    header, tensors = load_checkpoint(path, kind=KIND, plugin=PLUGIN, device=str(device))
    refused = FeatureShift.check_header(header.extra)
    if refused:
        raise CheckpointError(refused, path=path)
    config = {**header.config, **overrides}
    try:
        FeatureShift.check_config(config)  # types and ranges, before anything is built
    except ValueError as exc:
        raise CheckpointError(f"invalid FeatureShift config in header: {exc}", path=path) from None

    def build() -> FeatureShift:
        try:
            if keep_rng:
                with keep_rng_state():
                    return FeatureShift(**config)
            return FeatureShift(**config)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid FeatureShift config in header: {exc}",
                                  path=path) from None

    meta = check_implied_shapes(path, lambda: FeatureShift(**config), tensors,
                                what="FeatureShift")
    model = meta if keep_rng and meta is not None and assignable(meta) else build()
    check_state_dict(path, model.state_dict(), tensors, what="FeatureShift",
                     check_finite=False)  # load_checkpoint checked the values
    model = load_weights(model, tensors, build)
    model.read_extra(header.extra)
    return model.to(device).eval(), header


# ---------------------------------------------------------------------------------------------
# Domain deltas and inference


def domain_delta(generator: Generator, method: DomainMethod, w_plus: Tensor, layer: int, *,
                 offset_scale: Sequence[float] | Tensor | None = None) -> Tensor:
    """``Δ = G^K(s(w+)) − G^K(s_domain(w+))`` ``[B, C, H, W]`` (fixed noise buffers)."""
    return domain_quantities(generator, method, w_plus, layer, offset_scale=offset_scale,
                             image_size=None)[0]


def domain_quantities(
    generator: Generator, method: DomainMethod, w_plus: Tensor, layer: int, *,
    image_size: int | None = 256, offset_scale: Sequence[float] | Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """``(Δ, target)`` for guiding latents ``w_plus`` ``[B, L, D]`` and one domain.

    ``target`` is the e4e domain inversion ``G(s_domain(w+))`` in ``[-1, 1]`` resized
    to ``image_size`` (``None``: no target is rendered).  Noise: the generator's
    fixed buffers, as everywhere in FeatureShift.
    """
    src, _ = generator.features_upto(generator.styles(w_plus), layer, randomize_noise=False)
    styles = method_styles(method, generator, w_plus, offset_scale)
    deltas = method.weight_deltas(generator, offset_scale)
    dom, skip = generator.features_upto(styles, layer, randomize_noise=False, weight_deltas=deltas)
    target = None
    if image_size is not None:
        from stylebridge.plugins.losses.recon import resize_images

        image = generator.synthesize_from(layer, dom, skip, styles, randomize_noise=False,
                                          weight_deltas=deltas)
        target = resize_images(image, image_size)
    return src - dom, target


def check_featureshift(model: FeatureShift, generator: Generator, encoder: Encoder | None = None,
                       *, what: str = "FeatureShift") -> None:
    """Refuse, before any image is encoded, a FeatureShift that cannot work with this
    generator (layer, channels) or encoder (the layer of the feature it returns)."""
    shapes = generator.feature_shapes()
    if not 0 <= model.layer < len(shapes):
        raise StylebridgeError(f"{what} works at generator layer {model.layer}, but this "
                               f"{generator.size} px generator has layers 0..{len(shapes) - 1}")
    channels = int(shapes[model.layer][0])
    if channels != model.feature_channels:
        raise StylebridgeError(f"{what} was trained on {model.feature_channels}-channel features "
                               f"at layer {model.layer}; this generator has {channels} there "
                               "(another generator?)")
    enc_layer = encoder.feature_layer if encoder is not None else None
    if enc_layer is not None and enc_layer != model.layer:
        raise StylebridgeError(f"{what} works on the feature at generator layer {model.layer}, "
                               f"but encoder {encoder.name!r} returns layer {enc_layer} "
                               f"(give the encoder layer={model.layer})")


def apply_featureshift(
    generator: Generator, model: FeatureShift, inversion: Inversion, guide_w_plus: Tensor,
    method: DomainMethod, *, offset_scale: Sequence[float] | Tensor | None = None,
) -> Tensor:
    """Inference (thesis step 4): FSE inversion of the image + Δ from the guide → image in ``[-1, 1]``.

    ``inversion`` must hold the FSE feature at ``model.layer`` (any feature mode: the
    shifted feature always *replaces* the activation); ``guide_w_plus`` are the
    guiding encoder's latents of the same images.
    """
    layer = model.layer
    feat = inversion.features.get(layer)
    if feat is None:
        raise StylebridgeError(f"FeatureShift works on the encoder feature at generator layer "
                               f"{layer}, but the inversion has "
                               f"{sorted(inversion.features) or 'no features'} (use fse in "
                               "mode=features)")
    delta = domain_delta(generator, method, guide_w_plus, layer, offset_scale=offset_scale)
    shifted = model(feat, delta.to(feat.dtype))
    styles = method_styles(method, generator, inversion.w_plus, offset_scale)
    return generator.synthesis(styles, features={layer: shifted}, randomize_noise=False,
                               weight_deltas=method.weight_deltas(generator, offset_scale))


@hookimpl
def register_renderers(register: Any) -> None:
    register(FeatureShift)
