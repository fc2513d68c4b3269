"""The CUDA implementation of the custom ops, compiled on first use.

Nothing is compiled when this module (or any stylebridge module) is imported:
the extension in ``csrc/`` is built by :func:`available` the first time it is
asked, with :func:`torch.utils.cpp_extension.load`, and cached for the life of
the process.  Build products go to ``$STYLEBRIDGE_HOME/torch_extensions/...``
when ``STYLEBRIDGE_HOME`` is set, else to torch's default
(``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``).

If CUDA is missing, no toolkit is found or the build fails, :func:`available`
gives one notice per process (a warning, or a handler's line: :func:`set_notice_handler`)
and returns ``False`` (the callers then use the
native ops), or raises :class:`~stylebridge.errors.StylebridgeError` when the
CUDA ops were explicitly required.

The kernels are registered as ``torch.library`` custom ops (``stylebridge::fused_bias_act``,
``stylebridge::fused_bias_act_grad``, ``stylebridge::modulated_bias_act``,
``stylebridge::upfirdn2d``, ``stylebridge::upfirdn2d_tiled``) with fake implementations
and autograd formulas, so ``torch.compile`` and CUDA graphs see them as single nodes.
The wrappers here treat ``kernel`` (upfirdn2d) as a constant and
fall back to the native ops for the few argument combinations the kernels do
not cover (a kernel that requires grad, a negative slope, non-float dtypes).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.ops.backend import use_tiled_upfirdn2d
from stylebridge.errors import StylebridgeError

EXTENSION_NAME = "stylebridge_ops"
CSRC_DIR = Path(__file__).resolve().parent / "csrc"
SOURCES: tuple[str, ...] = ("ops.cpp", "fused_bias_act.cu", "modulated_bias_act.cu",
                            "upfirdn2d.cu", "upfirdn2d_tiled.cu")
NOTICE_PREFIX = "stylebridge: CUDA ops unavailable"

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_lock = threading.RLock()
_ext: ModuleType | None = None
_error: str | None = None
_notified = False
_notice_handler: Callable[[str], None] | None = None


class CudaOpsUnavailableWarning(RuntimeWarning):
    """Issued once per process when the CUDA ops fall back to the native ones."""


# --------------------------------------------------------------------------- #
# Building and availability
# --------------------------------------------------------------------------- #


def _one_line(exc: BaseException) -> str:
    """A single-line description of a build failure (first line + first error line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    head = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    if len(head) > 160:
        head = head[:157] + "..."
    detail = next((line for line in lines[1:] if re.search(r"\berror\b", line, re.I)), None)
    if detail is not None:
        if len(detail) > 160:
            detail = detail[:157] + "..."
        head = f"{head}; {detail}"
    return " ".join(head.split())


def build_directory() -> str | None:
    """Where the extension is built: under ``$STYLEBRIDGE_HOME`` if set, else torch's default.

    ``None`` means torch's default (``$TORCH_EXTENSIONS_DIR`` or
    ``~/.cache/torch_extensions/<python>_<cuda>``).
    """
    home = os.environ.get("STYLEBRIDGE_HOME", "").strip()
    if not home:
        return None
    cuda = (torch.version.cuda or "cpu").replace(".", "")
    tag = f"py{sys.version_info.major}{sys.version_info.minor}_cu{cuda}_torch{torch.__version__}"
    # os.path.expanduser keeps a "~" it cannot expand (no home folder); Path.expanduser raises
    return str(Path(os.path.expanduser(home)) / "torch_extensions" / tag / EXTENSION_NAME)


def _precheck() -> str | None:
    """Why the extension cannot be used here, or ``None`` if it is worth building."""
    if not torch.cuda.is_available():
        return "torch.cuda.is_available() is False"
    from torch.utils import cpp_extension

    cuda_home = getattr(cpp_extension, "CUDA_HOME", None)
    if not cuda_home:
        return "no CUDA toolkit found; set CUDA_HOME"
    nvcc = Path(cuda_home) / "bin" / ("nvcc.exe" if os.name == "nt" else "nvcc")
    if not nvcc.is_file():
        return f"nvcc not found at {nvcc}; set CUDA_HOME"
    if not (Path(cuda_home) / "include" / "cuda_runtime.h").is_file():
        return f"CUDA headers not found under {cuda_home}/include; set CUDA_HOME"
    return None


def precheck() -> str | None:
    """Why the CUDA ops cannot be built or used here (no GPU, no toolkit), or ``None`` when a
    build is worth trying; builds nothing."""
    return _precheck()


def build(verbose: bool = False) -> ModuleType:
    """Compile (or load the cached build of) the extension and cache it in this process.

    Does not check for a GPU: it can be called on a machine without one to
    check that the sources compile (set ``TORCH_CUDA_ARCH_LIST`` then, e.g.
    ``"9.0"``).  Raises whatever the build raises.
    """
    global _ext, _error
    with _lock:
        if _ext is not None:
            return _ext
        from torch.utils import cpp_extension

        if not os.environ.get("TORCH_CUDA_ARCH_LIST") and torch.cuda.device_count() == 0:
            raise RuntimeError("no CUDA device visible; set TORCH_CUDA_ARCH_LIST to build anyway")
        directory = build_directory()
        if directory is not None:
            os.makedirs(directory, exist_ok=True)
        module = cpp_extension.load(
            name=EXTENSION_NAME,
            sources=[str(CSRC_DIR / name) for name in SOURCES],
            extra_cflags=["-O3"],
            extra_cuda_cflags=["-O3"],
            build_directory=directory,
            verbose=verbose,
        )
        _ext, _error = module, None
        return module


def set_notice_handler(handler: Callable[[str], None] | None
                       ) -> Callable[[str], None] | None:
    """Say the fall-back notice through ``handler(line)`` instead of a
    :class:`CudaOpsUnavailableWarning` (the command line prints the line itself); ``None``:
    the warning again.  Returns the previous handler."""
    global _notice_handler
    with _lock:
        previous, _notice_handler = _notice_handler, handler
    return previous


def _notify(reason: str) -> None:
    global _notified
    if _notified:
        return
    _notified = True
    message = f"{NOTICE_PREFIX} ({reason}); using the native PyTorch ops"
    if _notice_handler is not None:
        _notice_handler(message)
    else:  # the library says it once, as a warning (no print: Python users saw it twice)
        warnings.warn(message, CudaOpsUnavailableWarning, stacklevel=3)


def available(required: bool = False) -> bool:
    """Whether the CUDA ops can be used; builds the extension on the first call.

    On failure returns ``False`` after a one-time notice (a
    :class:`CudaOpsUnavailableWarning`, or the line through :func:`set_notice_handler`'s
    handler), or with ``required=True`` raises
    :class:`~stylebridge.errors.StylebridgeError` carrying the one-line reason.
    The outcome is cached until :func:`reset`.
    """
    global _error
    with _lock:
        if _ext is None and _error is None:
            reason = _precheck()
            if reason is None:
                try:
                    build()
                except Exception as exc:  # any build failure means "fall back"
                    reason = _one_line(exc)
            _error = reason
        if _ext is not None:
            return True
        reason = _error or "unknown reason"
        if required:
            raise StylebridgeError(f"CUDA ops unavailable: {reason}")
        _notify(reason)
        return False


def build_error() -> str | None:
    """The one-line reason the CUDA ops are unavailable (``None`` if untried or built)."""
    return _error


def reset() -> None:
    """Forget the cached outcome and the notice (for tests; a loaded module stays loaded)."""
    global _ext, _error, _notified
    with _lock:
        _ext, _error, _notified = None, None, False


def _extension() -> ModuleType:
    if _ext is None:
        available(required=True)
    assert _ext is not None
    return _ext


# --------------------------------------------------------------------------- #
# Fused bias + leaky ReLU
# --------------------------------------------------------------------------- #


# Every kernel is a ``torch.library`` custom op (``stylebridge::...``) with a fake (meta)
# implementation and a registered autograd formula, so ``torch.compile`` traces through it
# without a graph break and CUDA graphs can capture it; the backward formulas are written
# with the same ops, so every order of derivatives works.


def _kept_layout(x: Tensor) -> torch.memory_format:
    """The layout ``fused_bias_act``/``modulated_bias_act`` give their output (``ops.cpp``):
    channels-last for a 4-D channels-last input that is not also contiguous (so channels-last
    activations stay channels-last, no conversion per layer), contiguous otherwise."""
    if (x.ndim == 4 and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last)):
        return torch.channels_last
    return torch.contiguous_format


@torch.library.custom_op("stylebridge::fused_bias_act", mutates_args=(),
                         schema="(Tensor x, Tensor? bias, float slope, float scale, "
                                "float? clamp) -> Tensor")
def _fused_bias_act_op(x: Tensor, bias: Tensor | None, slope: float, scale: float,
                       clamp: float | None) -> Tensor:
    return _extension().fused_bias_act(x, bias, slope, scale, clamp)


@_fused_bias_act_op.register_fake
def _(x: Tensor, bias: Tensor | None, slope: float, scale: float,
      clamp: float | None) -> Tensor:
    return torch.empty_like(x, memory_format=_kept_layout(x))


@torch.library.custom_op("stylebridge::fused_bias_act_grad", mutates_args=(),
                         schema="(Tensor grad, Tensor y, float slope, float scale, "
                                "float? clamp) -> Tensor")
def _fused_bias_act_grad_op(grad: Tensor, y: Tensor, slope: float, scale: float,
                            clamp: float | None) -> Tensor:
    return _extension().fused_bias_act_grad(grad, y, slope, scale, clamp)


@_fused_bias_act_grad_op.register_fake
def _(grad: Tensor, y: Tensor, slope: float, scale: float, clamp: float | None) -> Tensor:
    return torch.empty_like(y, memory_format=_kept_layout(y))


def _fba_setup(ctx: Any, inputs: tuple, output: Tensor) -> None:
    x, bias, slope, scale, clamp = inputs
    ctx.save_for_backward(output)
    ctx.args = (slope, scale, clamp)
    ctx.bias_ndim = None if bias is None else x.ndim


def _fba_backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None,
                                                   None]:
    (y,) = ctx.saved_tensors
    grad_x = _fused_bias_act_grad_op(grad, y, *ctx.args)  # in y's layout
    grad_bias = None
    if ctx.bias_ndim is not None and ctx.needs_input_grad[1]:
        grad_bias = grad_x.sum(dim=[0, *range(2, grad_x.ndim)])
    return grad_x, grad_bias, None, None, None


def _fba_grad_setup(ctx: Any, inputs: tuple, output: Tensor) -> None:
    _, y, slope, scale, clamp = inputs
    ctx.save_for_backward(y)
    ctx.args = (slope, scale, clamp)


def _fba_grad_backward(ctx: Any, grad_grad: Tensor) -> tuple[Tensor, None, None, None, None]:
    # grad_x = grad_y * m(y) is linear in grad_y with the same mask, so its backward is
    # itself; m(y) is piecewise constant: no gradient flows to y.
    (y,) = ctx.saved_tensors
    return _fused_bias_act_grad_op(grad_grad, y, *ctx.args), None, None, None, None


_fused_bias_act_op.register_autograd(_fba_backward, setup_context=_fba_setup)
_fused_bias_act_grad_op.register_autograd(_fba_grad_backward, setup_context=_fba_grad_setup)


def fused_leaky_relu(x: Tensor, bias: Tensor | None, negative_slope: float, scale: float,
                     clamp: float | None) -> Tensor:
    """CUDA ``leaky_relu(x + bias) * scale`` (optionally clamped), differentiable to any order.

    Same semantics and dtype promotion as
    :func:`stylebridge.core.ops.fused_act.fused_leaky_relu_native`.
    """
    slope, gain = float(negative_slope), float(scale)
    limit = None if clamp is None else float(clamp)
    if (slope < 0 or (limit is not None and limit < 0) or x.dtype not in _FLOAT_DTYPES
            or (bias is not None and (x.ndim < 2 or bias.dtype not in _FLOAT_DTYPES))):
        from stylebridge.core.ops.fused_act import fused_leaky_relu_native

        return fused_leaky_relu_native(x, bias, negative_slope, scale, clamp)
    if bias is not None:
        dtype = torch.promote_types(x.dtype, bias.dtype)
        x, bias = x.to(dtype), bias.to(dtype)
    return _fused_bias_act_op(x, bias, slope, gain, limit)


# --------------------------------------------------------------------------- #
# The styled-conv epilogue: demodulation + noise + bias + leaky ReLU + gain (+ clamp)
# --------------------------------------------------------------------------- #


@torch.library.custom_op("stylebridge::modulated_bias_act", mutates_args=(),
                         schema="(Tensor x, Tensor? demod, Tensor? noise, Tensor? strength, "
                                "Tensor? bias, float slope, float scale, float? clamp) -> Tensor")
def _modulated_bias_act_op(x: Tensor, demod: Tensor | None, noise: Tensor | None,
                           strength: Tensor | None, bias: Tensor | None, slope: float,
                           scale: float, clamp: float | None) -> Tensor:
    return _extension().modulated_bias_act(x, demod, noise, strength, bias, slope, scale, clamp)


@_modulated_bias_act_op.register_fake
def _(x: Tensor, demod: Tensor | None, noise: Tensor | None, strength: Tensor | None,
      bias: Tensor | None, slope: float, scale: float, clamp: float | None) -> Tensor:
    return torch.empty_like(x, memory_format=_kept_layout(x))


def _mba_setup(ctx: Any, inputs: tuple, output: Tensor) -> None:
    x, demod, noise, strength, bias, slope, scale, clamp = inputs
    # x only for demod's gradient (it is the activation: not kept alive without demod)
    ctx.save_for_backward(None if demod is None else x, demod, noise, strength, output)
    ctx.args = (slope, scale, clamp)
    ctx.has_bias = bias is not None


def _mba_backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
    # y = act(z), z = x * demod + strength * noise + bias: the activation's derivative (a
    # piecewise constant mask, from y) by fused_bias_act_grad, then the products' rules.
    x, demod, noise, strength, y = ctx.saved_tensors
    g = _fused_bias_act_grad_op(grad, y, *ctx.args)  # in y's layout
    need = ctx.needs_input_grad
    grad_x = grad_demod = grad_noise = grad_strength = grad_bias = None
    if need[0]:
        grad_x = g if demod is None else g * demod[:, :, None, None]
    if demod is not None and need[1]:
        grad_demod = (g * x).sum(dim=(2, 3))
    if noise is not None and need[2]:
        grad_noise = g.sum(dim=1, keepdim=True) * strength
        if noise.shape[0] != g.shape[0]:
            grad_noise = grad_noise.sum(dim=0, keepdim=True)
    if noise is not None and need[3]:
        grad_strength = (g * noise).sum().reshape(strength.shape)
    if ctx.has_bias and need[4]:
        grad_bias = g.sum(dim=(0, 2, 3))
    return grad_x, grad_demod, grad_noise, grad_strength, grad_bias, None, None, None


_modulated_bias_act_op.register_autograd(_mba_backward, setup_context=_mba_setup)


def modulated_bias_act(x: Tensor, demod: Tensor | None, noise: Tensor | None,
                       strength: Tensor | None, bias: Tensor | None, negative_slope: float,
                       scale: float, clamp: float | None) -> Tensor:
    """The fused epilogue kernel (see :func:`stylebridge.core.ops.epilogue.modulated_bias_act`
    for the semantics and checked shapes), differentiable to any order: the backward is
    ``fused_bias_act_grad`` and plain PyTorch ops.

    All inputs are promoted to one dtype first (PyTorch's promotion, as the native sequence
    gives); a negative slope or clamp, or non-float inputs, go to the native sequence.
    """
    slope, gain = float(negative_slope), float(scale)
    limit = None if clamp is None else float(clamp)
    given = [t for t in (x, demod, noise, strength, bias) if t is not None]
    if slope < 0 or (limit is not None and limit < 0) or any(
            t.dtype not in _FLOAT_DTYPES for t in given):
        from stylebridge.core.ops.epilogue import modulated_bias_act_native

        return modulated_bias_act_native(x, demod, noise, strength, bias, negative_slope,
                                         scale, clamp)
    dtype = x.dtype
    for t in given[1:]:
        dtype = torch.promote_types(dtype, t.dtype)

    def cast(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(dtype)

    if noise is None:
        strength = None
    elif strength is not None:
        strength = strength.reshape(1)
    if demod is not None:
        demod = demod.reshape(x.shape[0], x.shape[1])
    return _modulated_bias_act_op(x.to(dtype), cast(demod), cast(noise), cast(strength),
                                  cast(bias), slope, gain, limit)


# --------------------------------------------------------------------------- #
# upfirdn2d
# --------------------------------------------------------------------------- #


def upfirdn2d_output_size(in_size: int, kernel_size: int, up: int, down: int,
                          pad0: int, pad1: int) -> int:
    """Output length of one axis: ``(in * up + pad0 + pad1 - k) // down + 1``."""
    return (in_size * up + pad0 + pad1 - kernel_size) // down + 1


def upfirdn2d_backward_pad(in_hw: tuple[int, int], kernel_hw: tuple[int, int],
                           up: tuple[int, int], down: tuple[int, int],
                           pad: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Pads ``(x0, x1, y0, y1)`` that turn upfirdn2d's backward into another upfirdn2d.

    For ``y = upfirdn2d(x, k, up, down, pad)`` with ``x`` of spatial size
    ``in_hw = (H, W)`` and ``k`` of size ``kernel_hw = (kh, kw)``::

        dL/dx = upfirdn2d(dL/dy, flip(k), up=down, down=up, pad=upfirdn2d_backward_pad(...))

    Per axis (input length ``L``, kernel length ``K``, factors ``U``/``D``,
    pads ``p0``/``p1``, output length ``O``): ``y[o] = sum_t u[o*D + t - p0] k[K-1-t]``
    so ``dx[m] = sum_o dy[o] k[K-1 - (m*U + p0 - o*D)]``.  Writing this as an
    upfirdn2d of ``dy`` (up ``D``, down ``U``, kernel ``k' = flip(k)``, pad ``q0``)
    gives ``sum_o dy[o] k[o*D - m*U + q0]``, hence ``q0 = K - 1 - p0``; ``q1``
    makes the output length exactly ``L``: ``q1 = L*U - O*D + p0 - U + 1``.
    """
    in_h, in_w = in_hw
    kh, kw = kernel_hw
    up_x, up_y = up
    down_x, down_y = down
    px0, px1, py0, py1 = pad
    out_w = upfirdn2d_output_size(in_w, kw, up_x, down_x, px0, px1)
    out_h = upfirdn2d_output_size(in_h, kh, up_y, down_y, py0, py1)
    return (
        kw - 1 - px0,
        in_w * up_x - out_w * down_x + px0 - up_x + 1,
        kh - 1 - py0,
        in_h * up_y - out_h * down_y + py0 - up_y + 1,
    )


@torch.library.custom_op("stylebridge::upfirdn2d", mutates_args=(),
                         schema="(Tensor x, Tensor kernel, int up_x, int up_y, int down_x, "
                                "int down_y, int pad_x0, int pad_x1, int pad_y0, int pad_y1) "
                                "-> Tensor")
def _upfirdn2d_op(x: Tensor, kernel: Tensor, up_x: int, up_y: int, down_x: int, down_y: int,
                  pad_x0: int, pad_x1: int, pad_y0: int, pad_y1: int) -> Tensor:
    return _extension().upfirdn2d(x, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1,
                                  pad_y0, pad_y1)


def _upfirdn2d_fake(x: Tensor, kernel: Tensor, up_x: int, up_y: int, down_x: int, down_y: int,
                    pad_x0: int, pad_x1: int, pad_y0: int, pad_y1: int) -> Tensor:
    out_h = upfirdn2d_output_size(x.shape[2], kernel.shape[0], up_y, down_y, pad_y0, pad_y1)
    out_w = upfirdn2d_output_size(x.shape[3], kernel.shape[1], up_x, down_x, pad_x0, pad_x1)
    return x.new_empty((x.shape[0], x.shape[1], out_h, out_w))


# The same operation by shared-memory tiles (csrc/upfirdn2d_tiled.cu): up and down in {1, 2}
# (equal on both axes), kernels up to 8x8; the C++ op runs the generic kernel for the rest.
@torch.library.custom_op("stylebridge::upfirdn2d_tiled", mutates_args=(),
                         schema="(Tensor x, Tensor kernel, int up_x, int up_y, int down_x, "
                                "int down_y, int pad_x0, int pad_x1, int pad_y0, int pad_y1) "
                                "-> Tensor")
def _upfirdn2d_tiled_op(x: Tensor, kernel: Tensor, up_x: int, up_y: int, down_x: int,
                        down_y: int, pad_x0: int, pad_x1: int, pad_y0: int,
                        pad_y1: int) -> Tensor:
    return _extension().upfirdn2d_tiled(x, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1,
                                        pad_y0, pad_y1)


TILED_MAX_TAPS = 8


def tiled_supported(up: tuple[int, int], down: tuple[int, int],
                    kernel_hw: tuple[int, int]) -> bool:
    """Whether the tiled kernel covers these factors ``(x, y)`` and kernel size ``(h, w)``
    (the same rule as ``upfirdn2d_tiled_supported`` in ``csrc/upfirdn2d_tiled.cu``)."""
    return (up[0] == up[1] in (1, 2) and down[0] == down[1] in (1, 2)
            and kernel_hw[0] <= TILED_MAX_TAPS and kernel_hw[1] <= TILED_MAX_TAPS)


_upfirdn2d_op.register_fake(_upfirdn2d_fake)
_upfirdn2d_tiled_op.register_fake(_upfirdn2d_fake)


def _upfirdn2d_setup(ctx: Any, inputs: tuple, output: Tensor) -> None:
    x, kernel, *factors = inputs
    ctx.save_for_backward(kernel)
    ctx.in_hw = (x.shape[2], x.shape[3])
    ctx.factors = tuple(factors)


def _upfirdn2d_backward_by(op: Any) -> Any:
    """The backward of an upfirdn2d op, written with the same op (so the tiled kernel's
    gradients run the tiled kernel too)."""

    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (kernel,) = ctx.saved_tensors
        up_x, up_y, down_x, down_y, *pad = ctx.factors
        grad_pad = upfirdn2d_backward_pad(ctx.in_hw, (kernel.shape[0], kernel.shape[1]),
                                          (up_x, up_y), (down_x, down_y), tuple(pad))
        # upfirdn2d is linear in x: its backward is an upfirdn2d, differentiable in turn.
        grad_x = op(grad.contiguous(), torch.flip(kernel, [0, 1]), down_x, down_y,
                    up_x, up_y, *grad_pad)
        return (grad_x, *([None] * 9))

    return backward


_upfirdn2d_op.register_autograd(_upfirdn2d_backward_by(_upfirdn2d_op),
                                setup_context=_upfirdn2d_setup)
_upfirdn2d_tiled_op.register_autograd(_upfirdn2d_backward_by(_upfirdn2d_tiled_op),
                                      setup_context=_upfirdn2d_setup)


def upfirdn2d(x: Tensor, kernel: Tensor, up: tuple[int, int], down: tuple[int, int],
              pad: tuple[int, int, int, int]) -> Tensor:
    """CUDA upfirdn2d (``up``/``down`` as ``(x, y)``, ``pad`` as ``(x0, x1, y0, y1)``).

    Same semantics as :func:`stylebridge.core.ops.upfirdn2d.upfirdn2d_native`;
    ``kernel`` is a constant (a kernel that requires grad goes to the native op).  The tiled
    kernel runs where :func:`~stylebridge.core.ops.backend.use_tiled_upfirdn2d` chooses it
    and it covers the arguments (:func:`tiled_supported`), else the generic kernel.
    """
    up = (int(up[0]), int(up[1]))
    down = (int(down[0]), int(down[1]))
    pad = (int(pad[0]), int(pad[1]), int(pad[2]), int(pad[3]))
    if kernel.requires_grad or x.dtype not in _FLOAT_DTYPES or not kernel.is_floating_point():
        from stylebridge.core.ops.upfirdn2d import upfirdn2d_native

        return upfirdn2d_native(x, kernel, up, down, pad)
    if x.ndim != 4 or kernel.ndim != 2:
        raise ValueError(
            f"upfirdn2d expects x [N, C, H, W] and a 2-D kernel, got {tuple(x.shape)} "
            f"and {tuple(kernel.shape)}")
    op = _upfirdn2d_op
    if use_tiled_upfirdn2d() and tiled_supported(up, down, (kernel.shape[0], kernel.shape[1])):
        op = _upfirdn2d_tiled_op
    return op(x, kernel, up[0], up[1], down[0], down[1], *pad)
