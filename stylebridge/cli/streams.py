"""The command line's standard streams and stop signals while a command runs: output that the
locale cannot encode escaped instead of raising, a closed pipe's last flush silenced, SIGTERM
and SIGHUP stopping a batch as Ctrl-C does (:func:`stylebridge.cli.main.main` uses them)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterator
from typing import Any


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of what was left for
    a closed pipe does not print an "Exception ignored" paragraph."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


#: error handlers that never raise: a stream with one of these is left as it is
_CANNOT_FAIL = {"backslashreplace", "replace", "ignore", "xmlcharrefreplace", "namereplace"}
#: surrogateescape's bytes for what it can write, backslashreplace for the rest
_ESCAPE_BOTH = "stylebridge.surrogateescape_or_backslashreplace"


def _surrogateescape_or_backslashreplace(exc: UnicodeError) -> tuple[str | bytes, int]:
    """A file name's undecodable bytes (``\\udc80``-``\\udcff``) written back as those bytes, as
    ``surrogateescape`` does; any other character the encoding lacks (``↓`` in the C locale's
    ASCII) as ``\\u2193``, as ``backslashreplace`` does (one character a call)."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    char = exc.object[exc.start]
    if 0xDC80 <= ord(char) <= 0xDCFF:
        return bytes([ord(char) - 0xDC00]), exc.start + 1
    return char.encode("ascii", "backslashreplace").decode("ascii"), exc.start + 1


@contextlib.contextmanager
def printable_names() -> Iterator[None]:
    """Text a stream's encoding cannot encode (a file name in bytes that are not UTF-8, a
    surrogate in Python's ``str``, on a strict UTF-8 terminal; ``↓`` or ``²`` in the C locale's
    ASCII) raised ``UnicodeEncodeError``, after the work was done: while a command runs,
    stdout and stderr escape it (``\\udcff``, ``\\u2193``), whatever their error handler, but
    those that never fail.  A ``surrogateescape`` stream keeps writing a file name's own bytes."""
    import codecs

    try:
        codecs.lookup_error(_ESCAPE_BOTH)
    except LookupError:
        codecs.register_error(_ESCAPE_BOTH, _surrogateescape_or_backslashreplace)
    changed = []
    for stream in (sys.stdout, sys.stderr):
        if not isinstance(stream, io.TextIOWrapper) or stream.errors in _CANNOT_FAIL:
            continue
        with contextlib.suppress(ValueError):  # closed
            before = stream.errors
            stream.reconfigure(errors=_ESCAPE_BOTH if before == "surrogateescape"
                               else "backslashreplace")
            changed.append((stream, before))
    try:
        yield
    finally:
        for stream, before in changed:
            with contextlib.suppress(ValueError):  # closed meanwhile
                stream.reconfigure(errors=before)


#: the commands that SIGTERM (``kill``, a batch scheduler) and SIGHUP (a closed terminal or
#: ssh session) stop as Ctrl-C does: the batches, whose work so far is kept and whose
#: ``--resume`` hint is then printed (``train`` saves on its own signals, ``serve`` stops on
#: its own)
STOP_ON_SIGNALS = frozenset({"adapt", "align", "analyze", "calibrate", "eval", "featureshift",
                             "generate", "invert", "render", "reproduce", "demo"})


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread as Ctrl-C's ``KeyboardInterrupt`` is: every
    handler of an interruption (the resume hints, the removal of temporary files) runs."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)


@contextlib.contextmanager
def signals_stop(active: bool) -> Iterator[None]:
    """While the body runs (``active``, on the main thread), SIGTERM and SIGHUP (where the
    platform has it) raise :class:`Stopped`; the previous handlers come back after.  A
    signal that was ignored when the command started (``nohup``: SIGHUP) stays ignored."""
    import signal
    import threading

    previous: dict[int, Any] = {}
    if active and threading.current_thread() is threading.main_thread():
        def stop(signum: int, frame: Any) -> None:
            raise Stopped(signum)

        for name in ("SIGTERM", "SIGHUP"):
            sig = getattr(signal, name, None)
            if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


# -- distributed launches: which process says what ---------------------------------------


def launch() -> tuple[int, int]:
    """``(rank, world size)`` of a torchrun launch (``RANK``, ``WORLD_SIZE``); (0, 1) alone."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 0, 1
    return (rank, world) if world > 1 else (0, 1)


def error_line(message: str, *, every_rank: bool = True) -> None:
    """The error line; ``rank N: `` first on a distributed launch's processes but rank 0.
    ``every_rank=False``: an error every process finds alike (a usage error), said by rank 0
    only."""
    from stylebridge.errors import printable

    rank = launch()[0]
    if rank and not every_rank:
        return
    # a file name's control characters escaped: an ESC in a name cannot drive the terminal
    print(f"error: {f'rank {rank}: ' if rank else ''}{printable(message)}", file=sys.stderr)


#: a collective whose peer process went away: gloo's "[.../pair.cc:561] Connection closed by peer"
_PEER_GONE = re.compile(r"gloo/transport/\S*\].*Connection (?:closed|reset) by peer|"
                        r"NCCL.*remote process exited", re.S)


def peer_stopped(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that failed as another process of the run stopped."""
    dist = sys.modules.get("torch.distributed")
    return launch()[1] > 1 and isinstance(exc, RuntimeError) and (
        (dist is not None and isinstance(exc, dist.DistBackendError))
        or _PEER_GONE.search(str(exc)) is not None)


__all__ = ["STOP_ON_SIGNALS", "Stopped", "error_line", "launch", "peer_stopped",
           "printable_names", "signals_stop", "silence_stdout"]
