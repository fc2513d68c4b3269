"""The epilogue of a StyleGAN2 styled convolution as one op.

After a modulated convolution the activation goes through demodulation (a per-sample,
per-channel factor), noise injection (a learned scalar strength times a per-pixel noise map)
and bias + leaky ReLU + gain (+ clamp): three passes over memory on the GPU.
:func:`modulated_bias_act` does the same in one call, computing::

    clamp(leaky_relu(x * demod[:, :, None, None] + strength * noise
                     + bias[None, :, None, None], slope) * scale, -clamp, clamp)

It runs the fused CUDA kernel (``stylebridge::modulated_bias_act``) only where
:func:`stylebridge.core.ops.backend.use_fused_epilogue` says so (``STYLEBRIDGE_EPILOGUE``:
``on``; ``auto`` where it measured faster, which no GPU has yet, or with
``STYLEBRIDGE_OPS=cuda``; never with ``STYLEBRIDGE_OPS=native`` or on the CPU).  Everywhere
else it runs today's three ops in today's order, so the numbers are bit for bit those of the
separate layers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stylebridge.core.ops.backend import use_fused_epilogue
from stylebridge.core.ops.fused_act import (
    DEFAULT_GAIN,
    DEFAULT_SLOPE,
    autocast_like,
    fused_leaky_relu,
)


def _needs_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _same_dtype(out: Tensor, *others: Tensor) -> bool:
    """Whether an in-place op on ``out`` with ``others`` gives what the out-of-place op would
    (no type promotion beyond ``out``'s dtype)."""
    dtype = out.dtype
    for t in others:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype == out.dtype


def _check(x: Tensor, demod: Tensor | None, noise: Tensor | None, strength: Tensor | None,
           bias: Tensor | None) -> None:
    if x.ndim != 4:
        raise ValueError(f"modulated_bias_act: x must be [B, C, H, W], got {tuple(x.shape)}")
    batch, channels, height, width = x.shape
    if demod is not None and demod.numel() != batch * channels:
        raise ValueError(f"modulated_bias_act: demod must be [{batch}, {channels}], got "
                         f"{tuple(demod.shape)}")
    if noise is not None:
        if strength is None:
            raise ValueError("modulated_bias_act: noise needs a strength (a 1-element tensor)")
        if strength.numel() != 1:
            raise ValueError(f"modulated_bias_act: strength must have 1 element, got "
                             f"{tuple(strength.shape)}")
        if noise.ndim != 4 or noise.shape[0] not in (1, batch) or tuple(noise.shape[1:]) != (
                1, height, width):
            raise ValueError(f"modulated_bias_act: noise must be [{batch} or 1, 1, {height}, "
                             f"{width}], got {tuple(noise.shape)}")
    if bias is not None and tuple(bias.shape) != (channels,):
        raise ValueError(f"modulated_bias_act: bias must be [{channels}], got "
                         f"{tuple(bias.shape)}")


def modulated_bias_act_native(
    x: Tensor,
    demod: Tensor | None = None,
    noise: Tensor | None = None,
    strength: Tensor | None = None,
    bias: Tensor | None = None,
    negative_slope: float = DEFAULT_SLOPE,
    scale: float = DEFAULT_GAIN,
    clamp: float | None = None,
    *,
    inplace: bool = False,
) -> Tensor:
    """Today's three ops in today's order (``StyledConv``: demodulation, ``NoiseInjection``,
    ``FusedLeakyReLU``), with the same rounding; differentiable to any order.

    Steps that need no gradient work in place: on ``x`` itself with ``inplace=True`` (the
    caller owns it: a fresh convolution output), else on the buffer the first op allocates.
    An in-place step is skipped for an input of a wider dtype (no autocast), so the result
    dtype is PyTorch's promotion either way.  The bias + activation
    step is :func:`~stylebridge.core.ops.fused_act.fused_leaky_relu`, which itself runs the
    ``fused_bias_act`` kernel on CUDA where the backend says so, as the layers do today.
    """
    # each step as its layer does it: out of place while a gradient is tracked (the
    # demodulation checks the activation and demod, the noise the activation and strength)
    out, owned = x, inplace
    if demod is not None:
        d = demod.reshape(x.shape[0], x.shape[1], 1, 1)
        if not _needs_grad(out, d) and owned and _same_dtype(out, d):
            out.mul_(d)
        else:
            out, owned = out * d, True
    if noise is not None:
        if _needs_grad(out, strength):
            out, owned = out + strength * noise, True
        elif owned and _same_dtype(out, noise, strength):
            out.addcmul_(noise, strength)
        else:
            out, owned = torch.addcmul(out, noise, strength), True
    return fused_leaky_relu(out, bias, negative_slope, scale, clamp, inplace=owned)


def modulated_bias_act(
    x: Tensor,
    demod: Tensor | None = None,
    noise: Tensor | None = None,
    strength: Tensor | None = None,
    bias: Tensor | None = None,
    negative_slope: float = DEFAULT_SLOPE,
    scale: float = DEFAULT_GAIN,
    clamp: float | None = None,
    *,
    inplace: bool = False,
) -> Tensor:
    """``clamp(leaky_relu(x * demod + strength * noise + bias, slope) * scale, ±clamp)``.

    Args:
        x: the convolution output ``[B, C, H, W]`` (contiguous or channels-last).
        demod: per-sample, per-channel factors ``[B, C]``, or ``None``.
        noise: ``[B or 1, 1, H, W]``, or ``None``; needs ``strength``.
        strength: the noise strength, a 1-element tensor (a learned parameter).
        bias: per-channel bias ``[C]``, or ``None``.
        negative_slope, scale, clamp: the activation's slope, gain and optional bound.
        inplace: ``x`` may be overwritten when no gradient is needed (native path only).

    Under autocast the other inputs are cast to ``x``'s half/bfloat16 dtype, as the layers
    do (:func:`~stylebridge.core.ops.fused_act.autocast_like`).  The fused kernel computes
    in float for half/bfloat16 and rounds once; the native path rounds after each op.
    """
    _check(x, demod, noise, strength, bias)
    demod = None if demod is None else autocast_like(demod, x)
    if noise is not None:
        noise, strength = autocast_like(noise, x), autocast_like(strength, x)
    bias = None if bias is None else autocast_like(bias, x)
    if use_fused_epilogue(x.is_cuda):
        from stylebridge.core.ops import _cuda

        return _cuda.modulated_bias_act(x, demod, noise, strength, bias, negative_slope, scale,
                                        clamp)
    return modulated_bias_act_native(x, demod, noise, strength, bias, negative_slope, scale,
                                     clamp, inplace=inplace)
