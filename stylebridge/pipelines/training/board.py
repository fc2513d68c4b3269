"""TensorBoard events beside a training log (``--tensorboard``): every number of the
``log.jsonl`` step records as a scalar at its step (``inversion/mse``; the run-wide ones under
``run/``: ``run/total``, ``run/lr``, ...) and every sample grid as an image, in
``OUT/tensorboard`` (``tensorboard --logdir OUT``).

The log and the sample grids stay the record; the events mirror them for watching a long run.
A resumed run draws its events again from them (the log is trimmed to the checkpoint, the
grids after it are drawn again): whatever earlier parts wrote, with or without the flag,
the curves are the log's, once per step.  A new run in the same ``--out`` moves an earlier
run's events aside to ``tensorboard.N`` as it moves the log to ``log.N.jsonl`` (with or without
the flag; TensorBoard shows both, as two runs).  TensorBoard itself is optional
(``pip install 'stylebridge[tensorboard]'``)."""

from __future__ import annotations

import math
import os
import re
import shutil
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.training.log import JsonlLog
from stylebridge.pipelines.training.progress import ProgressCallback, emit

#: the events folder in ``--out``
BOARD_DIR = "tensorboard"
#: what a run with ``--tensorboard`` and no TensorBoard installed is told
NO_TENSORBOARD = ("--tensorboard needs the tensorboard package: pip install "
                  "'stylebridge[tensorboard]' (or run without --tensorboard: the run's "
                  "log.jsonl holds the same numbers)")
#: record keys that are no curve: when and what (the step is the x axis)
NOT_SCALARS = frozenset({"time", "step", "offset", "event"})
#: the section of the numbers a record holds at its top level (``total``, ``lr``, ...)
RUN_SECTION = "run"
#: a sample grid's step, from its file name (``samples/step_0001000.png``)
SAMPLE_NAME = re.compile(r"step_?(\d+)\.png")


def require_tensorboard() -> None:
    """One line before any work when TensorBoard's writer cannot be imported."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise StylebridgeError(NO_TENSORBOARD) from None


def scalars(record: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """The numbers of a log record as ``(tag, value)``: nested keys joined with ``/``
    (``{"inversion": {"mse": 0.1}}`` → ``inversion/mse``), top-level ones under
    :data:`RUN_SECTION` (``run/total``); infinities kept (an fp16 step's ``grad_norm``),
    NaN, booleans, texts and the keys of :data:`NOT_SCALARS` left out."""
    for key, value in record.items():
        if not prefix and key in NOT_SCALARS:
            continue
        if isinstance(value, Mapping):
            yield from scalars(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                and not math.isnan(value):
            yield (f"{prefix}{key}" if prefix or "/" in key else f"{RUN_SECTION}/{key}",
                   float(value))


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


def sample_grids(folder: Path, up_to: int) -> list[tuple[int, Path]]:
    """The sample grids in ``folder`` up to step ``up_to``, by step."""
    found = []
    for path in folder.glob("*.png") if folder.is_dir() else ():
        match = SAMPLE_NAME.fullmatch(path.name)
        if match is not None and int(match.group(1)) <= up_to:
            found.append((int(match.group(1)), path))
    return sorted(found)


class Board:
    """The events of one run in ``folder``: :meth:`record` for each log record, :meth:`image`
    for each sample grid, :meth:`close` at the end."""

    def __init__(self, folder: Path) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.writer = SummaryWriter(str(self.folder))
        # the writer's thread prints the traceback of a write that fails (a full disk)
        # before the run's own one-line error: the run says it, the thread does not
        self._hook = threading.excepthook
        threading.excepthook = self._quiet_writer_errors

    def _quiet_writer_errors(self, args: Any) -> None:
        if isinstance(args.exc_value, OSError) and \
                type(args.thread).__module__.startswith("tensorboard"):
            return
        self._hook(args)

    def record(self, record: Mapping[str, Any], *, flush: bool = True) -> None:
        """A log record's numbers at its ``step`` (start and end records are not curves)."""
        if "event" in record or "step" not in record:
            return
        step = int(record["step"])
        for tag, value in scalars(record):
            self.writer.add_scalar(tag, value, step)
        if flush:
            self.writer.flush()  # a long run is watched while it runs

    def image(self, tag: str, path: Path, step: int, *, flush: bool = True) -> None:
        """A PNG written by the run (a sample grid) at ``step``."""
        import numpy as np
        from PIL import Image

        with Image.open(path) as picture:
            pixels = np.asarray(picture.convert("RGB"))
        self.writer.add_image(tag, pixels, step, dataformats="HWC")
        if flush:
            self.writer.flush()

    def draw(self, records: Iterable[Mapping[str, Any]],
             grids: Iterable[tuple[int, Path]]) -> None:
        """What a resumed run kept: its log's records and sample grids."""
        for record in records:
            self.record(record, flush=False)
        for step, path in grids:
            self.image("samples", path, step, flush=False)
        self.writer.flush()

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            threading.excepthook = self._hook


def open_board(folder: Path, log: JsonlLog, resume_step: int | None,
               progress: ProgressCallback | None, *, samples: Path | None = None) -> Board:
    """The events of a run whose log is ``log``, in ``folder`` (``OUT/tensorboard``,
    ``DOMAIN_tensorboard``).  A new run's: a fresh folder (an earlier run's was moved aside
    with its log: :func:`set_aside`).  A resumed run's: drawn again from its log and its
    sample grids in ``samples`` up to ``resume_step``, so that the curves are the log's
    whatever the earlier parts wrote."""
    folder = Path(folder)
    if resume_step is None:
        return Board(folder)
    if folder.exists() and not folder.is_dir():
        raise StylebridgeError("is not a folder: TensorBoard events go there", path=folder)
    stale = folder.with_name(f".{folder.name}.replaced")
    shutil.rmtree(stale, ignore_errors=True)  # a resume killed while it drew them
    if folder.is_dir():
        os.rename(folder, stale)
    board = Board(folder)
    board.draw(log.records(), sample_grids(samples, resume_step) if samples else [])
    shutil.rmtree(stale, ignore_errors=True)
    emit(progress, "info", text=f"TensorBoard events drawn again from {log.path.name} up to "
                                f"step {resume_step}")
    return board


__all__ = ["BOARD_DIR", "NOT_SCALARS", "NO_TENSORBOARD", "RUN_SECTION", "Board", "open_board",
           "require_tensorboard", "sample_grids", "scalars", "set_aside"]
