"""Holding a run's output against a second writer (:mod:`stylebridge.core.locks`), and
letting go of it when a pipeline call fails (:func:`releases_outputs`)."""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from stylebridge.core.locks import LockHeld, OutputLock, hold
from stylebridge.errors import StylebridgeError

_F = TypeVar("_F", bound=Callable[..., Any])


def held(out: Path, command: str) -> AbstractContextManager[object]:
    """:func:`hold_out` as a ``with`` block (the trainers hold their ``--out`` while they
    train)."""
    return hold_out(out, command) or contextlib.nullcontext()


#: the output holds taken during the current :func:`releases_outputs` call
_TAKEN: contextvars.ContextVar[list[OutputLock] | None] = contextvars.ContextVar(
    "stylebridge_output_holds", default=None)


def releases_outputs(func: _F) -> _F:
    """A pipeline's entry point: an exception leaving it (a Ctrl-C in a notebook, an error)
    releases the output holds taken during the call (:func:`hold_out`); the journal stays
    for ``resume``.  Without this a notebook kept the hold as long as it kept the traceback,
    and every other process was refused that folder until the kernel restarted.  A call
    nested in another keeps its holds for the outer one when it returns."""

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        outer, taken = _TAKEN.get(), []
        token = _TAKEN.set(taken)
        try:
            result = func(*args, **kwargs)
        except BaseException:
            for lock in taken:
                lock.release()
            raise
        finally:
            _TAKEN.reset(token)
        if outer is not None:
            outer.extend(taken)
        return result

    return call  # type: ignore[return-value]


def hold_out(out: Path, command: str, name: str = "") -> OutputLock | None:
    """Hold ``out`` for this run (:mod:`stylebridge.core.locks`): two runs into one folder at
    once removed each other's journal; the second one is one line instead.  Inside a
    :func:`releases_outputs` call the hold is released if the call fails."""
    try:
        lock = hold(out, command, name)
    except LockHeld as exc:
        out = Path(out) / name if name else out  # eval --json F, calibrate --out F: the file
        raise StylebridgeError(f"{out} is being written by another running stylebridge command "
                               f"({exc.holder or 'starting'}); wait for it to finish, or write "
                               "elsewhere") from None
    taken = _TAKEN.get()
    if taken is not None and lock is not None:
        taken.append(lock)
    return lock


__all__ = ["held", "hold_out", "releases_outputs"]
