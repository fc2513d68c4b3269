"""What the training pipelines share (``train domain``, ``train featureshift``).

* :mod:`.losses`: weighted loss terms from ``--loss NAME:WEIGHT[:k=v]`` specs (one rule
  set: ``after=N``, repeated names keyed ``NAME#k``), the build-time check of the
  :class:`~stylebridge.core.interfaces.LossBatch` fields each loss requires;
* :mod:`.guard`: :class:`TrainingDivergedError`, the one NaN/Inf error;
* :mod:`.state`: exact resume (optimiser, RNG and loss state as tensors + JSON), file
  digests;
* :mod:`.log`: the JSON-lines log; :mod:`.progress`: the progress callback;
  :mod:`.result`: :class:`TrainResult`, what both trainers return;
* :mod:`.schedule`: learning-rate schedules and phases; :mod:`.options`: option parsers;
  :mod:`.settings`: the domain trainers' optimisation settings.
"""

from stylebridge.pipelines.training.guard import TrainingDivergedError
from stylebridge.pipelines.training.log import JsonlLog
from stylebridge.pipelines.training.losses import (
    LossTerm,
    build_loss_terms,
    check_requirements,
    evaluate,
    required_fields,
)
from stylebridge.pipelines.training.options import parse_clip_weights
from stylebridge.pipelines.training.progress import ProgressCallback, ProgressEvent
from stylebridge.pipelines.training.result import TrainResult
from stylebridge.pipelines.training.state import file_sha256, json_roundtrip, json_safe

__all__ = [
    "JsonlLog", "LossTerm", "ProgressCallback", "ProgressEvent", "TrainResult",
    "TrainingDivergedError",
    "build_loss_terms", "check_requirements", "evaluate", "file_sha256", "json_roundtrip",
    "json_safe", "parse_clip_weights", "required_fields",
]
