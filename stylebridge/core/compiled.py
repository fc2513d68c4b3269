"""A compiled (and, on CUDA, graph-captured) synthesis network, with an eager fall-back.

:func:`compile_synthesis` wraps a generator's :meth:`~Generator.synthesis` in
:func:`torch.compile` for that generator instance: every caller of ``generator.synthesis``
(:func:`stylebridge.core.synthesis.synthesize`, the renderers, the pipelines) then runs the
compiled network.  The mode is chosen per device:

* CUDA: ``mode="reduce-overhead"`` (inductor kernels replayed through CUDA graphs; one graph
  per batch shape, so fixed batch sizes pay the capture once).  The custom CUDA ops are
  ``torch.library`` custom ops (:mod:`stylebridge.core.ops._cuda`), so they compile and
  capture without graph breaks;
* CPU and other devices: inductor's default mode (C++/OpenMP kernels on the CPU).

``mode="auto"`` turns it on only where it measured faster (:data:`MEASURED_FASTER`, from
``benchmarks/bench_gpu_speed.py``; see ``docs/speed.md``); ``"on"`` always tries; ``"off"``
never.  If compilation or capture fails, one notice line goes to the ``notice`` callback
(the pipelines pass their own notice channel; unset: a :class:`CompileFallbackWarning`) and
the generator runs eagerly from then on; an error that eager synthesis raises too (bad input) is raised
as it is, without a notice.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn

CompileMode = Literal["auto", "on", "off"]
COMPILE_MODES: tuple[str, ...] = ("auto", "on", "off")
NOTICE_PREFIX = "stylebridge: compiled synthesis unavailable"

#: Where ``auto`` compiles: device type -> compiled synthesis measured faster than eager there
#: (including its compile time over a typical run).  CPU: 2-core x86_64, torch 2.14, 256 px
#: batch 1 (``benchmarks/results/compile_cpu.json``).  CUDA: not measured yet (no GPU was
#: lent); ``benchmarks/gpu_speed.sh`` measures it, and until then ``auto`` stays eager there.
MEASURED_FASTER: dict[str, bool] = {"cpu": False, "cuda": False}


def wants_compile(mode: str, device: torch.device | str) -> bool:
    """Whether ``mode`` (``auto``/``on``/``off``) compiles on ``device``."""
    if mode not in COMPILE_MODES:
        from stylebridge.errors import StylebridgeError

        raise StylebridgeError(f"compile: {mode!r} is not one of {', '.join(COMPILE_MODES)}")
    if mode == "auto":
        return MEASURED_FASTER.get(torch.device(device).type, False)
    return mode == "on"


def torch_compile_mode(device: torch.device | str) -> str:
    """``torch.compile``'s mode for ``device``: CUDA graphs on CUDA, inductor's default else."""
    return "reduce-overhead" if torch.device(device).type == "cuda" else "default"


class CompileFallbackWarning(RuntimeWarning):
    """Issued when compiled synthesis falls back to eager and no ``notice`` was given."""


def _warn(line: str) -> None:
    """The default notice: a warning at the user's line (the library prints nothing
    itself)."""
    from stylebridge.errors import user_stacklevel

    warnings.warn(line, CompileFallbackWarning, stacklevel=user_stacklevel())


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class CompiledSynthesis:
    """``generator.synthesis`` through :func:`torch.compile`, falling back to eager once.

    Calls take exactly :meth:`Generator.synthesis`'s arguments.  ``compiled`` says whether
    the compiled path is still in use; ``fallback_reason`` why not (after a failure).
    """

    def __init__(self, generator: nn.Module, *, device: torch.device | str | None = None,
                 notice: Callable[[str], None] | None = None,
                 compiler: Callable[..., Callable[..., Tensor]] | None = None) -> None:
        self.eager: Callable[..., Tensor] = type(generator).synthesis.__get__(generator)
        if device is None:
            device = next(generator.parameters()).device
        self.device = torch.device(device)
        self.mode = torch_compile_mode(self.device)
        self._notice = notice or _warn
        make = compiler or torch.compile
        self.fallback_reason: str | None = None
        self._fn: Callable[..., Tensor] | None
        try:
            self._fn = make(self.eager, mode=self.mode, dynamic=False, fullgraph=False)
        except Exception as exc:  # torch.compile itself refused (e.g. unsupported platform)
            self._fn = None
            self._fall_back(exc)

    @property
    def compiled(self) -> bool:
        return self._fn is not None

    def _fall_back(self, exc: BaseException) -> None:
        self._fn = None
        self.fallback_reason = _one_line(exc)
        self._notice(f"{NOTICE_PREFIX} ({self.fallback_reason}); running eagerly")

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        if self._fn is None:
            return self.eager(*args, **kwargs)
        try:
            out = self._fn(*args, **kwargs)
            if self.mode == "reduce-overhead" and isinstance(out, Tensor):
                # a CUDA graph's output buffer is overwritten by the next replay
                out = out.clone()
            return out
        except Exception as exc:
            # bad input fails eagerly too: raise that, without a notice
            out = self.eager(*args, **kwargs)
            self._fall_back(exc)
            return out


def compile_synthesis(generator: nn.Module, mode: str = "auto", *,
                      device: torch.device | str | None = None,
                      notice: Callable[[str], None] | None = None) -> bool:
    """Make ``generator.synthesis`` the compiled network when ``mode`` says so; returns
    whether it did.  ``mode="off"`` (or ``auto`` where compiling did not measure faster)
    restores the eager method.  The wrapper lives on this instance only.  With a ``notice``
    (a run's notice channel), a compiled generator also gets :func:`compiling_note`."""
    if device is None:
        device = next(generator.parameters()).device
    if not wants_compile(mode, device):
        generator.__dict__.pop("synthesis", None)
        return False
    wrapper = CompiledSynthesis(generator, device=device, notice=notice)
    generator.__dict__["synthesis"] = wrapper
    if wrapper.compiled and notice is not None:  # a run's notice channel: say what it costs
        notice(compiling_note(device))
    return wrapper.compiled


def compiling_note(device: torch.device | str) -> str:
    """What a run with compiled synthesis says where it starts: the first call of each batch
    shape compiles (measured on a 2-core CPU at 256 px: 12-26 s per shape, so a short run is
    slower than eager), and only :meth:`Generator.synthesis` is compiled."""
    cost = ("tens of seconds each on a CPU" if torch.device(device).type == "cpu"
            else "seconds each")
    return ("--compile: the synthesis network is compiled at its first call for each batch "
            f"shape ({cost}; --compile off skips it); renders through a feature map (FSE's "
            "shift mode, FeatureShift, StyleRes) are compiled in part or not at all")


def is_compiled(generator: nn.Module) -> bool:
    """Whether ``generator.synthesis`` is a :class:`CompiledSynthesis` still compiling."""
    wrapper = generator.__dict__.get("synthesis")
    return isinstance(wrapper, CompiledSynthesis) and wrapper.compiled
