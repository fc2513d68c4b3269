"""What a training run returns (both trainers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainResult:
    """What a run ended with: the step reached, the per-step records (``history``), the
    model checkpoint written last (``checkpoint``), the training state, the JSON-lines log
    (``OUT/log.jsonl``, ``DOMAIN.log.jsonl``), the sample grids written in this run (``train
    domain``) and the TensorBoard events folder it wrote (``--tensorboard``)."""

    step: int
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None
    state_path: Path | None = None
    log_path: Path | None = None
    samples: list[Path] = field(default_factory=list)
    events: Path | None = None

    @property
    def model_path(self) -> Path | None:
        """The model checkpoint (``train featureshift``'s ``OUT/model.safetensors``)."""
        return self.checkpoint
