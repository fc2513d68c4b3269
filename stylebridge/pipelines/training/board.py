"""TensorBoard events beside a training log (``--tensorboard``): every number of the
``log.jsonl`` step records as a scalar (``inversion/mse``, ``total``, ``lr``, ...) at its step,
and every sample grid as an image, in ``OUT/tensorboard`` (``tensorboard --logdir OUT``).

The log stays the record; the events mirror it for watching a long run.  A resumed run purges
the events of the steps it repeats (the killed run's steps after its checkpoint), as the log is
trimmed; a new run in the same ``--out`` moves an earlier run's folder aside to
``tensorboard.N``, as the log goes to ``log.N.jsonl`` (TensorBoard shows both, as two runs).
TensorBoard itself is optional (``pip install 'stylebridge[tensorboard]'``)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.training.log import JsonlLog
from stylebridge.pipelines.training.progress import ProgressCallback, emit

#: the events folder in ``--out``
BOARD_DIR = "tensorboard"
#: what a run with ``--tensorboard`` and no TensorBoard installed is told
NO_TENSORBOARD = ("--tensorboard needs the tensorboard package: pip install "
                  "'stylebridge[tensorboard]' (or run without --tensorboard: log.jsonl holds "
                  "the same numbers)")
#: record keys that are no curve: when and what (the step is the x axis)
NOT_SCALARS = frozenset({"time", "step", "epoch", "offset", "event"})


def require_tensorboard() -> None:
    """One line before any work when TensorBoard's writer cannot be imported."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise StylebridgeError(NO_TENSORBOARD) from None


def scalars(record: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """The finite numbers of a log record as ``(tag, value)``, nested keys joined with ``/``
    (``{"losses": {"mse": 0.1}}`` → ``losses/mse``); booleans, texts and the keys of
    :data:`NOT_SCALARS` are left out."""
    for key, value in record.items():
        if not prefix and key in NOT_SCALARS:
            continue
        tag = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from scalars(value, f"{tag}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            yield tag, float(value)


def set_aside(folder: Path) -> Path | None:
    """Rename an earlier run's events folder to ``NAME.N`` (the first free ``N``); ``None``
    when there is none."""
    if not folder.is_dir():
        return None
    n = 1
    while (aside := folder.with_name(f"{folder.name}.{n}")).exists() or aside.is_symlink():
        n += 1
    os.rename(folder, aside)
    return aside


class Board:
    """The events of one run in ``folder``: :meth:`record` for each log record, :meth:`image`
    for each sample grid, :meth:`close` at the end.  ``resume_step``: the step a resumed run
    continues from (its later events are purged); ``None``: a new run."""

    def __init__(self, folder: Path, *, resume_step: int | None) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.moved_aside = None if resume_step is not None else set_aside(self.folder)
        #: a resumed run whose earlier part wrote no events (it ran without --tensorboard):
        #: :meth:`backfill` draws its logged steps first
        self.empty = not any(self.folder.glob("events.out.tfevents.*"))
        self.writer = SummaryWriter(str(self.folder), purge_step=(
            None if resume_step is None or self.empty else resume_step + 1))

    def backfill(self, records: Iterator[Mapping[str, Any]] | list[Mapping[str, Any]]) -> int:
        """The kept records of the run's log (a resume of a run that wrote no events), when
        the folder held none; returns how many records were drawn."""
        if not self.empty:
            return 0
        n = 0
        for record in records:
            if "event" not in record and "step" in record:
                self.record(record)
                n += 1
        self.empty = False
        return n

    def record(self, record: Mapping[str, Any]) -> None:
        """A log record's numbers at its ``step`` (start and end records are not curves)."""
        if "event" in record or "step" not in record:
            return
        step = int(record["step"])
        for tag, value in scalars(record):
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()  # a long run is watched while it runs

    def image(self, tag: str, path: Path, step: int) -> None:
        """A PNG written by the run (a sample grid) at ``step``."""
        import numpy as np
        from PIL import Image

        with Image.open(path) as picture:
            pixels = np.asarray(picture.convert("RGB"))
        self.writer.add_image(tag, pixels, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_board(out: Path, log: JsonlLog, resume_step: int | None,
               progress: ProgressCallback | None) -> Board:
    """The events of a run into ``out`` whose log is ``log``: a resume's repeated steps
    purged, or its logged steps drawn first when it wrote no events before; a new run's
    earlier folder moved aside (said)."""
    board = Board(Path(out) / BOARD_DIR, resume_step=resume_step)
    if board.moved_aside is not None:
        emit(progress, "info", text=f"a new run: the TensorBoard events of an earlier run were "
                                    f"moved aside to {board.moved_aside.name}")
    if resume_step is not None:
        board.backfill(log.records())
    return board


__all__ = ["BOARD_DIR", "NOT_SCALARS", "NO_TENSORBOARD", "Board", "open_board",
           "require_tensorboard", "scalars", "set_aside"]
