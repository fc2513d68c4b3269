"""Progress reporting of the training pipelines: a plain callback, no console.

A pipeline calls ``progress(event)`` with a :class:`ProgressEvent`; the CLI turns the
events into a rich progress bar and printed notes.  ``None`` = report nothing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from stylebridge.errors import StylebridgeError

EventKind = Literal["start", "step", "end", "info", "note", "notice", "status"]


@dataclass(frozen=True)
class ProgressEvent:
    """``start`` (``step`` done of ``total``, ``text`` = label), ``step`` (after a step;
    ``text`` = a short loss summary), ``end``; ``info`` (a plain line), ``note`` (a remark), ``notice`` (a warning
    such as RANDOM CLIP WEIGHTS: ``text`` = the notice, ``detail`` = the rest of the line),
    ``status`` (a slow phase begins; ``text`` = what, empty = it ended)."""

    kind: EventKind
    step: int = 0
    total: int = 0
    text: str = ""
    detail: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def emit(progress: ProgressCallback | None, kind: EventKind, **fields: object) -> None:
    if progress is not None:
        progress(ProgressEvent(kind, **fields))  # type: ignore[arg-type]


#: why a ``progress=`` of the other pipelines' shape is refused by the training pipelines
PROGRESS_SHAPE = ("progress= is called with one ProgressEvent (kind, step, total, text); "
                  "adapt/invert's progress(done, total, text) shape does not fit here")


#: why a one-event callback is refused by adapt/invert/generate (``progress(done, total, text)``)
PHOTO_PROGRESS_SHAPE = ("progress= is called as progress(done, total, text); the training "
                        "pipelines' progress(event) shape does not fit here")


def check_progress(progress: object, where: str, *, n_args: int = 1,
                   shape: str = PROGRESS_SHAPE) -> None:
    """Refuse, before anything is loaded, a ``progress`` that is not ``None`` or a callable
    taking ``n_args`` positional arguments: one :class:`ProgressEvent` for the trainers (the
    default), ``(done, total, text)`` for adapt/invert/generate (``n_args=3``,
    :data:`PHOTO_PROGRESS_SHAPE`); the other shape failed mid-run with a raw TypeError.  A
    callable whose signature cannot be read passes."""
    if progress is None:
        return
    if not callable(progress):
        what = "a ProgressEvent" if n_args == 1 else "(done, total, text)"
        raise StylebridgeError(f"{where}: progress must be a callable that takes {what}, or "
                               f"None; got {type(progress).__name__}")
    try:
        signature = inspect.signature(progress)
    except (TypeError, ValueError):  # a builtin or extension without a signature
        return
    try:
        signature.bind(*[None] * n_args)
    except TypeError:
        raise StylebridgeError(f"{where}: {shape}") from None
