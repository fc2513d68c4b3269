"""Which implementation of the custom ops runs (see :mod:`stylebridge.core.ops`)."""

from __future__ import annotations

import os
from typing import Literal

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
    backend = get_backend()
    if backend == "native":
        return False
    from stylebridge.core.ops import _cuda

    return _cuda.available(required=(backend == "cuda"))
