"""Pixel metrics on images in ``[0, 1]``, equal to scikit-image's:

* ``mse``: mean squared error over pixels and channels, in ``[0, 1]`` units.
* ``psnr``: ``10 log10(1 / MSE)`` per image in dB (data range 1), as
  ``skimage.metrics.peak_signal_noise_ratio(data_range=1)``, except that an MSE below the
  quantisation noise of 8-bit pictures, ``(1/255)² / 12`` (the variance of a uniform error of
  up to half a step), counts as that noise: the pictures compared are 8-bit files, equal to
  within that, so PSNR is capped at ``10 log10(12 · 255²)`` ≈ 58.92 dB (:data:`PSNR_CAP`).
  Identical images give the cap, not ``inf``, so one identical pair no longer makes a mean
  of any number of pairs infinite; the metric's notes count the capped images.
* ``ssim``: per-channel SSIM averaged over channels, as
  ``skimage.metrics.structural_similarity(data_range=1, channel_axis=-1)``:
  7×7 uniform window with sample covariance (default) or, with
  ``gaussian=true``, the 11-tap σ=1.5 Gaussian of Wang et al.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from stylebridge.core.options import as_bool
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.metrics.base import PerImageMetric
from stylebridge.registry import hookimpl


def _mse(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image MSE ``[B]`` (float64): squares in the images' dtype, summed in float64 (the
    same to 1e-11 as casting both images to float64 first, in half the time at 1024 px)."""
    wide = (torch.float32, torch.float64)  # half-precision squares would lose digits
    diff = ((pred if pred.dtype in wide else pred.float())
            - (target if target.dtype in wide else target.float())).flatten(1)
    return (diff * diff).sum(dim=1, dtype=torch.float64) / diff.shape[1]


class MSEMetric(PerImageMetric):
    """Mean squared error per image, images in [0, 1]."""

    name = "mse"
    takes_device: ClassVar[bool] = True  # eval passes --device
    direction = "lower"
    unit = "on [0,1]"
    scale = "mean squared error of images in [0, 1] (pSp's l2 on [-1, 1] is 4× this)"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device=device)

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        assert target is not None
        return {"mse": _mse(pred, target)}


#: the smallest MSE :class:`PSNRMetric` resolves: the quantisation noise of 8-bit pictures,
#: ``(1/255)² / 12`` (a uniform error of up to half a step)
MSE_FLOOR = (1.0 / 255.0) ** 2 / 12.0
#: the largest PSNR it reports, that of :data:`MSE_FLOOR`: ``10 log10(12 · 255²)`` ≈ 58.92 dB
PSNR_CAP = 10.0 * math.log10(1.0 / MSE_FLOOR)


class PSNRMetric(PerImageMetric):
    """Peak signal-to-noise ratio per image (dB, data range 1), capped at 58.92 dB.

    An MSE below 8-bit quantisation noise, (1/255)²/12, counts as that noise, so identical
    images give 58.92 dB, not inf: the cap is :data:`PSNR_CAP` (see the module docstring)."""

    name = "psnr"
    takes_device: ClassVar[bool] = True  # eval passes --device
    direction = "higher"
    unit = "dB"
    scale = (f"10·log10(1/MSE), images in [0, 1]; an MSE below 8-bit quantisation noise "
             f"((1/255)²/12) counts as that noise: at most {PSNR_CAP:.2f} dB (identical images)")

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device=device)

    def reset(self) -> None:
        super().reset()
        self.capped = 0

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        assert target is not None
        mse = _mse(pred, target)
        self._batch_capped = int((mse < MSE_FLOOR).sum())
        return {"psnr": 10.0 * torch.log10(1.0 / mse.clamp(min=MSE_FLOOR))}

    def update(self, pred: Tensor, target: Tensor | None = None, **context: Any) -> None:
        self._batch_capped = 0
        super().update(pred, target, **context)
        self.capped += self._batch_capped  # after the update: a failed one counts nothing

    def state(self) -> dict[str, Any]:
        return {**super().state(), "capped": self.capped}

    def load_state(self, state: Mapping[str, Any]) -> None:
        super().load_state(state)
        self.capped = int(state.get("capped", 0))

    def notes(self) -> list[str]:
        notes = super().notes()
        if self.capped:
            notes.append(f"{self.capped} image(s) equal to their target within 8-bit "
                         f"quantisation noise (identical ones among them): PSNR capped at "
                         f"{PSNR_CAP:.2f} dB")
        return notes


def ssim(pred: Tensor, target: Tensor, *, gaussian: bool = False, data_range: float = 1.0,
         k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Per-image SSIM ``[B]`` (float64), channel-averaged, equal to scikit-image's.

    Uniform 7×7 window with the sample-covariance correction ``NP/(NP-1)``
    (scikit-image's default), or ``gaussian=True``: the 11-tap σ=1.5 Gaussian
    (radius ``int(3.5σ + 0.5)``) without it.  scikit-image filters the whole
    image and then averages only where the window lies inside the image, which
    is a 'valid' convolution here.
    """
    x, y = pred.double(), target.double()
    if gaussian:
        sigma, radius = 1.5, int(3.5 * 1.5 + 0.5)
        taps = torch.arange(-radius, radius + 1, dtype=torch.float64, device=x.device)
        kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
        cov_norm = 1.0
    else:
        kernel = torch.ones(7, dtype=torch.float64, device=x.device)
        cov_norm = 49.0 / 48.0
    kernel = kernel / kernel.sum()
    win = kernel.numel()
    if min(x.shape[-2:]) < win:
        raise StylebridgeError(f"ssim: images of {x.shape[-2]}×{x.shape[-1]} px are smaller than "
                               f"the {win}×{win} window")

    def filt(t: Tensor) -> Tensor:  # separable 'valid' filter (unfold + matmul: fast in float64)
        return t.unfold(-2, win, 1).matmul(kernel).unfold(-1, win, 1).matmul(kernel)

    ux, uy = filt(x), filt(y)
    uxx, uyy, uxy = filt(x * x), filt(y * y), filt(x * y)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(2, 3)).mean(dim=1)


class SSIMMetric(PerImageMetric):
    """Structural similarity per image (scikit-image's definition, data range 1)."""

    name = "ssim"
    takes_device: ClassVar[bool] = True  # eval passes --device
    direction = "higher"
    scale = "structural similarity (scikit-image's), -1..1, 1 = identical"

    def __init__(self, gaussian: bool = False, device: str = "cpu") -> None:
        super().__init__(gaussian=bool(gaussian), device=device)
        self.gaussian = as_bool(gaussian, "gaussian")

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        assert target is not None
        return {"ssim": ssim(pred, target, gaussian=self.gaussian)}


@hookimpl
def register_metrics(register: Any) -> None:
    for cls in (MSEMetric, PSNRMetric, SSIMMetric):
        register(cls)
