"""Using a trained FeatureShift (``adapt``/``render --featureshift MODEL``): what its file
says about how it may be used.

* :func:`state_file_error`: ``RUN/state.safetensors`` given where ``RUN/model.safetensors``
  belongs (one line naming the model file);
* :func:`generator_notes`: one note line when the model records the sha256 of the generator
  file it was trained on (``generator_sha256``, written by ``train featureshift``) and is used
  with another generator file, as
  :func:`~stylebridge.pipelines.adapter.domain_generator_notes` says it of a domain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stylebridge.core.checkpoint import CheckpointHeader, read_header
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.featureshift.state import STATE_KIND


def state_file_error(path: str | Path) -> StylebridgeError | None:
    """The error for a ``--featureshift`` file that is a run's training state, else ``None``."""
    try:
        kind = read_header(path).kind
    except (StylebridgeError, OSError):
        return None
    if kind != STATE_KIND:
        return None
    return StylebridgeError(
        f"--featureshift {path}: this is the training state of a `train featureshift` run "
        f"(for --resume), not the model: give {Path(path).parent / 'model.safetensors'}, "
        "written beside it")


def generator_notes(path: str | Path, header: CheckpointHeader, generator: Any) -> list[str]:
    """One line when the model's ``generator_sha256`` is not the sha256 of the file
    ``generator`` was loaded from (hashed once per process,
    :func:`~stylebridge.pipelines.adapter.other_generator`); models recording none (trained
    before it was kept), or a generator not loaded from a file: no line."""
    from stylebridge.pipelines.adapter import other_generator

    where = other_generator(header.extra, generator, file_key="generator_file")
    if where is None:
        return []
    return [f"--featureshift {Path(path).name} was trained on generator {where}: its feature "
            "corrections were learnt on that generator's features and may not fit this one"]


__all__ = ["generator_notes", "state_file_error"]
