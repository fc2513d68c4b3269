"""The loss log of a domain-training run (``train domain``, ``hyperdomain``, ``mindthegap``):
``DOMAIN.log.jsonl`` beside ``--out``, one record per step (``{"step": N, "total": ...,
"lr": ..., "loss": {"clip_direction": ...}}``, each loss weighted as it enters the total),
between a ``start`` and an ``end`` event; with ``--tensorboard`` the same numbers and the sample
grids as TensorBoard events in ``DOMAIN_tensorboard/`` (``tensorboard --logdir
DOMAIN_tensorboard``).

As ``train featureshift``'s ``log.jsonl`` (:mod:`.log`, :mod:`.board`): a resumed run trims
the log to its checkpoint and repeats the steps after it, so that every step is recorded once,
as the run that reached it computed it; a new run (``--force``, or a run killed before its
first checkpoint) moves an earlier run's log to ``DOMAIN.log.N.jsonl`` and its events to
``DOMAIN_tensorboard.N``, never deleting either."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stylebridge.pipelines.training.board import Board, open_board, set_aside
from stylebridge.pipelines.training.log import JsonlLog
from stylebridge.pipelines.training.progress import ProgressCallback, emit

LOG_SUFFIX = ".log.jsonl"
BOARD_SUFFIX = "_tensorboard"


def log_path_for(out: str | Path) -> Path:
    """``DOMAIN.safetensors`` → ``DOMAIN.log.jsonl``."""
    out = Path(out)
    return out.with_name(out.stem + LOG_SUFFIX) if out.suffix else Path(f"{out}{LOG_SUFFIX}")


def board_dir_for(out: str | Path) -> Path:
    """``DOMAIN.safetensors`` → ``DOMAIN_tensorboard/``."""
    out = Path(out)
    return out.with_name(f"{out.stem}{BOARD_SUFFIX}")


def remove_run_records(out: str | Path) -> None:
    """Remove what a domain run keeps beside ``out`` for a resume and for reading its
    curves (the training state, the loss log), where nothing will: a domain trained inside
    another command (``reproduce``'s recipes, the web app) leaves its folder holding domains
    only."""
    import re

    from stylebridge.pipelines.training.outputs import state_path_for

    state_path_for(out).unlink(missing_ok=True)
    log = log_path_for(out)
    log.unlink(missing_ok=True)
    # and the logs an earlier run's log was moved aside to (a run interrupted, then started
    # again: DOMAIN.log.1.jsonl)
    aside = re.compile(re.escape(log.name.removesuffix(".jsonl")) + r"\.\d+\.jsonl")
    for path in log.parent.glob("*.jsonl") if log.parent.is_dir() else ():
        if aside.fullmatch(path.name):
            path.unlink(missing_ok=True)


class RunLog:
    """The log (always) and the TensorBoard events (with ``tensorboard``) of a run into
    ``out`` whose sample grids go to ``samples``."""

    def __init__(self, out: str | Path, samples: Path, *, tensorboard: bool = False) -> None:
        self.log = JsonlLog(log_path_for(out))
        self.folder = board_dir_for(out)
        self.samples = samples
        self.tensorboard = tensorboard
        self.board: Board | None = None

    @property
    def path(self) -> Path:
        return self.log.path

    @property
    def events(self) -> Path | None:
        """The events folder while this run writes it (``None`` without ``tensorboard``)."""
        return self.folder if self.board is not None else None

    def begin(self, resume_step: int | None, progress: ProgressCallback | None) -> None:
        """Before the first step: a new run (``resume_step`` ``None``) moves an earlier run's
        log and events aside; a resumed one trims its log to ``resume_step``.  Then, with
        ``tensorboard``, the events (a resumed run's drawn again from its log and grids)."""
        if resume_step is None:
            for aside, what in ((self.log.set_aside(), "loss log"),
                                (set_aside(self.folder), "TensorBoard events")):
                if aside is not None:
                    verb = "were" if what.endswith("s") else "was"
                    emit(progress, "info", text=f"a new run: the {what} of an earlier run "
                                                f"{verb} moved aside to {aside.name}")
        else:
            self.log.trim(resume_step)
        if self.tensorboard:
            self.board = open_board(self.folder, self.log, resume_step, progress,
                                    samples=self.samples)

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write one record (and draw its numbers); returns it as written."""
        written = self.log.append(dict(record))
        if self.board is not None:
            self.board.record(written)
        return written

    def image(self, path: Path, step: int) -> None:
        """A sample grid the run wrote, as an event (with ``tensorboard``)."""
        if self.board is not None:
            self.board.image("samples", path, step)

    def close(self) -> None:
        if self.board is not None:
            board, self.board = self.board, None
            board.close()


__all__ = ["BOARD_SUFFIX", "LOG_SUFFIX", "RunLog", "board_dir_for", "log_path_for",
           "remove_run_records"]
