"""What an encoder wants and what it returns: :class:`Preprocessing` (input size, resize filter,
normalisation) and :class:`Inversion` (``w+``, features, modifiers).  Plain data, re-exported
by :mod:`stylebridge.core.interfaces` beside the interfaces that use them."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import Tensor

from stylebridge.core.resize import RESIZE_FILTERS
from stylebridge.core.resize import resize as resize_filtered
from stylebridge.errors import StylebridgeError


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
        images = check_images01(images, "encoder input", value_range=False)
        images = self.resized(images)
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        return (images - mean) / std


#: the half-precision dtypes :func:`check_images01` casts to float32 (outside autocast)
HALF_DTYPES = (torch.float16, torch.bfloat16)

#: how far outside ``[0, 1]`` an image may reach (resampling overshoot) before it is refused
RANGE_TOLERANCE = 0.02


class ImageInputError(StylebridgeError, ValueError):
    """Images given to an encoder or the Adapter that are not RGB ``[B, 3, H, W]`` floats in
    ``[0, 1]``; one line saying what was given and how to convert it."""


def check_images01(images: Any, what: str = "images", *, value_range: bool = True) -> Tensor:
    """``images`` as a float tensor ``[B, 3, H, W]`` (``B >= 1``) in ``[0, 1]``, or an
    :class:`ImageInputError`: a uint8 photo gave all-NaN inversions, a ``[-1, 1]`` or 0..255
    image nonsense, silently.  float64 is cast to float32 (the networks' dtype), and so are
    float16 / bfloat16 (exactly: every half value is a float32 one) outside
    :func:`torch.autocast`: against float32 weights they stopped in the first layer with
    ``expected scalar type Half but found Float``; under autocast they are kept as given.
    ``value_range=False``: type and shape only (trainers encode unclamped generator output)."""
    if not isinstance(images, Tensor):
        raise ImageInputError(f"{what}: expected a torch tensor [B, 3, H, W] in [0, 1], got a "
                              f"{type(images).__name__} (torch.from_numpy(x).permute(0, 3, 1, 2)"
                              " for an [B, H, W, 3] array)")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ImageInputError(f"{what}: expected images [B, 3, H, W] with B >= 1, got shape "
                              f"{list(images.shape)}")
    if not images.is_floating_point():
        hint = " (8-bit photos: x.float() / 255)" if images.dtype == torch.uint8 else ""
        raise ImageInputError(f"{what}: expected a float tensor in [0, 1], got {images.dtype}"
                              f"{hint}")
    if images.dtype == torch.float64 or (images.dtype in HALF_DTYPES and images.device.type
                                         != "meta" and not torch.is_autocast_enabled(
                                             images.device.type)):
        images = images.float()
    if images.device.type == "meta" or not value_range:  # (meta: the pre-check of a load)
        return images
    lo, hi = (float(v) for v in torch.aminmax(images.detach().float()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ImageInputError(f"{what}: contains NaN or Inf values")
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise ImageInputError(f"{what}: values span [{lo:.3g}, {hi:.3g}], expected [0, 1] "
                              "(0..255 images: x / 255; generator output in [-1, 1]: "
                              "(x + 1) / 2)")
    return images


class InversionError(StylebridgeError, ValueError):
    """An :class:`Inversion` built with a ``w_plus`` or features of the wrong shape (a
    ``ValueError`` too, as it raised before)."""


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
        if not isinstance(self.w_plus, Tensor):
            raise InversionError(f"Inversion: w_plus must be a torch tensor [B, n_latent, "
                                 f"style_dim], got a {type(self.w_plus).__name__}")
        if self.w_plus.ndim != 3:
            raise InversionError(f"w_plus must be [B, n_latent, style_dim], got "
                                 f"{list(self.w_plus.shape)}")
        batch = self.w_plus.shape[0]
        for k, feat in self.features.items():
            if feat.shape[0] != batch:
                raise InversionError(f"feature at layer {k} has batch {feat.shape[0]}, w_plus "
                                     f"has {batch}")

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
