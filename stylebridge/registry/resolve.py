"""From a command-line spec to a plugin object: ``NAME``, ``PATH``, ``NAME:PATH``, ``NAME:PATH:k=v``.

``load_plugin("encoder", "e4e:e4e.safetensors")`` turns a spec (see
:mod:`stylebridge.registry.spec`) into an object, with installed weights resolved
by the weights manager.
"""

from __future__ import annotations

from typing import Any

import torch

from stylebridge.core.interfaces import Encoder, Plugin
from stylebridge.core.options import coerce_option
from stylebridge.errors import StylebridgeError
from stylebridge.registry.spec import PluginSpec, parse_plugin_spec


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
        from stylebridge.registry.weights import WeightsManager

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
        from stylebridge.registry.weights import WeightsManager

        path = WeightsManager().resolve(kind, spec.name)
    declared = obj.random_weights if isinstance(obj, Plugin) else None
    random = path is None if declared is None else bool(declared)
    if path is not None and is_random_weights(read_header(path).extra):
        random = True
    return random
