"""Fused bias + leaky ReLU + gain (+ optional clamp)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylebridge.core.ops.backend import require_valid_switches, use_cuda

DEFAULT_SLOPE = 0.2
DEFAULT_GAIN = math.sqrt(2.0)


def _broadcast_bias(bias: Tensor, ndim: int) -> Tensor:
    return bias.view(1, -1, *([1] * (ndim - 2)))


def fused_leaky_relu_native(
    x: Tensor,
    bias: Tensor | None = None,
    negative_slope: float = DEFAULT_SLOPE,
    scale: float = DEFAULT_GAIN,
    clamp: float | None = None,
) -> Tensor:
    """``leaky_relu(x + bias) * scale``, clamped to ``[-clamp, clamp]`` if given.

    When no gradient is needed the work is done in place on one buffer.
    """
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or (bias is not None and bias.requires_grad))
    if not needs_grad:
        out = x + _broadcast_bias(bias, x.ndim) if bias is not None else x.clone()
        F.leaky_relu_(out, negative_slope)
        out.mul_(scale)
        if clamp is not None:
            out.clamp_(-clamp, clamp)
        return out
    if bias is not None:
        x = x + _broadcast_bias(bias, x.ndim)
    out = F.leaky_relu(x, negative_slope) * scale
    if clamp is not None:
        out = out.clamp(-clamp, clamp)
    return out


def autocast_enabled(device: torch.device) -> bool:
    """Whether autocast is on for ``device``'s type (False for types it does not know, e.g.
    meta)."""
    try:
        return torch.is_autocast_enabled(device.type)
    except RuntimeError:
        return False


def autocast_like(t: Tensor, x: Tensor) -> Tensor:
    """``t`` in ``x``'s dtype when autocast runs ``x`` in half/bfloat16, else ``t`` unchanged.

    Under autocast a convolution returns bf16/fp16, but adding a float32 bias, noise or
    style would promote the activation back to float32 (PyTorch's type promotion), and the
    next convolution would cast it down again: twice the memory traffic plus a cast kernel
    per layer, which measured to eat autocast's gain in FeatureShift training.  Parameters
    that follow the activation keep it in the autocast dtype; their gradients stay float32.
    """
    if (t.dtype == torch.float32 and x.dtype in (torch.float16, torch.bfloat16)
            and autocast_enabled(x.device)):
        return t.to(x.dtype)
    return t


def fused_leaky_relu(
    x: Tensor,
    bias: Tensor | None = None,
    negative_slope: float = DEFAULT_SLOPE,
    scale: float = DEFAULT_GAIN,
    clamp: float | None = None,
    *,
    inplace: bool = False,
) -> Tensor:
    """Bias + leaky ReLU + gain on dim 1; dispatches to CUDA when available.

    ``inplace=True`` lets the native op overwrite ``x`` when no gradient is needed (the
    caller owns ``x``: a fresh convolution output); otherwise it is ignored.
    """
    if use_cuda(x.is_cuda):
        from stylebridge.core.ops import _cuda

        return _cuda.fused_leaky_relu(x, bias, negative_slope, scale, clamp)
    if inplace and not (torch.is_grad_enabled() and (
            x.requires_grad or (bias is not None and bias.requires_grad))) and (
            bias is None or torch.promote_types(x.dtype, bias.dtype) == x.dtype):
        out = x if bias is None else x.add_(_broadcast_bias(bias, x.ndim))
        F.leaky_relu_(out, negative_slope)
        out.mul_(scale)
        return out if clamp is None else out.clamp_(-clamp, clamp)
    return fused_leaky_relu_native(x, bias, negative_slope, scale, clamp)


class FusedLeakyReLU(nn.Module):
    """Learned per-channel bias followed by the fused activation (key: ``bias``).  Building
    one checks every ops switch (:func:`~stylebridge.core.ops.backend.require_valid_switches`):
    a bad ``STYLEBRIDGE_*`` value stops the command as its first network is built."""

    def __init__(self, channels: int, negative_slope: float = DEFAULT_SLOPE,
                 scale: float = DEFAULT_GAIN, clamp: float | None = None) -> None:
        require_valid_switches()
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.negative_slope = negative_slope
        self.scale = scale
        self.clamp = clamp

    def forward(self, x: Tensor, bias_delta: Tensor | None = None, inplace: bool = False
                ) -> Tensor:
        """``bias_delta`` (``[channels]``) is added to the bias for this call only;
        ``inplace=True``: ``x`` may be overwritten when no gradient is needed."""
        bias = self.bias if bias_delta is None else self.bias + bias_delta.reshape(-1)
        bias = autocast_like(bias, x)
        if inplace:
            return fused_leaky_relu(x, bias, self.negative_slope, self.scale, self.clamp,
                                    inplace=True)
        return fused_leaky_relu(x, bias, self.negative_slope, self.scale, self.clamp)
