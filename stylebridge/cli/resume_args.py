"""``--resume`` of the batch commands (``adapt``, ``invert``, ``generate``): the option, its output
folder, and what the terminal says around a resumable run
(:mod:`stylebridge.pipelines.resume`)."""

from __future__ import annotations

import argparse
import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from stylebridge.cli.common import out_dir
from stylebridge.cli.options import notice_console
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.resume import (
    JOURNAL_DIR,
    ROWS_FILE,
    Journal,
    drawn_in,
    hold_out,
    interrupted_run,
    resume_hint,
)


def add_resume_argument(parser: argparse.ArgumentParser, inputs: str = "photos") -> None:
    what = ("the metrics, report and grid come out as one uninterrupted run's"
            if inputs == "photos" else "the grid comes out as one uninterrupted run's")
    random = (", a metric on random weights (allow_random=true) continues when it holds the "
              "same ones (drawn from its spec's seed)" if inputs == "photos" else "")
    parser.add_argument("--resume", action="store_true",
                        help=f"continue the interrupted run in --out DIR (same {inputs} and "
                             f"options): the {inputs} of its finished batches are kept, and "
                             f"{what}; --batch/--device/--compile may change; a model on "
                             f"random weights built without a file is refused{random}")


def resume_out(args: argparse.Namespace, default: str, console: Console | None = None,
               command: str = "") -> Path:
    """The output folder: ``--out``, which ``--resume`` needs, else a fresh ``default``
    (``default-2``...), held for ``command``'s run (:func:`~stylebridge.pipelines.resume.
    hold_out`; ``args`` keeps the hold): another process running into it is refused here,
    before any model loads.  Then, on ``console``, a line for each earlier default folder that
    holds an interrupted ``command`` run: the new run does not continue it, ``--resume``
    does."""
    if args.resume and args.out is None:
        raise StylebridgeError("--resume continues a folder: give it as --out DIR")
    out = out_dir(args.out, default)
    if command:
        args.stylebridge_out_hold = hold_out(out, command)
    if args.out is None and console is not None:
        k = 1
        while (folder := Path(default if k == 1 else f"{default}-{k}")) != out:
            if interrupted_run(folder) == command:
                notice_console(console).print(f"[yellow]{escape(str(folder))} holds an interrupted {command} "
                              "run; this one writes to " + escape(str(out)) + " (`--resume "
                              f"--out {escape(str(folder))}` continues it instead)[/yellow]")
            k += 1
    return out


@contextmanager
def resumable(console: Console, journal: Journal | None, command: str, out: Path
              ) -> Iterator[None]:
    """Say what the journal found before the run (a resumed run, a replaced one), and after
    an interruption (Ctrl-C, a full disk, out of memory) how to continue it (``journal``
    ``None``: the run opens its own; the folder is looked at)."""
    said = 0
    if journal is not None:
        for notice in journal.notices:
            notice_console(console).print(f"[yellow]{escape(notice)}[/yellow]")
        said = len(journal.notices)
        if journal.kept:
            notice_console(console).print(f"continuing the interrupted run in {escape(str(out))}: "
                          f"{journal.kept} {journal.unit}(s) done before are kept")
    try:
        yield
        if journal is not None:  # added while it ran (a --compile fall-back to eager)
            for notice in journal.notices[said:]:
                notice_console(console).print(f"[yellow]{escape(notice)}[/yellow]")
    except (KeyboardInterrupt, MemoryError, OSError) as exc:
        folder = journal.folder.parent if journal is not None else out  # calibrate: a file's
        if isinstance(exc, OSError) and exc.errno == errno.ENOENT and not folder.is_dir():
            raise StylebridgeError(f"{folder} (--out) was removed while the run wrote into it: "
                                   "nothing of the run is kept there") from None
        if journal.saved if journal is not None else interrupted_run(out) == command:
            drawn = journal.drawn if journal is not None else drawn_in(out / JOURNAL_DIR)
            notice_console(console).print(f"[yellow]{escape(resume_hint(command, out, drawn))}[/yellow]")
        raise





@contextmanager
def units_kept_hint(console: Console, out: Path, units: str, command: str) -> Iterator[None]:
    """After an interruption of a run resumed unit by unit (``reproduce thesis-tables``' rows,
    ``analyze latents``' encoders): how to continue it, when it kept some."""
    try:
        yield
    except (KeyboardInterrupt, MemoryError, OSError):
        if (out / JOURNAL_DIR / ROWS_FILE).is_file():
            notice_console(console).print(f"[yellow]the finished {units} are kept in {escape(str(out))}: "
                          f"continue with `stylebridge {command} ... --resume` (the same "
                          "options)[/yellow]")
        raise


__all__ = ["add_resume_argument", "resumable", "resume_out", "units_kept_hint"]
