"""The ``stylebridge`` command line (:mod:`stylebridge.cli.main`).

This package's own module stays cheap to import: :func:`run`, the console script's entry
point (``python -m stylebridge`` too), imports the command line, which imports torch (seconds),
inside its handling of Ctrl-C, so that a Ctrl-C at any moment prints ``error: interrupted``
(exit code 130), never a traceback."""

from __future__ import annotations

INTERRUPTED = 130  # the exit code of a run stopped by Ctrl-C (128 + SIGINT)


def run() -> int:
    """Run ``stylebridge`` with ``sys.argv``: :func:`stylebridge.cli.main.main`, imported
    here; a Ctrl-C while it is imported (or at any moment ``main`` does not handle) is the
    one line ``error: interrupted`` and exit code 130; SIGTERM and SIGHUP stop a batch
    command the same way from the start (``error: interrupted (SIGTERM)``, 143 and 129), not
    only once the command line is imported."""
    import sys

    from stylebridge.cli.streams import STOP_ON_SIGNALS, Stopped, signals_stop

    word = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    try:
        with signals_stop(word in STOP_ON_SIGNALS):
            from stylebridge.cli.main import main

            code = main()
    except Stopped as exc:
        print(f"error: interrupted ({exc.name})", file=sys.stderr)
        code = 128 + exc.signum
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = INTERRUPTED
    # a process of a torchrun launch ends without the interpreter's teardown, which
    # torch's leftover process-group threads can abort (see end_process)
    distributed = sys.modules.get("stylebridge.pipelines.featureshift.distributed")
    return code if distributed is None else distributed.end_process(code)


__all__ = ["INTERRUPTED", "run"]
