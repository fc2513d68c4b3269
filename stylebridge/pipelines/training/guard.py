"""The guards shared by the trainers: the NaN/Inf error, and the refusal of a trainer that
runs in one process only when a launcher started several (torchrun)."""

from __future__ import annotations

import math
import os

from stylebridge.errors import StylebridgeError


class TrainingDivergedError(StylebridgeError):
    """The loss, the gradients or the weights became NaN/Inf; the last good checkpoint is
    kept (the message says where)."""


def non_finite_word(value: float | None) -> str:
    """``infinite`` for ±Inf, else ``NaN`` (for messages)."""
    return "infinite" if value is not None and math.isinf(value) else "NaN"


def launched_world_size() -> int:
    """The number of processes a launcher started for this run (``WORLD_SIZE``, which
    torchrun sets); 1 without one, or with a value that is no number."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def refuse_several_processes(what: str) -> None:
    """Refuse to start ``what`` (a trainer that runs in one process, such as ``train_domain``)
    as one of several processes of a launch: each would train the same run into the same
    output.  One process under torchrun (``WORLD_SIZE=1``) is fine."""
    world = launched_world_size()
    if world > 1:
        raise StylebridgeError(f"{what} runs in one process: start it without torchrun "
                               f"(WORLD_SIZE={world})")
