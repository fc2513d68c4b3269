"""Ctrl-C (SIGINT), SIGTERM or SIGHUP during training: finish the step, save, stop.

Without this an interrupt lands anywhere in a step (between the optimiser update and the step
counter, say) and everything since the last ``--checkpoint-every`` save is lost.  Inside
:class:`StopRequests` the first signal only sets :attr:`StopRequests.signal`; the loop checks it
after each whole step, saves the state (the same exact-resume state a scheduled checkpoint
writes) and raises :class:`TrainingInterrupted`, whose one line says how to continue.  A second
signal stops at once, as a plain Ctrl-C does (nothing is saved then; under a launcher, see
below).  Off the main thread (signals cannot be caught there) it does nothing and an
interrupt behaves as before.

SIGHUP is what a dropped ssh session (or a closed terminal) sends: it killed the run with
nothing saved since the last ``--checkpoint-every``.  It is a stop request as SIGTERM is,
where the platform has it (not on Windows); a run started under ``nohup`` (SIGHUP ignored)
keeps ignoring it and trains on.

Under DDP the processes must stop after the same step: a signal that reaches one rank a
step before another would leave the other waiting in the next step's all-reduce for ever.
The trainer passes ``agree`` (an all-reduce, MAX, of the signal number, 0 for none), so every
rank stops after the step in which any of them was signalled, and names that signal.

Under a launcher (``StopRequests(distributed=True)``, the DDP trainer) a signal often comes
twice: one sent to torchrun and its workers together (Ctrl-C in a terminal signals the whole
process group; ``timeout``, ``scancel`` and systemd do the same) reaches each worker directly,
and torchrun forwards one more within milliseconds.  A repeat within :data:`REPEAT_WINDOW_S`
of the first is that same request; a later one stops at once, as in a single process.
torchrun waits about 30 s after forwarding (``TORCH_ELASTIC_SHUTDOWN_TIMEOUT``) before it
sends SIGKILL: the step in progress and the save must end within that time.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from stylebridge.errors import StylebridgeError

#: the signals that ask for a save and a stop (SIGHUP where the platform has it)
_SIGNALS = tuple(sig for sig in (getattr(signal, name, None) for name in
                                 ("SIGINT", "SIGTERM", "SIGHUP")) if sig is not None)
#: stop requests only while they are not ignored when training starts (``nohup``)
_UNLESS_IGNORED = tuple(sig for sig in (getattr(signal, "SIGHUP", None),) if sig is not None)
#: under a launcher, a repeat of the stop signal less than this many seconds after the first is
#: the same request (torchrun's forwarded copy of a signal that reached the whole process
#: group comes milliseconds after it); far above that delay, and short enough that a second
#: Ctrl-C typed after it still stops at once
REPEAT_WINDOW_S = 2.0


class TrainingInterrupted(StylebridgeError):
    """Training stopped on a signal after saving its state; exit code 128 + the signal's
    number, as a shell reports a process the signal stopped (130 after Ctrl-C, 143 after
    SIGTERM, 129 after SIGHUP)."""

    exit_code = 130

    def __init__(self, step: int, state: Path, signum: int) -> None:
        self.step, self.state = step, Path(state)
        self.exit_code = 128 + int(signum)
        name = signal.Signals(signum).name
        super().__init__(f"interrupted ({name}) after step {step}; the state is saved in "
                         f"{state}: rerun the same command with --resume to continue exactly "
                         "from there")


class StopRequests:
    """Context manager: catch the first SIGINT/SIGTERM/SIGHUP as a request to stop after the
    step (a SIGHUP ignored when it starts, under ``nohup``, stays ignored).

    ``distributed``: the process is one of a launcher's (torchrun): a repeat within
    :data:`REPEAT_WINDOW_S` of the first signal is the same request (the launcher's forwarded
    copy); otherwise, and later, a repeat stops at once, unsaved."""

    def __init__(self, *, distributed: bool = False) -> None:
        self.signal: int | None = None
        self._window = REPEAT_WINDOW_S if distributed else 0.0
        self._first_at = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                previous = signal.getsignal(sig)
                if sig in _UNLESS_IGNORED and previous is signal.SIG_IGN:
                    continue
                self._previous[sig] = previous
                signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.signal is None:
            self.signal, self._first_at = signum, now
            return
        if now - self._first_at < self._window:  # the launcher's copy of the same request
            return
        self._restore()  # a second Ctrl-C: stop now, as without this handler
        raise KeyboardInterrupt

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def stop_if_requested(self, step: int, state: Path, save: Any, *,
                          agree: Callable[[int], int] | None = None) -> None:
        """After a whole step: when a signal came, ``save()`` and raise
        :class:`TrainingInterrupted`.  ``agree(signum)`` (DDP; every process calls it after
        every step, with 0 when it had no signal): the signal one of the processes of the
        run had (the largest number), 0 when none had one."""
        signum = self.signal or 0
        if agree is not None:
            signum = agree(signum)
        if not signum:
            return
        save()
        raise TrainingInterrupted(step, state, signum)


__all__ = ["REPEAT_WINDOW_S", "StopRequests", "TrainingInterrupted"]
