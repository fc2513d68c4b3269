"""Error types that stylebridge raises for bad input.

Every error here carries a single-line message that names the file or value at
fault; the CLI prints it as ``error: <message>`` and exits non-zero without a
traceback.  Anything else escaping from stylebridge is a bug.

The warnings here (:class:`StylebridgeWarning`) are what a Python user sees on screen where the
command line prints a line of its own (random weights, skipped inputs): the public entry points
(:func:`user_entry`) warn once per call of the user's, at the user's line (:func:`warn_user`).
"""

from __future__ import annotations

import contextvars
import functools
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

#: the longest error message shown (characters); longer ones keep their start and end
MAX_MESSAGE = 600
#: IPython / Jupyter show a :class:`StylebridgeError` as the user's own frames and its one
#: line, without the frames inside stylebridge (they say nothing the message does not);
#: ``False``: every frame, as plain Python prints it
SHORT_TRACEBACKS = True


class StylebridgeError(Exception):
    """Base class: a user-facing problem with a one-line explanation."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        text = " ".join(str(message).split())  # always one line
        if len(text) > MAX_MESSAGE:  # an 8 KB line helps nobody: keep both ends
            cut = len(text) - MAX_MESSAGE
            text = f"{text[:MAX_MESSAGE * 2 // 3]} [... {cut} characters cut ...] " \
                   f"{text[-MAX_MESSAGE // 3:]}"
        #: the message without the path (to say it again with more context)
        self.message = text
        super().__init__(f"{self.path}: {text}" if self.path is not None else text)

    def _render_traceback_(self) -> list[str]:
        """IPython's hook: the traceback a notebook shows (:data:`SHORT_TRACEBACKS`): the
        user's frames and the one line, after the exceptions it was raised from (``raise
        ... from err``, or while handling one) in which the user's code took part."""
        import traceback

        if not SHORT_TRACEBACKS:
            return "".join(traceback.format_exception(self)).rstrip("\n").split("\n")
        shell = sys.modules.get("IPython")  # its own frame (run_code) is not the user's
        skip = (_PACKAGE, *([os.path.dirname(shell.__file__) + os.sep]
                            if shell is not None and shell.__file__ else []))
        lines: list[str] = []
        hidden = 0
        for exc, link in reversed(_chain(self)):
            every = traceback.extract_tb(exc.__traceback__)
            frames = [f for f in every if not f.filename.startswith(skip)]
            if exc is not self and every and not frames:
                continue  # raised and handled inside stylebridge: the message says it
            hidden += sum(f.filename.startswith(_PACKAGE) for f in every)
            if frames:
                lines += ["Traceback (most recent call last):",
                          *"".join(traceback.format_list(frames)).rstrip("\n").split("\n")]
            if isinstance(exc, StylebridgeError):  # its own name: the message says the rest
                lines += [f"{type(exc).__name__}: {exc}", *map(str, exc.__dict__.get(
                    "__notes__", ()))]
            else:
                lines += "".join(traceback.format_exception_only(exc)).rstrip("\n").split("\n")
            if link:
                lines += ["", link, ""]
        return lines + ([f"({hidden} frame(s) inside stylebridge not shown; "
                         "stylebridge.errors.SHORT_TRACEBACKS = False shows them)"]
                        if hidden else [])


def _chain(error: BaseException) -> list[tuple[BaseException, str]]:
    """``error`` and the exceptions it was raised from, newest first, each with the line
    Python prints between it and the one after it (``""`` for ``error``)."""
    chain: list[tuple[BaseException, str]] = []
    exc: BaseException | None = error
    link = ""
    while exc is not None and all(exc is not seen for seen, _ in chain):
        chain.append((exc, link))
        if exc.__cause__ is not None:
            exc, link = exc.__cause__, ("The above exception was the direct cause of the "
                                        "following exception:")
        elif exc.__context__ is not None and not exc.__suppress_context__:
            exc, link = exc.__context__, ("During handling of the above exception, another "
                                          "exception occurred:")
        else:
            exc = None
    return chain


class RegistryError(StylebridgeError):
    """Unknown plugin name, duplicate registration, broken plugin package."""


class SpecError(StylebridgeError):
    """A malformed ``name:path`` / ``name:weight`` specification."""


class CheckpointError(StylebridgeError):
    """A checkpoint that is missing, unreadable, or of the wrong kind/config/shape."""


class ConversionError(CheckpointError):
    """A third-party checkpoint that cannot be converted."""


class UnsafePickleError(ConversionError):
    """A pickle that references code outside the allow-list (it is never executed)."""


class ImageError(StylebridgeError):
    """An image file that cannot be read or used."""


class OptionError(StylebridgeError, ValueError):
    """An option value outside its allowed set, from Python (a ``ValueError`` too, as the
    call raised before)."""


class InputTypeError(StylebridgeError, TypeError):
    """A value of the wrong type from Python (a config field, a picture given as a path or a
    path as a picture): one line naming the field and the type expected (a ``TypeError``
    too, as the call raised before)."""


class InputValueError(StylebridgeError, ValueError):
    """A value of the right type but the wrong shape or content from Python (a picture of
    an unknown layout, an empty array): one line (a ``ValueError`` too, as it raised before)."""


class LossInputError(StylebridgeError, ValueError):
    """A loss that needs a batch field the trainer does not fill."""


# ---------------------------------------------------------------------------------------------
# Warnings for Python users (the command line prints the same as lines of its own)


class StylebridgeWarning(UserWarning):
    """What a Python user should see on screen (the command line prints it as a line of its
    own and ignores these warnings: :func:`stylebridge.cli.options.quiet_api_warnings`)."""


class RandomWeightsWarning(StylebridgeWarning):
    """Something runs on untrained (random) weights: its message starts with ``RANDOM
    WEIGHTS`` (:data:`stylebridge.core.checkpoint.RANDOM_NOTICE`) and names what."""


class SkippedInputsWarning(StylebridgeWarning):
    """A batch run skipped inputs (unreadable files, photos without a face): the first few,
    and why; the result's ``report.skipped`` lists them all."""


#: whether the public entry point running now was called by the user's code (not by
#: stylebridge itself: ``adapt()`` building an :class:`Adapter`, the command line)
_USER_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("stylebridge_user_call",
                                                                  default=False)
_PACKAGE = os.path.dirname(__file__) + os.sep

_F = TypeVar("_F", bound=Callable[..., Any])


def _ours(frame: FrameType) -> bool:
    return frame.f_code.co_filename.startswith(_PACKAGE)


def user_entry(func: _F) -> _F:
    """A public entry point (``stylebridge.create``, ``adapt``, ``Adapter(...)``): while it
    runs, :func:`warn_user` warns only when it was called from outside stylebridge, so that
    one user call gives one warning (``adapt()`` building an ``Adapter`` says nothing twice;
    the command line's calls say nothing: it prints its own lines)."""

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        token = _USER_CALL.set(not _ours(sys._getframe(1)))
        try:
            return func(*args, **kwargs)
        finally:
            _USER_CALL.reset(token)

    return call  # type: ignore[return-value]


#: C0 and C1 control characters and DEL: an ESC in a file name printed raw drives the
#: terminal (clears it, retitles it), a newline breaks a one-line message or a grid label
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\n``, ``\\x1b``): one line
    that a terminal shows as it is, and Pillow can measure and draw."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), str(text))


def user_stacklevel(skip: int = 0) -> int:
    """The ``stacklevel`` that makes a warning issued by the caller of this function (``skip``
    frames further up) point at the first line outside stylebridge: the user's."""
    frame: FrameType | None = sys._getframe(2 + skip)
    level = 2 + skip
    while frame is not None and _ours(frame):
        frame, level = frame.f_back, level + 1
    return level


def warn_user(message: str, category: type[Warning] = StylebridgeWarning) -> None:
    """``warnings.warn(message, category)`` at the user's line (the first caller outside
    stylebridge), when the running :func:`user_entry` was called by the user; else nothing."""
    if not _USER_CALL.get():
        return
    warnings.warn(" ".join(str(message).split()), category, stacklevel=user_stacklevel())
