"""StyleGAN2's custom ops: fused bias + leaky ReLU and upfirdn2d.

Each op has a native PyTorch implementation (always available, differentiable
to any order) and a CUDA implementation compiled on first use (never at
import).  Which one runs is chosen per call:

* ``STYLEBRIDGE_OPS=auto`` (default): CUDA for CUDA tensors when the extension
  builds, native otherwise; a failed build prints one notice and falls back.
* ``STYLEBRIDGE_OPS=native``: always native.
* ``STYLEBRIDGE_OPS=cuda``: CUDA for CUDA tensors, and a build failure is an error.

:func:`set_backend` does the same from Python.
"""

from stylebridge.core.ops.backend import get_backend, set_backend
from stylebridge.core.ops.fused_act import (
    FusedLeakyReLU,
    autocast_enabled,
    autocast_like,
    fused_leaky_relu,
)
from stylebridge.core.ops.upfirdn2d import upfirdn2d

__all__ = ["FusedLeakyReLU", "autocast_enabled", "autocast_like", "fused_leaky_relu",
           "get_backend", "set_backend", "upfirdn2d"]
