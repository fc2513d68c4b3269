"""Model-independent rendering for FeatureShift training: uint8 images, per-sample domains.

A training batch mixes domains (sample ``b`` belongs to ``domain[b]``, ``-1`` = no
domain); :func:`domain_styles` and :func:`synthesis_by_domain` render such a batch in one
generator pass, or one pass per domain when a domain changes conv weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from stylebridge.core.interfaces import DomainMethod
from stylebridge.plugins.losses.recon import resize_images

if TYPE_CHECKING:
    from stylebridge.core.stylegan2.generator import Generator


def images_to_uint8(images: Tensor, size: int) -> Tensor:
    """``[B, 3, H, W]`` in ``[-1, 1]`` → ``uint8 [B, 3, size, size]`` (resized, rounded)."""
    x = resize_images(images.float(), size)
    return ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def uint8_to_images(images: Tensor) -> Tensor:
    """``uint8 [B, 3, H, W]`` → float in ``[-1, 1]``."""
    return images.float() / 127.5 - 1.0


def domain_styles(generator: Generator, methods: Sequence[DomainMethod], w_plus: Tensor,
                  domain: Tensor, offset_scale: Sequence[float] | Tensor | None = None
                  ) -> list[Tensor]:
    """The styles of ``w_plus`` ``[B, L, D]`` where sample ``b`` goes through ``methods[domain[b]]``."""
    out: list[Tensor] | None = None
    for d in sorted(set(domain.tolist())):
        idx = (domain == d).nonzero().squeeze(1).to(w_plus.device)
        styles = methods[d].styles(generator, w_plus[idx], offset_scale)
        if out is None:
            out = [s.new_empty((w_plus.shape[0], *s.shape[1:])) for s in styles]
        for o, s in zip(out, styles, strict=True):
            o[idx] = s
    assert out is not None
    return out


def synthesis_by_domain(generator: Generator, styles: Sequence[Tensor], layer: int, feature: Tensor,
               keys: Tensor, methods: Sequence[DomainMethod]) -> Tensor:
    """Render a batch whose sample ``b`` belongs to domain ``keys[b]`` (``-1`` = no domain).

    One generator pass, unless a domain changes conv weights: then one pass per domain.
    """
    used = sorted(set(keys.tolist()))
    if not any(d >= 0 and methods[d].has_weight_offsets() for d in used):
        return generator.synthesis(styles, features={layer: feature}, randomize_noise=False)
    parts, order = [], []
    for d in used:
        idx = (keys == d).nonzero().squeeze(1).to(feature.device)
        deltas = methods[d].weight_deltas(generator) if d >= 0 else None
        parts.append(generator.synthesis([s[idx] for s in styles], features={layer: feature[idx]},
                                         randomize_noise=False, weight_deltas=deltas))
        order.append(idx)
    perm = torch.cat(order)
    return torch.cat(parts)[torch.argsort(perm)]

