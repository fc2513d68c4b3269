"""Pixel metrics on images in ``[0, 1]``, equal to scikit-image's:

* ``mse``: mean squared error over pixels and channels, in ``[0, 1]`` units.
* ``psnr``: ``10 log10(1 / MSE)`` per image (data range 1), as
  ``skimage.metrics.peak_signal_noise_ratio(data_range=1)``.
* ``ssim``: per-channel SSIM averaged over channels, as
  ``skimage.metrics.structural_similarity(data_range=1, channel_axis=-1)``:
  7×7 uniform window with sample covariance (default) or, with
  ``gaussian=true``, the 11-tap σ=1.5 Gaussian of Wang et al.
"""

from __future__ import annotations

from typing import Any

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

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device=device)

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        assert target is not None
        return {"mse": _mse(pred, target)}


class PSNRMetric(PerImageMetric):
    """Peak signal-to-noise ratio per image (dB, data range 1); identical images give inf."""

    name = "psnr"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device=device)

    def score(self, pred: Tensor, target: Tensor | None, **context: Any) -> dict[str, Tensor]:
        assert target is not None
        return {"psnr": 10.0 * torch.log10(1.0 / _mse(pred, target))}


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
