"""Synthesis of an inversion: the one render path.

:func:`synthesize` renders an
:class:`~stylebridge.core.interfaces.Inversion` through a generator, optionally
in a new domain, honouring the inversion's feature mode:

* ``replace`` (FSE *features*, SFE): the encoder's feature replaces activation K,
  also when a domain method changes the styles;
* ``shift`` (FSE *generator shift*): the feature is corrected by the change the
  domain makes at layer K, ``F' = F + G^K(s_domain) - G^K(s)``;
* ``modifiers`` (StyleRes): a function of the generator's own activation K,
  applied on the rendered (possibly domain-changed) path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor

from stylebridge.core.interfaces import DomainMethod, Inversion, Renderer
from stylebridge.core.stylegan2.generator import Generator
from stylebridge.errors import StylebridgeError


def method_styles(method: DomainMethod, generator: Generator, w_plus: Tensor,
                  offset_scale: Sequence[float] | Tensor | None = None) -> list[Tensor]:
    """``method.styles(...)``, checked: one ``[B, C_i]`` tensor per modulated layer of
    ``generator`` (a plugin method that returns anything else is named in one line)."""
    styles = method.styles(generator, w_plus, offset_scale)
    what = f"domain method {method.label or method.name!r}"
    if not isinstance(styles, (list, tuple)) or not all(isinstance(s, Tensor) for s in styles):
        raise StylebridgeError(f"{what}: styles() returned a {type(styles).__name__}; it must "
                               "return a list of tensors, one per style layer")
    if len(styles) != generator.n_style_layers:
        raise StylebridgeError(f"{what}: styles() returned {len(styles)} style vectors, the "
                               f"generator has {generator.n_style_layers} style layers")
    for layer, s in zip(generator.style_layers(), styles, strict=True):
        if s.ndim != 2 or s.shape[1] != layer.channels:
            raise StylebridgeError(
                f"{what}: styles() returned a style vector of shape {list(s.shape)} for style "
                f"layer {layer.index} ({layer.name}); the generator needs [B, {layer.channels}]")
    return list(styles)


def check_inversion_fits(generator: Generator, inversion: Any, what: str = "synthesize") -> None:
    """One line when ``inversion`` is no :class:`Inversion` (a bare ``w+`` tensor) or its
    ``w+`` does not fit ``generator`` (rows, width): the generator raised a bare
    ``ValueError`` or torch's ``mat1 and mat2 shapes cannot be multiplied``."""
    if not isinstance(inversion, Inversion):
        raise StylebridgeError(f"{what}: expected an Inversion, got {type(inversion).__name__}"
                               + (": wrap it as Inversion(w_plus=...) (stylebridge.core."
                                  "inversion)" if isinstance(inversion, Tensor) else ""))
    w_plus = inversion.w_plus
    if w_plus.ndim != 3 or tuple(w_plus.shape[1:]) != (generator.n_latent, generator.style_dim):
        raise StylebridgeError(
            f"{what}: the inversion's w+ is {list(w_plus.shape)}, but the {generator.size}px "
            f"generator needs [B, {generator.n_latent}, {generator.style_dim}] (an inversion "
            "made for another generator?)")


def synthesize(
    generator: Generator,
    inversion: Inversion,
    *,
    method: DomainMethod | None = None,
    offset_scale: Sequence[float] | Tensor | None = None,
    noise: Sequence[Tensor | None] | None = None,
    randomize_noise: bool = False,
) -> Tensor:
    """Render ``inversion`` (optionally through a domain ``method``) → images, nominally
    ``[-1, 1]`` (unclamped, as the generator gives them).  One-line
    :class:`~stylebridge.errors.StylebridgeError` for an ``inversion`` that is no
    :class:`Inversion` or does not fit ``generator``, or a method whose styles do not."""
    check_inversion_fits(generator, inversion)
    w_plus = inversion.w_plus
    kw: dict[str, Any] = {"noise": noise, "randomize_noise": randomize_noise}
    kw["modifiers"] = inversion.modifiers
    source_styles = generator.styles(w_plus)
    if method is None:
        return generator.synthesis(source_styles, features=dict(inversion.features), **kw)
    shift = inversion.feature_mode == "shift"
    old = {k: generator.features_upto(source_styles, k, noise=noise, randomize_noise=False)[0]
           for k in inversion.features} if shift else {}
    styles = method_styles(method, generator, w_plus, offset_scale)
    deltas = method.weight_deltas(generator, offset_scale)
    features: dict[int, Tensor] = {}
    for k, feat in inversion.features.items():
        if shift:
            new, _ = generator.features_upto(styles, k, noise=noise, randomize_noise=False,
                                             weight_deltas=deltas)
            feat = feat + (new - old[k])
        features[k] = feat
    return generator.synthesis(styles, features=features, weight_deltas=deltas, **kw)


class PlainRenderer(Renderer):
    """The plain renderer: :func:`synthesize` (fixed noise buffers), no guide, no weights.

    Registered as renderer ``plain`` (:mod:`stylebridge.plugins.renderers.plain`); the
    default of :class:`stylebridge.pipelines.adapt.Adapter`.
    """

    name: ClassVar[str] = "plain"
    description: ClassVar[str] = "the generator's own synthesis of the inversion (core.synthesis)"
    random_weights = False  # it has no weights

    def render(
        self,
        generator: Generator,
        inversion: Inversion,
        method: DomainMethod | None = None,
        *,
        offset_scale: Sequence[float] | Tensor | None = None,
        guide: Tensor | None = None,
    ) -> Tensor:
        """:func:`synthesize` of ``inversion`` (through ``method``); ``guide`` is not used."""
        return synthesize(generator, inversion, method=method, offset_scale=offset_scale)


def check_compatible(inversion: Inversion, generator: Generator, what: str) -> None:
    """One-line error when ``inversion`` does not fit ``generator`` (latent rows/width, features)
    or is no :class:`Inversion` at all (a plugin's ``encode`` that returns a bare tensor)."""
    if not isinstance(inversion, Inversion):
        raise StylebridgeError(f"{what}: encode() returned a {type(inversion).__name__}, not a "
                               "stylebridge.core.inversion.Inversion (wrap w+ as Inversion(w_plus=...))")
    if inversion.w_plus.ndim != 3:
        raise StylebridgeError(f"{what} gives w+ of shape {list(inversion.w_plus.shape)}; "
                               "expected [batch, rows, width]")
    _, rows, dim = inversion.w_plus.shape
    if (rows, dim) != (generator.n_latent, generator.style_dim):
        raise StylebridgeError(
            f"{what} gives w+ with {rows} rows × {dim}, but the {generator.size}px generator needs "
            f"{generator.n_latent} × {generator.style_dim} (encoder and generator do not match)")
    shapes = generator.feature_shapes()
    for k, feat in inversion.features.items():
        if k not in shapes:
            raise StylebridgeError(f"{what} gives a feature for activation {k}, but the generator "
                                   f"has activations 0..{generator.n_latent - 1}")
        if tuple(feat.shape[1:]) != shapes[k]:
            raise StylebridgeError(f"{what} gives a feature of shape {list(feat.shape[1:])} at "
                                   f"activation {k}; the generator needs {list(shapes[k])}")


