"""How ``stylebridge serve`` stops (Ctrl+C, or SIGTERM/SIGHUP through the command line).

Gradio's own wait closed the server at once on the interrupt while a training went on in its
worker thread; the process then exited under it (``terminate called without an active
exception``, exit 134) and a request still queued ran after the stop, on deleted files.
:func:`serve_until_stopped` instead, on the interrupt: sets the back end's stop flag (a queued
request is answered "the server is stopping" and not run; a training stops after its
current step, :meth:`~.backend.ServeBackend.stop_check`), waits for the running request and
the queue to end so each page gets its answer, then closes the server.  A second interrupt
while it waits stops at once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

#: how long a stop waits for the running request and the queued ones (seconds)
STOP_WAIT_S = 60.0
#: after the queue is empty: time for the last answers to reach the pages (seconds)
FLUSH_S = 1.0


def queue_idle(app: Any) -> bool:
    """Whether Gradio's queue holds no waiting and no running event."""
    queue = getattr(app, "_queue", None)
    if queue is None:
        return True
    try:
        return len(queue) == 0 and all(job is None for job in queue.active_jobs)
    except (AttributeError, TypeError):  # another Gradio's queue: assume it is idle
        return True


def drain(app: Any, backend: Any, timeout: float = STOP_WAIT_S) -> bool:
    """Refuse new work, then wait up to ``timeout`` s for the running and queued requests to
    end (a training stops after its step); whether they did."""
    backend.stopping.set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if queue_idle(app) and backend.lock.acquire(timeout=0.2):
            backend.lock.release()
            if queue_idle(app):
                time.sleep(FLUSH_S)  # the last answers reach their pages
                return True
        time.sleep(0.1)
    return False


def serve_until_stopped(app: Any, backend: Any, cleanup: Callable[[], None],
                        timeout: float = STOP_WAIT_S) -> None:
    """Block until Ctrl+C (KeyboardInterrupt), then stop as the module says and clean up."""
    try:
        try:
            while app.is_running:
                time.sleep(0.1)
        except KeyboardInterrupt:
            print("stopping: queued requests are refused; waiting for the running one ...",
                  file=sys.stderr, flush=True)
            if not drain(app, backend, timeout):
                print(f"stopping: a request still ran after {timeout:.0f} s",
                      file=sys.stderr, flush=True)
    finally:  # a second interrupt while waiting: stop at once
        app.close(verbose=False)
        cleanup()


__all__ = ["FLUSH_S", "STOP_WAIT_S", "drain", "queue_idle", "serve_until_stopped"]
