"""Learning-rate schedules and training phases."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def linear_warmup_lr(step: int, lr: float, warmup_steps: int, start_lr: float) -> float:
    """StyleDomain's LambdaLR: ``start + min(1, step / warmup) * (lr - start)``; ``lr``
    without warm-up."""
    if warmup_steps <= 0:
        return lr
    return start_lr + min(1.0, step / warmup_steps) * (lr - start_lr)


def warmup_cosine_factor(warmup_steps: int, steps: int, scheduler: str
                         ) -> Callable[[int], float]:
    """A ``LambdaLR`` factor: linear warm-up ``(step + 1) / warmup`` for the 0-based update
    ``step``, so the first update uses ``lr / warmup`` (not 0) and update ``warmup`` the full
    ``lr``; then constant or a cosine decay to 0 at ``steps``."""
    def fn(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if scheduler == "cosine":
            span = max(1, steps - warmup_steps)
            t = min(1.0, (step - warmup_steps) / span)
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0
    return fn


def phase_at(step: int, phases: Sequence[tuple[str, int]]) -> str:
    """The phase of ``step`` given ``[(name, first step), ...]`` in order (the first
    phase starts at 0)."""
    current = phases[0][0]
    for name, start in phases:
        if step >= start:
            current = name
    return current
