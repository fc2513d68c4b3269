"""The NaN/Inf guard shared by the trainers."""

from __future__ import annotations

import math

from stylebridge.errors import StylebridgeError


class TrainingDivergedError(StylebridgeError):
    """The loss, the gradients or the weights became NaN/Inf; the last good checkpoint is
    kept (the message says where)."""


def non_finite_word(value: float | None) -> str:
    """``infinite`` for ±Inf, else ``NaN`` (for messages)."""
    return "infinite" if value is not None and math.isinf(value) else "NaN"
