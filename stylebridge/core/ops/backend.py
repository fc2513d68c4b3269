"""Which implementation of the custom ops runs (see :mod:`stylebridge.core.ops`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal


def constant_under_compile(fn: Callable[[], bool]) -> Callable[[], bool]:
    """:func:`torch.compiler.assume_constant_result` without its import of ``torch._dynamo``
    (0.8 s at every start of the CLI, which builds no graph): that decorator only marks the
    function, and this sets the same mark.  ``tests/test_compiled.py`` checks that both leave
    the same attributes and that a compiled generator still has no graph break."""
    fn._dynamo_marked_constant = True  # type: ignore[attr-defined]
    return fn


Backend = Literal["auto", "native", "cuda"]
_VALID = ("auto", "native", "cuda")
_override: Backend | None = None


def _raw(env: str) -> str:
    """``$env`` as the switch reads it: stripped, lower case, empty = ``auto``."""
    return os.environ.get(env, "auto").strip().lower() or "auto"


def shown(value: str) -> str:
    """A switch's value for a message (a long one keeps its ends)."""
    return repr(value if len(value) <= 40 else f"{value[:30]}…{value[-9:]}")


def _problem(env: str, value: str, valid: tuple[str, ...]) -> str:
    return f"{env}={shown(value)} is not one of {', '.join(valid)}"


def _setting(env: str, valid: tuple[str, ...], override: str | None) -> str:
    """A switch's value: the Python override if set, else ``$env`` (case-insensitive, empty
    = ``auto``), else ``auto``; a value outside ``valid`` is a one-line error."""
    if override is not None:
        return override
    value = _raw(env)
    if value not in valid:
        from stylebridge.errors import StylebridgeError

        raise StylebridgeError(_problem(env, value, valid))
    return value


def _checked(value: str | None, valid: tuple[str, ...], what: str) -> None:
    """A Python override must be one of ``valid`` (or ``None``: back to the env var)."""
    if value is not None and value not in valid:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(valid)}")


def get_backend() -> Backend:
    """The active backend: :func:`set_backend` if called, else ``$STYLEBRIDGE_OPS``, else auto."""
    return _setting("STYLEBRIDGE_OPS", _VALID, _override)  # type: ignore[return-value]


def set_backend(backend: Backend | None) -> None:
    """Force ``"native"``/``"cuda"``/``"auto"``; ``None`` returns control to the env var."""
    global _override
    _checked(backend, _VALID, "backend")
    _override = backend


def use_cuda(tensor_is_cuda: bool) -> bool:
    """Whether this call should try the CUDA extension."""
    if not tensor_is_cuda:
        return False
    return _cuda_chosen()


@constant_under_compile
def _cuda_chosen() -> bool:
    """The backend choice for CUDA tensors; ``torch.compile`` evaluates it once while tracing
    and keeps the answer (its lock, environment lookup and one-time build are not traced, so
    the graph has no break; a graph compiled before :func:`set_backend` keeps its choice)."""
    backend = get_backend()
    if backend == "native":
        return False
    from stylebridge.core.ops import _cuda

    return _cuda.available(required=(backend == "cuda"))


@constant_under_compile
def forced_cuda() -> bool:
    """Whether the backend is ``cuda`` (every op call on a CUDA tensor uses the kernels);
    constant under ``torch.compile`` as :func:`use_cuda`'s choice is."""
    return get_backend() == "cuda"


# --------------------------------------------------------------------------- #
# The fused styled-conv epilogue (stylebridge.core.ops.epilogue)
# --------------------------------------------------------------------------- #

Epilogue = Literal["auto", "on", "off"]
_EPILOGUE_VALID = ("auto", "on", "off")
_epilogue_override: Epilogue | None = None

# Whether the fused epilogue kernel (``stylebridge::modulated_bias_act``) measured faster than
# the three-op sequence (demodulation, noise, bias + activation) on a GPU.  No GPU has measured
# it yet (``benchmarks/bench_ops.py`` reports the ratio), so ``auto`` keeps the three ops on
# CUDA until a GPU run sets this to True.
EPILOGUE_MEASURED_FASTER = False


def fused_epilogue() -> Epilogue:
    """The fused-epilogue setting: :func:`set_fused_epilogue` if called, else
    ``$STYLEBRIDGE_EPILOGUE``, else ``auto``."""
    return _setting("STYLEBRIDGE_EPILOGUE", _EPILOGUE_VALID,  # type: ignore[return-value]
                    _epilogue_override)


def set_fused_epilogue(value: Epilogue | None) -> None:
    """Force ``"on"``/``"off"``/``"auto"``; ``None`` returns control to the env var."""
    global _epilogue_override
    _checked(value, _EPILOGUE_VALID, "fused epilogue")
    _epilogue_override = value


@constant_under_compile
def _epilogue_chosen() -> bool:
    """Whether the fused-epilogue setting asks for the kernel on CUDA tensors: ``on``, or
    ``auto`` where it measured faster (:data:`EPILOGUE_MEASURED_FASTER`) or when
    ``STYLEBRIDGE_OPS=cuda`` forces every kernel; constant under ``torch.compile``."""
    setting = fused_epilogue()
    if setting == "auto":
        return EPILOGUE_MEASURED_FASTER or get_backend() == "cuda"
    return setting == "on"


def use_fused_epilogue(tensor_is_cuda: bool) -> bool:
    """Whether this epilogue call runs the fused kernel: a CUDA tensor, a backend that uses
    the extension (never with ``STYLEBRIDGE_OPS=native``) and a setting that asks for it."""
    return tensor_is_cuda and _epilogue_chosen() and use_cuda(tensor_is_cuda)


# --------------------------------------------------------------------------- #
# The tiled upfirdn2d kernel (csrc/upfirdn2d_tiled.cu)
# --------------------------------------------------------------------------- #

Upfirdn2dKernel = Literal["auto", "tiled", "generic"]
_UPFIRDN2D_VALID = ("auto", "tiled", "generic")
_upfirdn2d_override: Upfirdn2dKernel | None = None

# Whether the shared-memory tiled upfirdn2d kernel (``stylebridge::upfirdn2d_tiled``) measured
# faster than the generic one-thread-per-output kernel (and, for the plain 4x4 blur, than
# PyTorch's depthwise convolution) on a GPU.  No GPU has measured it yet (its logic is checked
# on the CPU by emulating the grid; ``benchmarks/bench_ops.py`` reports the ratios), so
# ``auto`` keeps today's kernels until a GPU run sets this to True.
TILED_UPFIRDN2D_MEASURED_FASTER = False


def upfirdn2d_tiled() -> Upfirdn2dKernel:
    """The upfirdn2d kernel setting: :func:`set_upfirdn2d_tiled` if called, else
    ``$STYLEBRIDGE_UPFIRDN2D``, else ``auto``."""
    return _setting("STYLEBRIDGE_UPFIRDN2D", _UPFIRDN2D_VALID,  # type: ignore[return-value]
                    _upfirdn2d_override)


def set_upfirdn2d_tiled(value: Upfirdn2dKernel | None) -> None:
    """Force ``"tiled"``/``"generic"``/``"auto"``; ``None`` returns control to the env var."""
    global _upfirdn2d_override
    _checked(value, _UPFIRDN2D_VALID, "upfirdn2d kernel")
    _upfirdn2d_override = value


@constant_under_compile
def _tiled_upfirdn2d_chosen() -> bool:
    """Whether the setting asks for the tiled kernel: ``tiled``, or ``auto`` where it
    measured faster (:data:`TILED_UPFIRDN2D_MEASURED_FASTER`); constant under
    ``torch.compile``.  ``STYLEBRIDGE_OPS=cuda`` does not change it (both are kernels)."""
    setting = upfirdn2d_tiled()
    if setting == "auto":
        return TILED_UPFIRDN2D_MEASURED_FASTER
    return setting == "tiled"


def use_tiled_upfirdn2d() -> bool:
    """Whether an upfirdn2d call that runs a CUDA kernel runs the tiled one (where it covers
    the arguments); the backend decides separately whether a kernel runs at all."""
    return _tiled_upfirdn2d_chosen()


# --------------------------------------------------------------------------- #
# Every switch at once
# --------------------------------------------------------------------------- #

#: the environment switches the ops read: name -> (valid values, what it chooses)
SWITCHES: dict[str, tuple[tuple[str, ...], str]] = {
    "STYLEBRIDGE_OPS": (_VALID, "ops backend"),
    "STYLEBRIDGE_EPILOGUE": (_EPILOGUE_VALID, "fused epilogue"),
    "STYLEBRIDGE_UPFIRDN2D": (_UPFIRDN2D_VALID, "upfirdn2d kernel"),
}


def _overrides() -> dict[str, str | None]:
    return {"STYLEBRIDGE_OPS": _override, "STYLEBRIDGE_EPILOGUE": _epilogue_override,
            "STYLEBRIDGE_UPFIRDN2D": _upfirdn2d_override}


def switch_states() -> list[tuple[str, str, str | None]]:
    """``(name, value, problem)`` for each switch: the value in effect (a Python override,
    else the environment's, as read: stripped, lower case, ``auto`` when unset) and the
    one-line problem of a value outside the valid ones (``None``: valid)."""
    overrides, rows = _overrides(), []
    for env, (valid, _) in SWITCHES.items():
        override = overrides[env]
        value = override if override is not None else _raw(env)
        rows.append((env, value, None if value in valid else _problem(env, value, valid)))
    return rows


def check_switches() -> list[str]:
    """One line per switch whose environment value is not valid (empty: all are valid).
    A switch set from Python (:func:`set_backend`, ...) is valid: the environment is not
    read then."""
    return [problem for _, _, problem in switch_states() if problem is not None]


def require_valid_switches() -> None:
    """Raise a one-line :class:`~stylebridge.errors.StylebridgeError` naming every bad
    switch.  Called when a network that runs the ops is built (its
    :class:`~stylebridge.core.ops.FusedLeakyReLU` layers), so a bad value stops a command
    before any model file is read, on the CPU as on a GPU, instead of at the first call that
    reads it (``STYLEBRIDGE_EPILOGUE`` is read on CUDA tensors only: a CPU run never did)."""
    problems = check_switches()
    if problems:
        from stylebridge.errors import StylebridgeError

        raise StylebridgeError("; ".join(problems) + " (unset it or set a valid value)")
