"""StyleGAN2 building blocks with equalised learning rate.

Parameter names follow the rosinality/stylegan2-pytorch layout so that the
official checkpoints load with a plain key check; the code is ours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylebridge.core.ops import (
    FusedLeakyReLU,
    autocast_enabled,
    autocast_like,
    fused_leaky_relu,
    modulated_bias_act,
    upfirdn2d,
)
from stylebridge.core.ops.backend import use_fused_epilogue
from stylebridge.core.stylegan2.polyphase import (
    UPCONV_BY_DEVICE,
    UPCONV_ORDERS,
    phase_taps,
    polyphase_weight,
)


def make_kernel(taps: Sequence[float], gain: float = 1) -> Tensor:
    """2-D FIR kernel from 1-D taps (outer product), normalised to sum 1, times ``gain``.

    Computed on the CPU, then placed on the default device: a module built on ``meta`` (the
    shape pre-check of a load) does no arithmetic on meta tensors, which imports
    ``torch._dynamo`` (seconds)."""
    k = torch.tensor(list(taps), dtype=torch.float32, device="cpu")
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    k = k / k.sum()
    if gain != 1:
        k = k * gain
    return k.to(torch.get_default_device())


class PixelNorm(nn.Module):
    """Normalise each latent to unit second moment (the first mapping layer)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with runtime weight scaling ``lr_mul / sqrt(in)`` (bias scaled by ``lr_mul``)."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.activation = activation
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul}"


class EqualConv2d(nn.Module):
    """Conv2d with runtime weight scaling ``1 / sqrt(fan_in)``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size**2)
        self.stride = stride
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride,
                        padding=self.padding)


class Blur(nn.Module):
    """FIR low-pass filter with padding (``kernel`` is a persistent buffer, as upstream)."""

    def __init__(self, taps: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        kernel = make_kernel(taps, upsample_factor**2 if upsample_factor > 1 else 1)
        self.register_buffer("kernel", kernel)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2× upsampling with an FIR filter (for the RGB skip connections)."""

    def __init__(self, taps: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(taps, factor**2))
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, down=1, pad=self.pad)


@dataclass(frozen=True)
class ConvEdit:
    """A change of one modulated conv for one synthesis call (never stored in the module).

    ``weight_delta`` (``[1, out, in, k|1, k|1]``, broadcast) is added to the weight before
    modulation (StyleDomain's Affine+ weight offsets); ``input_gain`` (``[in]`` or
    ``[B, in]``) multiplies the modulated, *demodulated* weight per input channel,
    ``W' = demod(W·s)·g`` (HyperDomainNet's ``cin_mult`` domain modulation, which upstream
    applies after demodulation, so it is not the same as scaling ``s``).

    The rest of the layer's block (a generator delta such as MindTheGap's fine-tuning):
    ``bias_delta`` is added to the bias after the conv (a StyledConv's activation bias
    ``[out]``, a ToRGB's ``[1, 3, 1, 1]``), ``noise_delta`` (``[1]``) to a StyledConv's
    noise strength, and ``input_delta`` (``[1, C, 4, 4]``) to the constant input; the
    generator reads ``input_delta`` only on style layer 0 (``conv1``, which consumes it).
    """

    weight_delta: Tensor | None = None
    input_gain: Tensor | None = None
    bias_delta: Tensor | None = None
    noise_delta: Tensor | None = None
    input_delta: Tensor | None = None


def _compiling() -> bool:
    return bool(torch.compiler.is_compiling())


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _is_channels_last(x: Tensor) -> bool:
    """A channels-last CPU tensor outside autocast (under autocast the convolution keeps the
    rounding the bf16 tolerances were set with)."""
    return (x.device.type == "cpu" and x.is_contiguous(memory_format=torch.channels_last)
            and not autocast_enabled(x.device))


def _conv1x1_nhwc(x: Tensor, weight: Tensor) -> Tensor:
    """1x1 convolution of a channels-last ``x`` with per-sample ``weight [B|1, out, in]`` as
    one matmul over the pixels (oneDNN's 1x1 convolution with 3 outputs is slow); the result
    is channels-last ``[B, out, H, W]``."""
    batch, in_ch, height, width = x.shape
    pixels = x.permute(0, 2, 3, 1).reshape(batch, height * width, in_ch)
    out = torch.matmul(pixels, weight.transpose(1, 2))  # [B, HW, out]
    return out.view(batch, height, width, -1).permute(0, 3, 1, 2)


class ModulatedConv2d(nn.Module):
    """Modulated (and optionally demodulated) convolution, optionally upsampling 2×.

    ``forward(x, s)`` takes the style vector ``s`` = ``modulation(w)`` computed
    by the caller, so that style-space methods can change ``s`` in between.

    Two equivalent evaluation orders are used: the per-sample weight is folded and a
    grouped convolution runs (upstream's "fused" order, ``fused=True``), or the input is
    scaled by ``s``, one shared-weight convolution runs and the output is demodulated
    (``fused=False``).  By default (``fused=None``) CUDA uses the first for one sample and
    the second for batches; other devices choose per layer (:meth:`_forward_auto`).  All
    agree to float32 rounding.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.eps = 1e-8
        self.kernel_size = kernel_size
        self.in_channel = in_ch
        self.out_channel = out_ch
        self.upsample = upsample
        self.demodulate = demodulate
        self._polyphase: tuple[int, int] | None = None  # (pad before, after) if it applies
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1),
                             upsample_factor=factor)
            pad0, pad1 = self.blur.pad
            spec = phase_taps(kernel_size, len(blur_kernel), pad0)
            if spec is not None and pad0 + pad1 == len(blur_kernel) - kernel_size + 1:
                self._polyphase = (spec[1], spec[2])
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.fused: bool | None = None  # None: choose per batch size
        self.upconv: str | None = None  # None: UPCONV_BY_DEVICE

    def extra_repr(self) -> str:
        return (f"{self.in_channel}, {self.out_channel}, k={self.kernel_size}, "
                f"upsample={self.upsample}, demodulate={self.demodulate}")

    def _demod(self, s: Tensor, raw: Tensor) -> Tensor:
        """Per-sample, per-output-channel demodulation coefficients ``[B, out]``."""
        wsq = (raw[0] * self.scale).pow(2).sum(dim=(2, 3))  # [out, in]
        return torch.rsqrt(s.pow(2) @ wsq.t() + self.eps)

    def _use_polyphase(self, device: torch.device) -> bool:
        """Whether this call's up-sampling runs in the polyphase order (``upconv``, else the
        device's entry in :data:`UPCONV_BY_DEVICE`; ``transpose`` where the form does not
        apply)."""
        if not self.upsample:
            return False
        order = self.upconv or UPCONV_BY_DEVICE.get(device.type, "transpose")
        if order not in UPCONV_ORDERS:
            raise ValueError(f"upconv must be one of {', '.join(UPCONV_ORDERS)}, got {order!r}")
        return order == "polyphase" and self._polyphase is not None

    def _fold(self, weight: Tensor) -> Tensor:
        """``[out, in, k, k]`` scaled weight -> its polyphase weight (:func:`polyphase_weight`)."""
        return polyphase_weight(weight, self.blur.kernel, self.blur.pad[0])

    def _polyphase_modulated(self, x: Tensor, folded: Tensor, coef: Tensor) -> Tensor:
        """Per-sample modulated polyphase convolution: ``coef [B, out, in]`` scales every
        (out, in) pair of ``folded`` (one grouped convolution over the batch)."""
        batch, in_ch, height, width = x.shape
        size = folded.shape[-1]
        weight = (folded.view(1, self.out_channel, 4, in_ch, size, size)
                  * coef.to(folded).view(batch, self.out_channel, 1, in_ch, 1, 1))
        weight = weight.reshape(batch * self.out_channel * 4, in_ch, size, size)
        out = self._polyphase_conv(x.reshape(1, batch * in_ch, height, width), weight,
                                   groups=batch)
        return out.view(batch, self.out_channel, out.shape[2], out.shape[3])

    def _polyphase_conv(self, x: Tensor, weight: Tensor, groups: int = 1) -> Tensor:
        """Stride-1 convolution with a polyphase weight, then the 2x pixel shuffle: the
        up-sampled, blurred output."""
        pad0, pad1 = self._polyphase or (0, 0)
        if pad0 == pad1:
            out = F.conv2d(x, weight, padding=pad0, groups=groups)
        else:
            out = F.conv2d(F.pad(x, [pad0, pad1, pad0, pad1]), weight, groups=groups)
        return F.pixel_shuffle(out, 2)

    def forward(self, x: Tensor, s: Tensor, weight_delta: Tensor | ConvEdit | None = None
                ) -> Tensor:
        """``weight_delta`` changes this call only (never the module): a tensor
        (``[1, out, in, k|1, k|1]``, broadcast) is added to the conv weight; a
        :class:`ConvEdit` may also carry a post-demodulation input gain."""
        return self.forward_parts(x, s, weight_delta, defer_demod=False)[0]

    def forward_parts(self, x: Tensor, s: Tensor,
                      weight_delta: Tensor | ConvEdit | None = None, *,
                      defer_demod: bool = True) -> tuple[Tensor, Tensor | None]:
        """:meth:`forward`, except that where the demodulation is a factor on the output (the
        shared-weight order) it is returned, not applied: ``(out, demod [B, out])``, for a
        fused epilogue to apply (:func:`~stylebridge.core.ops.modulated_bias_act`); ``(out,
        None)`` where it is already in the weight or ``defer_demod`` is false."""
        batch = x.shape[0]
        delta, gain = weight_delta, None
        if isinstance(weight_delta, ConvEdit):
            delta, gain = weight_delta.weight_delta, weight_delta.input_gain
            gain = None if gain is None else gain.reshape(-1, self.in_channel)
        raw = self.weight if delta is None else self.weight + delta
        if self.fused is None and x.device.type != "cuda":
            return self._forward_auto(x, s, raw, gain, cache=delta is None), None
        fused = self.fused if self.fused is not None else batch == 1
        if fused:
            return self._forward_grouped(x, s, raw, gain, cache=delta is None), None
        return self._forward_shared(x, s, raw, gain, cache=delta is None,
                                    defer_demod=defer_demod)

    def _forward_grouped(self, x: Tensor, s: Tensor, raw: Tensor,
                         gain: Tensor | None = None, cache: bool = False) -> Tensor:
        batch, in_ch, height, width = x.shape
        if self._use_polyphase(x.device):
            # the fold is linear per (out, in) pair: modulate the (cached) folded weight
            wsq, folded = self._prepared(raw, cache, polyphase=True)
            coef = s.view(batch, 1, in_ch)
            if self.demodulate:
                coef = coef * torch.rsqrt(s.pow(2) @ wsq.t() + self.eps).view(batch, -1, 1)
            if gain is not None:  # after demodulation (HyperDomainNet's cin_mult)
                coef = coef * gain.to(coef).expand(batch, -1).reshape(batch, 1, in_ch)
            return self._polyphase_modulated(x, folded, coef)
        weight = self.scale * raw * s.view(batch, 1, in_ch, 1, 1)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + self.eps)
            weight = weight * demod.view(batch, self.out_channel, 1, 1, 1)
        if gain is not None:  # after demodulation (HyperDomainNet's cin_mult)
            weight = weight * gain.to(weight).expand(batch, -1).reshape(batch, 1, in_ch, 1, 1)
        k = self.kernel_size
        x = x.reshape(1, batch * in_ch, height, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * in_ch, self.out_channel, k, k)
            out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=batch)
            out = out.view(batch, self.out_channel, out.shape[2], out.shape[3])
            return self.blur(out)
        weight = weight.view(batch * self.out_channel, in_ch, k, k)
        out = F.conv2d(x, weight, padding=self.padding, groups=batch)
        return out.view(batch, self.out_channel, height, width)

    def _prepared(self, raw: Tensor, cache: bool, channels_last: bool = False,
                  polyphase: bool = False) -> tuple[Tensor, Tensor]:
        """``(sum_k (scale W)^2 [out, in], scale W [out|in, in|out, k, k])``: the scaled weight
        in the layout its convolution wants (``[in, out, k, k]`` for the transposed one;
        channels-last for channels-last input, which oneDNN would otherwise convert it to on
        every call; ``polyphase``: the folded ``[4 out, in, S, S]`` weight), cached while the
        weight is unchanged (its version counter) and needs no gradient."""
        def compute() -> tuple[Tensor, Tensor]:
            weight = raw[0] * self.scale
            wsq = weight.pow(2).sum(dim=(2, 3))
            if polyphase:
                weight = self._fold(weight)
            elif self.upsample:
                weight = weight.transpose(0, 1)
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            return wsq, weight.contiguous(memory_format=fmt)

        if not cache or (torch.is_grad_enabled() and raw.requires_grad) or _compiling():
            return compute()
        # one entry per layout, so that alternating layouts (a benchmark of both orders, a
        # channels-last caller beside another) does not recompute them on every call
        key = (raw._version, raw.data_ptr(), raw.dtype, raw.device)
        store = self.__dict__.setdefault("_prepared_cache", {})
        cached = store.get((channels_last, polyphase))
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = (key, *compute())
            store[(channels_last, polyphase)] = cached
        return cached[1], cached[2]

    def _forward_auto(self, x: Tensor, s: Tensor, raw: Tensor, gain: Tensor | None,
                      cache: bool) -> Tensor:
        """The default evaluation order, per layer: one pass over the weight (with the
        demodulation from the cached ``sum (scale W)^2``) for a single sample whose
        activations outweigh the weight, else modulation of the input and demodulation of
        the output around the shared weight.  Same numbers as the other two orders up to
        float32 rounding; 1x1 convolutions on channels-last CPU tensors run as a matmul."""
        batch, in_ch, height, width = x.shape
        polyphase = self._use_polyphase(x.device)
        wsq, conv_weight = self._prepared(raw, cache, _is_channels_last(x) and not polyphase,
                                          polyphase)
        if self.demodulate:
            demod = torch.rsqrt(s.pow(2) @ wsq.t() + self.eps)  # [B, out]
        k = self.kernel_size
        out_hw = (2 * height + 1) * (2 * width + 1) if self.upsample else height * width
        if batch == 1 and x.numel() + self.out_channel * out_hw > raw.numel():
            coef = s.view(1, in_ch)
            if gain is not None:  # after demodulation (HyperDomainNet's cin_mult)
                coef = coef * gain.to(coef)
            coef = coef.expand(self.out_channel, in_ch)
            if self.demodulate:
                coef = coef * demod.view(self.out_channel, 1)
            if polyphase:
                return self._polyphase_modulated(x, conv_weight, coef.unsqueeze(0))
            if self.upsample:
                weight = conv_weight * coef.t().reshape(in_ch, self.out_channel, 1, 1)
                return self.blur(F.conv_transpose2d(x, weight, padding=0, stride=2))
            weight = conv_weight * coef.reshape(self.out_channel, in_ch, 1, 1)
            if k == 1 and _is_channels_last(x):
                return _conv1x1_nhwc(x, weight[:, :, 0, 0].unsqueeze(0))
            return F.conv2d(x, weight, padding=self.padding)
        scaled = s if gain is None else s * gain.to(s)
        if k == 1 and not self.upsample and _is_channels_last(x):
            weight = conv_weight[:, :, 0, 0].unsqueeze(0) * scaled.unsqueeze(1)  # [B, out, in]
            if self.demodulate:
                weight = weight * demod.unsqueeze(2)
            return _conv1x1_nhwc(x, autocast_like(weight, x))
        x = x * autocast_like(scaled, x).view(batch, -1, 1, 1)
        if polyphase:
            out = self._polyphase_conv(x, conv_weight)
        elif self.upsample:
            out = F.conv_transpose2d(x, conv_weight, padding=0, stride=2)
        else:
            out = F.conv2d(x, conv_weight, padding=self.padding)
        if self.demodulate:
            d = autocast_like(demod, out).view(batch, -1, 1, 1)
            out = out.mul_(d) if not _needs_grad(out, d) else out * d
        if self.upsample and not polyphase:
            out = self.blur(out)
        return out

    def _forward_shared(self, x: Tensor, s: Tensor, raw: Tensor, gain: Tensor | None = None,
                        cache: bool = False, defer_demod: bool = False
                        ) -> tuple[Tensor, Tensor | None]:
        """``(out, None)``, or with ``defer_demod`` ``(out without demodulation, demod)``
        (deferred, it comes after the blur: the same up to rounding, a per-channel factor)."""
        batch = x.shape[0]
        # a post-demodulation input gain scales the input, not the demodulation (which is
        # computed from s alone below)
        scaled = s if gain is None else s * gain.to(s)
        x = x * autocast_like(scaled, x).view(batch, -1, 1, 1)
        demod = self._demod(s, raw) if self.demodulate else None
        polyphase = self._use_polyphase(x.device)
        if polyphase:
            out = self._polyphase_conv(x, self._prepared(raw, cache, polyphase=True)[1])
        else:
            weight = raw[0] * self.scale
            if self.upsample:
                out = F.conv_transpose2d(x, weight.transpose(0, 1), padding=0, stride=2)
            else:
                out = F.conv2d(x, weight, padding=self.padding)
        blur = self.upsample and not polyphase
        if defer_demod:
            return (self.blur(out) if blur else out), demod
        if demod is not None:
            out = out * autocast_like(demod, out).view(batch, -1, 1, 1)
        if blur:
            out = self.blur(out)
        return out, None


class NoiseInjection(nn.Module):
    """Adds ``weight * noise`` (a learned scalar strength)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor, weight_delta: Tensor | None = None) -> Tensor:
        """``weight_delta`` is added to the strength for this call only."""
        weight = self.weight if weight_delta is None else self.weight + weight_delta
        weight, noise = autocast_like(weight, x), autocast_like(noise, x)
        if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
            return x + weight * noise
        return x.addcmul_(noise, weight)  # inference: no extra buffer


class ConstantInput(nn.Module):
    """The learned 4×4 input of the synthesis network (key ``input``)."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    """Modulated conv → noise → bias + leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int,
                 upsample: bool = False, blur_kernel: Sequence[float] = (1, 3, 3, 1),
                 demodulate: bool = True, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel_size, style_dim, demodulate=demodulate,
                                    upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch, clamp=conv_clamp)

    def forward(self, x: Tensor, s: Tensor, noise: Tensor,
                weight_delta: Tensor | ConvEdit | None = None) -> Tensor:
        if use_fused_epilogue(x.is_cuda):
            return self._forward_fused_epilogue(x, s, noise, weight_delta)
        if isinstance(weight_delta, ConvEdit) and (weight_delta.noise_delta is not None
                                                   or weight_delta.bias_delta is not None):
            out = self.noise(self.conv(x, s, weight_delta), noise, weight_delta.noise_delta)
            return self.activate(out, weight_delta.bias_delta)
        # the activation may overwrite the fresh convolution output (inference only)
        return self.activate(self.noise(self.conv(x, s, weight_delta), noise), inplace=True)

    def _forward_fused_epilogue(self, x: Tensor, s: Tensor, noise: Tensor,
                                weight_delta: Tensor | ConvEdit | None) -> Tensor:
        """Demodulation (where the conv order leaves it on the output), noise, bias and the
        activation in one fused op (``STYLEBRIDGE_EPILOGUE``, CUDA only)."""
        out, demod = self.conv.forward_parts(x, s, weight_delta)
        strength, bias = self.noise.weight, self.activate.bias
        if isinstance(weight_delta, ConvEdit):
            if weight_delta.noise_delta is not None:
                strength = strength + weight_delta.noise_delta
            if weight_delta.bias_delta is not None:
                bias = bias + weight_delta.bias_delta.reshape(-1)
        act = self.activate
        return modulated_bias_act(out, demod, noise, strength, bias, act.negative_slope,
                                  act.scale, act.clamp, inplace=True)


class ToRGB(nn.Module):
    """1×1 modulated conv to RGB (no demodulation) plus the upsampled previous skip."""

    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1),
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.conv_clamp = conv_clamp

    def forward(self, x: Tensor, s: Tensor, skip: Tensor | None = None,
                weight_delta: Tensor | ConvEdit | None = None) -> Tensor:
        bias = self.bias
        if isinstance(weight_delta, ConvEdit) and weight_delta.bias_delta is not None:
            bias = bias + weight_delta.bias_delta.reshape(1, -1, 1, 1)
        out = self.conv(x, s, weight_delta) + bias
        if self.conv_clamp is not None:
            out = out.clamp(-self.conv_clamp, self.conv_clamp)
        if skip is not None:
            if skip.dtype == torch.float32 and autocast_enabled(skip.device):
                # the RGB skip sums in float32: no autocast rounding at each up-sampling
                with torch.autocast(skip.device.type, enabled=False):
                    return out.float() + self.upsample(skip)
            out = out + self.upsample(skip)
        return out


class ScaledLeakyReLU(nn.Module):
    """Leaky ReLU with gain sqrt(2), for bias-free conv layers."""

    def __init__(self, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope) * math.sqrt(2)


class ConvLayer(nn.Sequential):
    """[Blur] → EqualConv2d → activation, as a Sequential (upstream key layout)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, downsample: bool = False,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), bias: bool = True,
                 activate: bool = True) -> None:
        layers: list[nn.Module] = []
        if downsample:
            factor = 2
            p = (len(blur_kernel) - factor) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding,
                                  bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_ch) if bias else ScaledLeakyReLU(0.2))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Discriminator residual block: two 3×3 convs (second downsamples) + 1×1 skip."""

    def __init__(self, in_ch: int, out_ch: int, blur_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=True, blur_kernel=blur_kernel,
                              activate=False, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return (out + self.skip(x)) * (1.0 / math.sqrt(2))
