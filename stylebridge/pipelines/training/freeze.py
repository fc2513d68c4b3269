"""Which parameters ``--freeze-layers`` holds: a domain method names them
(:meth:`~stylebridge.core.interfaces.DomainMethod.layer_parameters`), or the trainer finds them
from the autograd graph of the method's change at each style layer."""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import Tensor, nn

from stylebridge.core.interfaces import DomainMethod
from stylebridge.core.stylegan2.generator import Generator
from stylebridge.core.stylegan2.layers import ConvEdit
from stylebridge.errors import StylebridgeError


def frozen_parameters(method: DomainMethod, generator: Generator,
                      frozen: Collection[int]) -> list[nn.Parameter]:
    """The parameters of ``method`` that change style layers ``frozen``: the optimiser leaves
    them out and they keep their values (StyleDomain's freeze).  A method that cannot name them
    is traced: the parameters the frozen layers' styles and weight changes depend on, which
    must not also change another layer (a shared backbone: refused in one line, since its
    frozen layers would still change)."""
    named = method.layer_parameters(frozen)
    if named is not None:
        return list(named)
    params = list(method.trainable_parameters())
    w_plus = torch.zeros(1, generator.n_latent, generator.style_dim,
                         device=generator.latent_avg.device)
    with torch.enable_grad():
        styles = method.styles(generator, w_plus)
        deltas = method.weight_deltas(generator)
        outputs: dict[int, list[Tensor]] = {i: [s] for i, s in enumerate(styles)}
        for i, delta in deltas.items():
            parts = ([delta] if isinstance(delta, Tensor) else
                     [v for v in vars(delta).values() if isinstance(v, Tensor)]
                     if isinstance(delta, ConvEdit) else [])
            outputs.setdefault(int(i), []).extend(parts)

        def touched(layers: list[int]) -> set[int]:
            ts = [t.sum() for i in layers for t in outputs[i] if t.requires_grad]
            if not ts or not params:
                return set()
            grads = torch.autograd.grad(torch.stack(ts).sum(), params, allow_unused=True,
                                        retain_graph=True)
            return {k for k, g in enumerate(grads) if g is not None}

        held = touched([i for i in outputs if i in frozen])
        trained = touched([i for i in outputs if i not in frozen])
    shared = held & trained
    if shared:
        raise StylebridgeError(
            f"--freeze-layers: domain method {method.name!r} changes its frozen and its trained "
            "style layers through the same parameters (its layer_parameters() names none), so "
            "the frozen layers would still change; train it without --freeze-layers")
    return [params[k] for k in sorted(held)]


__all__ = ["frozen_parameters"]
