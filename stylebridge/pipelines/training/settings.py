"""The optimisation settings of the domain trainers (``train domain``, ``hyperdomain``,
``mindthegap``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from stylebridge.errors import StylebridgeError

WARMUP_START_LR = 0.001  # StyleDomain scheduler.start_lr


@dataclass
class TrainSettings:
    """Optimisation settings of
    :class:`~stylebridge.pipelines.training.domain.DomainTrainer` (steps are counted from 0)."""

    steps: int
    batch: int = 4
    lr: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    warmup_start_lr: float = WARMUP_START_LR
    mixing: float = 0.9
    freeze_layers: tuple[int, ...] = ()
    seed: int = 0
    checkpoint_every: int = 25
    sample_every: int = 0
    n_samples: int = 4
    sample_truncation: float = 0.7

    def __post_init__(self) -> None:
        checks = [(self.steps >= 1, "steps must be >= 1"), (self.batch >= 1, "batch must be >= 1"),
                  (self.lr > 0 and math.isfinite(self.lr), "lr must be a positive number"),
                  (self.warmup_steps >= 0, "warm-up steps must be >= 0"),
                  (0.0 <= self.mixing <= 1.0, "mixing probability must be in [0, 1]"),
                  (self.checkpoint_every >= 0 and self.sample_every >= 0,
                   "checkpoint/sample intervals must be >= 0"),
                  (self.n_samples >= 1, "n_samples must be >= 1")]
        for ok, message in checks:
            if not ok:
                raise StylebridgeError(message)


__all__ = ["WARMUP_START_LR", "TrainSettings"]
