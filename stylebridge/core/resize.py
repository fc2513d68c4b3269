"""Named resize filters for encoder inputs, reproducing each upstream encoder's transform in torch.

Every encoder was trained and published with its own input transform; feeding it an image
resized another way shifts its codes (StyleRes' codes move by ~2e-2 relative when its
bicubic input is replaced by bilinear).  :class:`stylebridge.core.interfaces.Preprocessing`
therefore carries a ``resize`` name from :data:`RESIZE_FILTERS`:

``pil-bilinear``
    PIL's ``Image.resize(size, BILINEAR)`` on an 8-bit RGB image, what torchvision's
    ``transforms.Resize((256, 256))`` does to a PIL image.  Used by pSp and e4e
    (eladrich/pixel2style2pixel ``configs/transforms_config.py``, ``EncodeTransforms``:
    ``Resize((256, 256)) → ToTensor → Normalize(0.5, 0.5)``; omertov/encoder4editing keeps
    the same ``EncodeTransforms``) and by FSE for its first resize to 1024 px
    (InterDigitalInc/FeatureStyleEncoder ``test.py``: ``Resize((1024, 1024))``).
``pil-bicubic``
    PIL's ``Image.resize(size)`` with its default filter, bicubic (Pillow ≥ 7), as StyleRes
    does (hamzapehlivan/StyleRes ``datasets/process_image.py``,
    ``ImageProcessor.preprocess_image``: ``image.resize((256, 256))`` then
    ``(x - 127.5) / 127.5``).
``torch-bilinear``
    ``F.interpolate(mode="bilinear", antialias=True)`` in float, the toolkit's transform
    before per-encoder filters (kept selectable; no upstream encoder uses it).

The ``pil-*`` filters are PIL's separable convolution (``libImaging/Resample.c``, reimplemented
here from its description, not copied): for each output pixel the kernel (triangle of support 1
for bilinear, Keys cubic with ``a = -0.5`` and support 2 for bicubic) is stretched by the scale
factor when downsampling, evaluated at the input pixel centres around ``(i + 0.5) · scale``,
normalised to sum 1 and quantised to 22-bit fixed point; PIL filters horizontally first,
rounds to 8 bits, filters vertically and rounds again (``floor(x + 0.5)``, clipped to
0‥255).  With ``quantize=True`` (the default for encoder inputs) both roundings are
reproduced with a straight-through estimator, so gradients still flow; on 8-bit photos the
result equals PIL's (on the astronaut photo at 1024 → 256 every value is identical; the
test requires > 99 % identical and a mean absolute difference < 1e-3,
``tests/test_resize.py``).

FSE's further downscale (two ``F.interpolate(scale_factor=0.5, mode="bilinear")`` steps,
``trainer.py`` of FeatureStyleEncoder) is not a resize filter of its own: it is part of the
network's input path, :meth:`stylebridge.plugins.encoders.fse.FSEEncoder.prepare`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

ResizeFilter = Literal["pil-bilinear", "pil-bicubic", "torch-bilinear"]
RESIZE_FILTERS: tuple[str, ...] = ("pil-bilinear", "pil-bicubic", "torch-bilinear")

_PRECISION_BITS = 32 - 8 - 2  # PIL's fixed-point precision for 8-bit images


def _triangle(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _cubic(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


_KERNELS = {"pil-bilinear": (_triangle, 1.0), "pil-bicubic": (_cubic, 2.0)}


@lru_cache(maxsize=32)
def pil_weights(in_size: int, out_size: int, name: str, fixed_point: bool = True) -> Tensor:
    """``[out_size, in_size]`` float64 matrix of PIL's resampling coefficients along one axis.

    With ``fixed_point`` the coefficients are rounded to PIL's 22-bit integers (as it does
    for 8-bit images) and divided back."""
    kernel, support = _KERNELS[name]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support *= filterscale
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        k = [kernel((x - center + 0.5) / filterscale) for x in range(lo, hi)]
        total = sum(k)
        k = [v / total for v in k] if total != 0.0 else k
        if fixed_point:
            one = 1 << _PRECISION_BITS
            k = [math.trunc(v * one + (0.5 if v >= 0 else -0.5)) / one for v in k]
        weights[i, lo:hi] = torch.tensor(k, dtype=torch.float64)
    return weights


def _round8(x: Tensor) -> Tensor:
    """PIL's ``clip8((2^21 + Σ) >> 22)`` on values in 0‥255: ``floor(x + 0.5)`` clipped,
    with the identity's gradient (straight-through)."""
    rounded = torch.floor(x + 0.5).clamp_(0.0, 255.0)
    return x + (rounded - x).detach()


def resize(images: Tensor, size: int | tuple[int, int], name: str = "pil-bilinear", *,
           quantize: bool = True) -> Tensor:
    """``[B, C, H, W]`` in ``[0, 1]`` → ``[B, C, h, w]`` with the named filter (see module doc).

    ``quantize`` (``pil-*`` only): round to 8 bits after each pass, as PIL does on an 8-bit
    image; without it the result is PIL's filter in float (as on a float ``"F"`` image)."""
    if name not in RESIZE_FILTERS:
        raise ValueError(f"unknown resize filter {name!r}; choose one of {', '.join(RESIZE_FILTERS)}")
    out_h, out_w = (size, size) if isinstance(size, int) else size
    if images.shape[-2:] == (out_h, out_w):
        return images
    if name == "torch-bilinear":
        return F.interpolate(images, size=(out_h, out_w), mode="bilinear", align_corners=False,
                             antialias=True)
    in_h, in_w = images.shape[-2:]
    dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    x = images.to(dtype) * 255.0
    wh = pil_weights(in_w, out_w, name, quantize).to(x.device, dtype)
    wv = pil_weights(in_h, out_h, name, quantize).to(x.device, dtype)
    if in_w != out_w:  # PIL: horizontal pass first
        x = x @ wh.T
        if quantize:
            x = _round8(x)
    if in_h != out_h:
        x = wv @ x
        if quantize:
            x = _round8(x)
    if not quantize and name == "pil-bicubic":
        x = x.clamp(0.0, 255.0)
    return (x / 255.0).to(images.dtype)
