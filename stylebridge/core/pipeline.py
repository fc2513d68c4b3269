"""The steps every workflow shares: build plugins from specs, synthesise an inversion.

``load_plugin("encoder", "e4e:e4e.safetensors")`` turns a command-line spec into
an object (see :mod:`stylebridge.core.spec`); :func:`synthesize` renders an
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
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.interfaces import DomainMethod, Encoder, Inversion
from stylebridge.core.spec import PluginSpec, coerce_option, parse_plugin_spec
from stylebridge.core.stylegan2.generator import Generator
from stylebridge.errors import StylebridgeError


def load_plugin(kind: str, spec: str | PluginSpec, *, device: str | torch.device = "cpu",
                registry: Any = None, **overrides: Any) -> Any:
    """Build a plugin object from ``NAME``, ``PATH``, ``NAME:PATH`` or ``NAME:PATH:k=v``.

    With a checkpoint, the header names the plugin and holds its config (a
    given ``NAME`` must agree); options override config entries.  A bare
    ``NAME`` loads the weights installed by ``stylebridge weights`` for that
    plugin, else builds the plugin from its defaults and options; plugins whose
    class sets ``requires_weights = True`` refuse that with a hint telling how
    to fetch or register the official file.
    """
    from stylebridge.registry import get_registry

    registry = registry or get_registry()
    if isinstance(spec, str):
        spec = parse_plugin_spec(spec, what=kind.replace("_", " "))
    options = {k: coerce_option(v) for k, v in spec.options.items()}
    options.update(overrides)
    if spec.path is not None:
        obj = registry.load(kind, spec.path, name=spec.name, device=str(device), **options)
    else:
        assert spec.name is not None
        entry = registry.get(kind, spec.name)
        from stylebridge.core.weights import WeightsManager

        manager = WeightsManager()
        cached = manager.resolve(kind, spec.name)
        if cached is not None:
            obj = registry.load(kind, cached, name=spec.name, device=str(device), **options)
        elif getattr(entry.obj, "requires_weights", False):
            known = manager.candidates(kind, spec.name)
            how = ("convert the official file with `stylebridge convert`"
                   if entry.provider == "stylebridge" else
                   f"its weights come with plugin package {entry.provider}")
            hint = (manager.missing_message(known[0]) if known else
                    f"use {spec.name}:CHECKPOINT ({how})")
            raise StylebridgeError(f"{kind.replace('_', ' ')} {spec.name!r} needs weights; {hint}")
        else:
            obj = registry.create(kind, spec.name, **options)
    if isinstance(obj, torch.nn.Module):
        obj = obj.to(device).eval()
    return obj


def synthesize(
    generator: Generator,
    inversion: Inversion,
    *,
    method: DomainMethod | None = None,
    offset_scale: Sequence[float] | Tensor | None = None,
    noise: Sequence[Tensor | None] | None = None,
    randomize_noise: bool = False,
) -> Tensor:
    """Render ``inversion`` (optionally through a domain ``method``) → images, nominally ``[-1, 1]`` (unclamped, as the generator gives them)."""
    w_plus = inversion.w_plus
    kw: dict[str, Any] = {"noise": noise, "randomize_noise": randomize_noise}
    kw["modifiers"] = inversion.modifiers
    source_styles = generator.styles(w_plus)
    if method is None:
        return generator.synthesis(source_styles, features=dict(inversion.features), **kw)
    shift = inversion.feature_mode == "shift"
    old = {k: generator.features_upto(source_styles, k, noise=noise, randomize_noise=False)[0]
           for k in inversion.features} if shift else {}
    with method.applied(generator, offset_scale):
        styles = method.styles(generator, w_plus, offset_scale)
        features: dict[int, Tensor] = {}
        for k, feat in inversion.features.items():
            if shift:
                new, _ = generator.features_upto(styles, k, noise=noise, randomize_noise=False)
                feat = feat + (new - old[k])
            features[k] = feat
        return generator.synthesis(styles, features=features, **kw)


def check_compatible(inversion: Inversion, generator: Generator, what: str) -> None:
    """One-line error when ``inversion`` does not fit ``generator`` (latent rows/width, features)."""
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


def load_encoder(spec_text: str, device: str | torch.device = "cpu") -> tuple[Encoder, bool]:
    """An encoder from a ``--encoder`` spec, and whether it runs on untrained weights
    (see :func:`spec_random`)."""
    spec = parse_plugin_spec(spec_text, what="encoder")
    encoder = load_plugin("encoder", spec, device=device)
    if not isinstance(encoder, Encoder):
        raise StylebridgeError(f"--encoder {spec_text!r} did not build an encoder")
    return encoder, spec_random("encoder", spec, encoder)


def spec_random(kind: str, spec: str | PluginSpec, obj: Any = None) -> bool:
    """Whether the plugin built from ``spec`` runs on untrained weights: its checkpoint's
    header marks random weights, or no checkpoint was given or installed (a bare name may
    load installed weights) and the plugin does not say otherwise (``obj.random_weights``)."""
    from stylebridge.core.checkpoint import is_random_weights, read_header

    if isinstance(spec, str):
        spec = parse_plugin_spec(spec, what=kind.replace("_", " "))
    path = spec.path
    if path is None and spec.name is not None:
        from stylebridge.core.weights import WeightsManager

        path = WeightsManager().resolve(kind, spec.name)
    random = bool(getattr(obj, "random_weights", path is None))
    if path is not None and is_random_weights(read_header(path).extra):
        random = True
    return random
