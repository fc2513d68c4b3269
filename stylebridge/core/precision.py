"""Reduced-precision synthesis: what ``--precision`` and :meth:`Generator.set_precision` mean.

``fp32`` is the reference and the default.  ``bf16`` and ``fp16`` run the synthesis network
(every entry point: ``synthesis``, ``features_upto``, ``synthesize_from``) under
:func:`torch.autocast` with that dtype; what the generator returns is float32 again, so the
encoders, metrics and image writers downstream see the dtype they always do.  The numbers are
not the fp32 ones: on a 256 px config-f generator with random weights, bf16 differs from fp32
by up to about 0.1 on images in [-1, 1] (``benchmarks/RESULTS.md``), i.e. a few 8-bit levels
on most pixels and more on some.  ``bf16`` runs on CUDA and on the CPU (2.3× fp32 at 256 px
on a CPU with AMX, measured); ``fp16`` on CUDA only.  On a CPU without AMX-BF16 bf16 is
slower than fp32 (0.7× with AVX512-BF16, less without it; :func:`slow_precision_note` says so
where a run starts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the CLI reads PRECISIONS without it
    import torch

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (``None`` for ``fp32``); a one-line
    :class:`~stylebridge.errors.OptionError` (a ``ValueError``) if unknown."""
    import torch

    from stylebridge.errors import OptionError

    if precision not in PRECISIONS:
        raise OptionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def check_precision(precision: str, device: torch.device | str) -> None:
    """A one-line :class:`~stylebridge.errors.StylebridgeError` when ``precision`` is unknown
    or does not run on ``device`` (``fp16`` needs CUDA)."""
    import torch

    from stylebridge.errors import StylebridgeError

    try:
        autocast_dtype(precision)
    except ValueError as exc:
        raise StylebridgeError(f"precision: {exc}") from None
    if precision == "fp16" and torch.device(device).type != "cuda":
        raise StylebridgeError(f"precision fp16 needs a CUDA device, not {torch.device(device)}; "
                               "use bf16 on the CPU")


def cpu_has_amx_bf16() -> bool | None:
    """Whether this CPU has AMX-BF16, as torch reads it: the one CPU path on which bf16 ran
    faster than fp32 (2.3×); ``None`` when this torch cannot tell."""
    import torch

    try:
        caps = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):
        return None
    if not isinstance(caps, Mapping) or "amx_bf16" not in caps:
        return None
    return bool(caps.get("amx_bf16"))


def slow_precision_note(precision: str, device: torch.device | str) -> str | None:
    """A note for a run whose ``precision`` is slower than fp32 on ``device``: bf16 on a
    CPU without AMX-BF16 (measured with oneDNN held to each ISA at 256 px: AVX512-BF16 alone
    0.7× fp32, AVX-512 without it 0.3-0.5×, AVX2 0.04×; with AMX 2.3×); ``None`` otherwise."""
    import torch

    if (precision != "bf16" or torch.device(device).type != "cpu"
            or cpu_has_amx_bf16() is not False):
        return None
    return ("--precision bf16: this CPU has no AMX, on which alone bf16 measured faster than "
            "fp32 (0.7x fp32 with AVX512-BF16, slower still without it); --precision fp32 is "
            "the faster choice here")


def slow_precision_notes(precision: str, device: torch.device | str) -> list[str]:
    """:func:`slow_precision_note` as a list (empty: nothing to say), for a run's notes."""
    note = slow_precision_note(precision, device)
    return [] if note is None else [note]
