"""The NaN/Inf guard shared by the trainers."""

from __future__ import annotations

import math

import torch

from stylebridge.errors import StylebridgeError


class TrainingDivergedError(StylebridgeError):
    """The loss, the gradients or the weights became NaN/Inf; the last good checkpoint is
    kept (the message says where)."""


def non_finite_word(value: float | None) -> str:
    """``infinite`` for ±Inf, else ``NaN`` (for messages)."""
    return "infinite" if value is not None and math.isinf(value) else "NaN"


def grads_finite(params: list[torch.nn.Parameter]) -> bool:
    """Whether every gradient of ``params`` is finite (missing gradients count as finite)."""
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in params)


def weights_finite(params: object) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in params)  # type: ignore[attr-defined]
