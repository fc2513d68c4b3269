"""Reduced-precision synthesis: what ``--precision`` and :meth:`Generator.set_precision` mean.

``fp32`` is the reference and the default.  ``bf16`` and ``fp16`` run the synthesis network
(every entry point: ``synthesis``, ``features_upto``, ``synthesize_from``) under
:func:`torch.autocast` with that dtype; what the generator returns is float32 again, so the
encoders, metrics and image writers downstream see the dtype they always do.  The numbers are
not the fp32 ones: on a 256 px config-f generator with random weights, bf16 differs from fp32
by up to about 0.1 on images in [-1, 1] (``benchmarks/RESULTS.md``), i.e. a few 8-bit levels
on most pixels and more on some.  ``bf16`` runs on CUDA and on the CPU (2.3× fp32 at 256 px
on a CPU with AMX, measured); ``fp16`` on CUDA only.
"""

from __future__ import annotations

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
