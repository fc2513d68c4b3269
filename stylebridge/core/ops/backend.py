"""Which implementation of the custom ops runs (see :mod:`stylebridge.core.ops`)."""

from __future__ import annotations

import os
from typing import Literal

import torch

Backend = Literal["auto", "native", "cuda"]
_VALID = ("auto", "native", "cuda")
_override: Backend | None = None


def get_backend() -> Backend:
    """The active backend: :func:`set_backend` if called, else ``$STYLEBRIDGE_OPS``, else auto."""
    if _override is not None:
        return _override
    value = os.environ.get("STYLEBRIDGE_OPS", "auto").strip().lower() or "auto"
    if value not in _VALID:
        from stylebridge.errors import StylebridgeError

        raise StylebridgeError(f"STYLEBRIDGE_OPS={value!r} is not one of {', '.join(_VALID)}")
    return value  # type: ignore[return-value]


def set_backend(backend: Backend | None) -> None:
    """Force ``"native"``/``"cuda"``/``"auto"``; ``None`` returns control to the env var."""
    global _override
    if backend is not None and backend not in _VALID:
        raise ValueError(f"backend {backend!r} is not one of {', '.join(_VALID)}")
    _override = backend


def use_cuda(tensor_is_cuda: bool) -> bool:
    """Whether this call should try the CUDA extension."""
    if not tensor_is_cuda:
        return False
    return _cuda_chosen()


@torch.compiler.assume_constant_result
def _cuda_chosen() -> bool:
    """The backend choice for CUDA tensors; ``torch.compile`` evaluates it once while tracing
    and keeps the answer (its lock, environment lookup and one-time build are not traced, so
    the graph has no break; a graph compiled before :func:`set_backend` keeps its choice)."""
    backend = get_backend()
    if backend == "native":
        return False
    from stylebridge.core.ops import _cuda

    return _cuda.available(required=(backend == "cuda"))


@torch.compiler.assume_constant_result
def forced_cuda() -> bool:
    """Whether the backend is ``cuda`` (every op call on a CUDA tensor uses the kernels);
    constant under ``torch.compile`` as :func:`use_cuda`'s choice is."""
    return get_backend() == "cuda"
