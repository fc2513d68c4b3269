"""A domain trainer's domain method and frozen layers, built from command-line specs.

:func:`build_domain_method` (``--method``: a fresh method for the generator, or one
continued from a domain checkpoint, checked to fit the generator) and
:func:`parse_freeze_layers` (``--freeze-layers``), shared by the domain trainers of
:mod:`stylebridge.pipelines.train_domain`, which re-exports both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from stylebridge.core.checkpoint import read_header
from stylebridge.core.interfaces import DomainMethod
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.training.needed import describe_generator as _describe
from stylebridge.pipelines.training.needed import refuse_other_generator
from stylebridge.registry import get_registry
from stylebridge.registry.spec import parse_plugin_spec
from stylebridge.registry.typed_options import spec_options

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator

#: StyleDomain's ``no_coarse``: its conv heads ``conv_0 .. conv_5`` (first 6 conv layers).
N_COARSE_CONV = 6


def build_domain_method(spec_text: str, generator: Generator, *, registry: Any = None,
                        device: str | torch.device = "cpu",
                        generator_label: str = "the generator") -> DomainMethod:
    """``NAME[:k=v]`` (fresh, see :func:`_fresh_method`) or ``[NAME:]DOMAIN.safetensors``
    (continue from a domain).  The result must produce one style vector per style layer
    with the generator's shapes; a checkpoint trained for another generator config is
    refused with a one-line error.
    """
    registry = registry or get_registry()
    spec = parse_plugin_spec(spec_text, what="domain method")
    options = spec_options("domain_method", spec, registry)  # typed by its class's hints
    if spec.path is not None:
        header = read_header(spec.path)
        refuse_other_generator(spec.path, header.extra.get("generator_config"),
                               generator.config(), generator_label)
        method = registry.load("domain_method", spec.path, name=spec.name, device=str(device),
                               **options)
        label = f"{header.plugin} ({spec.path})"
    else:
        assert spec.name is not None
        cls = registry.get("domain_method", spec.name).obj
        try:
            method = _fresh_method(cls, generator, options)
        except (TypeError, ValueError) as exc:
            raise StylebridgeError(f"cannot build domain method {spec.name!r}: "
                                   f"{' '.join(str(exc).split())}") from None
        # " (from PKG)" after a third-party package's method: the package to report to
        label = repr(spec.name) + registry.where("domain_method", spec.name)
    try:  # the check adapt makes: a domain it would refuse is refused before training
        method.check_generator(generator)
    except (StylebridgeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise StylebridgeError(f"domain method {label} does not fit {generator_label} "
                               f"({_describe(generator.config())}): {reason}") from None
    method = method.to(device)
    with torch.no_grad():
        w = generator.make_wplus(torch.zeros(1, generator.style_dim, device=device),
                                 input_is_latent=True)
        want = [tuple(t.shape) for t in generator.styles(w)]
        try:
            got = [tuple(t.shape) for t in method.styles(generator, w)]
        except (ValueError, RuntimeError, IndexError, KeyError, TypeError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise StylebridgeError(f"domain method {label} does not fit {generator_label} "
                                   f"({_describe(generator.config())}): {reason}") from None
    if got != want:
        raise StylebridgeError(f"domain method {label} does not fit {generator_label} "
                               f"({_describe(generator.config())}): it makes {len(got)} style "
                               f"vectors, the generator needs {len(want)} of shapes {want[:3]}...")
    return method


def _fresh_method(cls: type[DomainMethod], generator: Generator,
                  options: dict[str, Any]) -> DomainMethod:
    """A new, untrained method for ``generator``: :meth:`DomainMethod.for_generator`
    (by default the generator's config fills the ``__init__`` parameters named like a
    :class:`GeneratorConfig` field that ``options`` leaves open), then
    :meth:`DomainMethod.init_from` (Affine+ starts from the generator's own affine layers).
    """
    method = cls.for_generator(generator, **options)
    method.init_from(generator)
    return method


def parse_freeze_layers(text: str, generator: Generator | None = None) -> tuple[int, ...]:
    """``--freeze-layers`` in ``--skip-layers``' grammar
    (:func:`~stylebridge.plugins.calibrators.alpha.parse_layers`: ``none``, ``first``,
    ``coarse``, style-layer indices and ranges ``0,2-3``, ``w:N``, ``conv:N``, ``rgb:N``; a
    bare ToRGB index is refused, as it would freeze nothing a StyleSpace domain offsets).
    ``coarse`` is StyleDomain's no_coarse: the generator's first 6 conv layers.  Without
    ``generator``: the syntax check made before anything loads."""
    from stylebridge.plugins.calibrators.alpha import parse_layers

    items = [p.strip() for p in text.split(",") if p.strip()]   # "0,,2" as before
    coarse = any(p.lower() == "coarse" for p in items)
    rest = ",".join(p for p in items if p.lower() != "coarse")
    n_layers = None if generator is None else generator.n_style_layers
    try:
        layers = set(parse_layers(rest, what="--freeze-layers", n_layers=n_layers,
                                  syntax_only=generator is None))
    except StylebridgeError as exc:  # said with the option's whole value
        raise StylebridgeError(str(exc).replace(f"--freeze-layers {rest!r}",
                                                f"--freeze-layers {text!r}", 1)) from None
    if generator is None:
        return tuple(sorted(layers))
    if coarse:
        layers.update(generator.conv_style_indices()[:N_COARSE_CONV])
    bad = sorted(i for i in layers if i >= generator.n_style_layers)
    if bad:
        raise StylebridgeError(f"--freeze-layers {text!r}: style layer {bad[0]} is out of range: "
                               f"this generator has style layers 0..{generator.n_style_layers - 1}")
    return tuple(sorted(layers))
