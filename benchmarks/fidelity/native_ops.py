"""Pure-PyTorch stand-ins for the CUDA extensions of rosinality-style StyleGAN2 code.

rosinality/stylegan2-pytorch and the repositories built on it (encoder4editing,
pixel2style2pixel, FeatureStyleEncoder, MindTheGap, ...) compile ``fused_bias_act`` and
``upfirdn2d`` with ``torch.utils.cpp_extension.load`` the moment ``op`` is imported, which needs
nvcc and a GPU.  The fidelity checks run on the CPU, so :func:`install` registers this module's
functions in ``sys.modules`` under the upstream package's ``op`` name *before* the upstream
model is imported; the upstream files on disk are never modified.

Written for this suite from the operations' definitions (bias add + leaky ReLU + gain; the
upsample / pad / FIR filter / downsample of Shapiro's upfirdn), forward only: the checks run
inference.  Upstream's own pure-Python ``conv2d_gradfix.py`` (which falls back to
``torch.nn.functional`` off the GPU) is loaded from the upstream tree unchanged when present.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None = None,
                     negative_slope: float = 0.2, scale: float = 2 ** 0.5) -> torch.Tensor:
    """``leaky_relu(x + bias[channel]) * scale``; the channel axis is dimension 1."""
    if bias is not None:
        shape = [1, bias.numel()] + [1] * (x.dim() - 2)
        x = x + bias.reshape(shape)
    return F.leaky_relu(x, negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    """Learned per-channel bias followed by :func:`fused_leaky_relu` (parameter name ``bias``,
    as in the upstream state dicts).  Accepts both upstream signatures: ``(channel,
    negative_slope, scale)`` (encoder4editing era) and ``(channel, bias=True, ...)``
    (rosinality at bef283a)."""

    def __init__(self, channel: int, *args: float, bias: bool = True,
                 negative_slope: float = 0.2, scale: float = 2 ** 0.5) -> None:
        super().__init__()
        if args:  # the old positional order: negative_slope, scale
            negative_slope = args[0]
            scale = args[1] if len(args) > 1 else scale
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int | tuple[int, int] = 1,
              down: int | tuple[int, int] = 1, pad: tuple[int, ...] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve every channel with ``kernel`` (a true
    convolution, i.e. the kernel flipped), then keep every ``down``-th sample.

    ``up``/``down`` are ints or ``(x, y)`` pairs; ``pad`` is ``(p0, p1)`` for both axes or
    ``(x0, x1, y0, y1)``; negative pads crop.
    """
    up_x, up_y = _pair(up)
    down_x, down_y = _pair(down)
    if len(pad) == 2:
        pad = (pad[0], pad[1], pad[0], pad[1])
    px0, px1, py0, py1 = (int(p) for p in pad)
    n, c, h, w = x.shape
    y = x.reshape(n * c, 1, h, w)
    if up_x > 1 or up_y > 1:  # each sample followed by up-1 zeros, per axis
        z = y.new_zeros(n * c, 1, h * up_y, w * up_x)
        z[:, :, ::up_y, ::up_x] = y
        y = z
    # positive pads add zeros, negative ones crop
    y = F.pad(y, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    y = y[:, :, max(-py0, 0): y.shape[2] - max(-py1, 0), max(-px0, 0): y.shape[3] - max(-px1, 0)]
    k = torch.flip(kernel, [0, 1]).to(y).reshape(1, 1, *kernel.shape)
    y = F.conv2d(y, k)
    y = y[:, :, ::down_y, ::down_x]
    return y.reshape(n, c, y.shape[2], y.shape[3])


def install(package: str, op_dir: str | Path | None = None) -> types.ModuleType:
    """Register ``package`` (e.g. ``"models.stylegan2.op"``) and its ``fused_act`` and
    ``upfirdn2d`` submodules in ``sys.modules`` with the functions above.  With ``op_dir``
    and an upstream ``conv2d_gradfix.py`` in it, that file is loaded as
    ``package.conv2d_gradfix`` unchanged (it is plain Python)."""
    pkg = types.ModuleType(package)
    pkg.__path__ = []  # a package, so "from .op.x import y" resolves through sys.modules
    fused = types.ModuleType(f"{package}.fused_act")
    fused.FusedLeakyReLU, fused.fused_leaky_relu = FusedLeakyReLU, fused_leaky_relu
    fir = types.ModuleType(f"{package}.upfirdn2d")
    fir.upfirdn2d = upfirdn2d
    pkg.FusedLeakyReLU, pkg.fused_leaky_relu, pkg.upfirdn2d = FusedLeakyReLU, fused_leaky_relu, upfirdn2d
    pkg.fused_act, pkg.upfirdn2d_module = fused, fir
    sys.modules[package] = pkg
    sys.modules[f"{package}.fused_act"] = fused
    sys.modules[f"{package}.upfirdn2d"] = fir
    gradfix = Path(op_dir) / "conv2d_gradfix.py" if op_dir else None
    if gradfix is not None and gradfix.is_file():
        spec = importlib.util.spec_from_file_location(f"{package}.conv2d_gradfix", gradfix)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        pkg.conv2d_gradfix = mod
    return pkg
