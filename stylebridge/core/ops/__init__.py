"""StyleGAN2's custom ops: fused bias + leaky ReLU, upfirdn2d and the styled-conv epilogue.

Each op has a native PyTorch implementation (always available, differentiable
to any order) and a CUDA implementation compiled on first use (never at
import).  Which one runs is chosen per call:

* ``STYLEBRIDGE_OPS=auto`` (default): CUDA for CUDA tensors when the extension
  builds, native otherwise; a failed build prints one notice and falls back.
* ``STYLEBRIDGE_OPS=native``: always native.
* ``STYLEBRIDGE_OPS=cuda``: CUDA for CUDA tensors, and a build failure is an error.

:func:`set_backend` does the same from Python.

The styled-conv epilogue (:func:`modulated_bias_act`: demodulation + noise + bias + leaky
ReLU) has its own switch on top, ``STYLEBRIDGE_EPILOGUE=auto|on|off`` (or
:func:`set_fused_epilogue`): ``on`` runs its fused CUDA kernel wherever the backend uses the
extension, ``off`` never, ``auto`` where it measured faster (no GPU has measured it yet, so
only with ``STYLEBRIDGE_OPS=cuda``).

upfirdn2d has a second CUDA kernel, tiled in shared memory: ``STYLEBRIDGE_UPFIRDN2D=
auto|tiled|generic`` (or :func:`set_upfirdn2d_tiled`).  ``tiled`` runs it wherever a kernel
runs and it covers the arguments (up and down 1 or 2, kernels up to 8x8), and sends the
plain blur on CUDA to it instead of PyTorch's depthwise convolution; ``generic`` keeps the
one-thread-per-output kernel; ``auto`` uses the tiled one where it measured faster (no GPU
has measured it yet, so nowhere).

A value outside a switch's choices is a one-line error naming every bad switch
(:func:`check_switches` lists them, :func:`switch_states` gives each value) as soon as a
network is built (:func:`require_valid_switches`), not when a call first reads it: an
``STYLEBRIDGE_EPILOGUE`` typo used to pass every CPU run.  ``stylebridge doctor`` shows a row
per switch.
"""

from stylebridge.core.ops.backend import (
    SWITCHES,
    check_switches,
    fused_epilogue,
    get_backend,
    require_valid_switches,
    set_backend,
    set_fused_epilogue,
    set_upfirdn2d_tiled,
    switch_states,
    upfirdn2d_tiled,
)
from stylebridge.core.ops.epilogue import modulated_bias_act
from stylebridge.core.ops.fused_act import (
    FusedLeakyReLU,
    autocast_enabled,
    autocast_like,
    fused_leaky_relu,
)
from stylebridge.core.ops.upfirdn2d import upfirdn2d


def cuda_ops_unusable() -> str | None:
    """Why the CUDA ops cannot be built or used here (no GPU, no toolkit), or ``None`` when a
    build is worth trying; builds nothing."""
    from stylebridge.core.ops import _cuda

    return _cuda.precheck()


def build_cuda_ops() -> None:
    """Build (or load the cached build of) the CUDA ops now; a one-line
    :class:`~stylebridge.errors.StylebridgeError` with the reason when they cannot be used."""
    from stylebridge.core.ops import _cuda

    _cuda.available(required=True)


__all__ = ["SWITCHES", "FusedLeakyReLU", "autocast_enabled", "autocast_like",
           "build_cuda_ops", "check_switches", "cuda_ops_unusable", "fused_epilogue",
           "fused_leaky_relu", "get_backend", "modulated_bias_act", "require_valid_switches",
           "set_backend", "set_fused_epilogue", "set_upfirdn2d_tiled", "switch_states",
           "upfirdn2d", "upfirdn2d_tiled"]
