"""Progress reporting of the training pipelines: a plain callback, no console.

A pipeline calls ``progress(event)`` with a :class:`ProgressEvent`; the CLI turns the
events into a rich progress bar and printed notes.  ``None`` = report nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

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
