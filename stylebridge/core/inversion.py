"""What an encoder wants and what it returns: :class:`Preprocessing` (input size, resize filter,
normalisation) and :class:`Inversion` (``w+``, features, modifiers).  Plain data, re-exported
by :mod:`stylebridge.core.interfaces` beside the interfaces that use them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import Tensor

from stylebridge.core.resize import RESIZE_FILTERS
from stylebridge.core.resize import resize as resize_filtered


@dataclass(frozen=True)
class Preprocessing:
    """How an encoder wants its input: square size, resize filter and per-channel normalisation.

    Callers give images in ``[0, 1]``; :meth:`__call__` resizes with the named ``resize``
    filter (:mod:`stylebridge.core.resize`: ``pil-bilinear``, ``pil-bicubic`` reproduce PIL on
    8-bit images, ``torch-bilinear`` is antialiased float bilinear) and normalises, so a
    caller cannot pair an encoder with the wrong transform.  Each built-in encoder declares
    its upstream filter; ``torch-bilinear`` is the default for other encoders.
    """

    size: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    resize: str = "torch-bilinear"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_FILTERS:
            raise ValueError(f"unknown resize filter {self.resize!r}; choose one of "
                             f"{', '.join(RESIZE_FILTERS)}")

    def resized(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W]`` or ``[3, H, W]`` in ``[0, 1]`` → ``size`` × ``size`` with this filter."""
        if not self.size:
            return images
        batch = images if images.ndim == 4 else images[None]
        out = resize_filtered(batch, self.size, self.resize)
        return out if images.ndim == 4 else out[0]

    def __call__(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape [B, 3, H, W], got {list(images.shape)}")
        images = self.resized(images)
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        return (images - mean) / std


FeatureMode = Literal["replace", "shift"]


@dataclass
class Inversion:
    """What an encoder returns.

    ``w_plus`` is ``[B, n_latent, style_dim]``.  ``features`` maps a generator
    activation index K (see :mod:`stylebridge.core.stylegan2.generator` for
    the convention) to a tensor that replaces that activation.  With
    ``feature_mode="shift"`` the synthesiser adds ``G^K(w') - G^K(w)`` to the
    feature when the styles are changed (FSE's generator-shift mode).
    ``modifiers`` maps an activation index K to a function applied to the
    generator's own activation K on whatever path is rendered (StyleRes' gated
    residual ``x + gate(x)·ΔF(x)``): unlike a replaced feature it follows a
    domain change.  ``extras`` holds encoder-specific tensors (e.g. StyleRes'
    64×64 encoder features).
    """

    w_plus: Tensor
    features: dict[int, Tensor] = field(default_factory=dict)
    feature_mode: FeatureMode = "replace"
    extras: dict[str, Tensor] = field(default_factory=dict)
    modifiers: dict[int, Callable[[Tensor], Tensor]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.w_plus.ndim != 3:
            raise ValueError(f"w_plus must be [B, n_latent, style_dim], got {list(self.w_plus.shape)}")
        batch = self.w_plus.shape[0]
        for k, feat in self.features.items():
            if feat.shape[0] != batch:
                raise ValueError(f"feature at layer {k} has batch {feat.shape[0]}, w_plus has {batch}")

    @property
    def batch_size(self) -> int:
        return int(self.w_plus.shape[0])

    def to(self, device: torch.device | str) -> Inversion:
        return replace(
            self,
            w_plus=self.w_plus.to(device),
            features={k: v.to(device) for k, v in self.features.items()},
            extras={k: v.to(device) for k, v in self.extras.items()},
        )

    def detach(self) -> Inversion:
        return replace(
            self,
            w_plus=self.w_plus.detach(),
            features={k: v.detach() for k, v in self.features.items()},
            extras={k: v.detach() for k, v in self.extras.items()},
        )


__all__ = ["FeatureMode", "Inversion", "Preprocessing"]
