"""Command-line options and console output shared by several commands (argparse + rich)."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylebridge.core.batch import BatchReport
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.limits import MAX_BATCH, MAX_IMAGE_SIZE, MAX_SAMPLES
from stylebridge.pipelines.adapt import (
    GRID_MAX_ROWS,
    ProgressCallback,
    check_photo_options,
    random_parts,
)

if TYPE_CHECKING:
    from rich.console import Console


def quiet_licence_warnings() -> None:
    """A plugin's licence warning (StyleRes' ``licence: ... non-commercial ...``) is for
    Python users; the command line says each non-commercial licence once, on one line
    (:func:`print_random_notices`), not as a warning with a source path and line number.

    Called by :func:`stylebridge.cli.main.main` while a command runs (inside its
    ``warnings.catch_warnings()``), never at import: the registry imports this module when it
    registers the commands, and a Python user's licence warnings must stay on."""
    warnings.filterwarnings("ignore", message="licence: ", category=UserWarning)


def quiet_api_warnings() -> None:
    """What the Python API warns (:class:`~stylebridge.errors.StylebridgeWarning`: RANDOM
    WEIGHTS, skipped inputs, metric notes, a domain the skip layers leave unchanged) the
    command line prints as lines of its own (:func:`print_random_notices`,
    :func:`print_batch_report`, its notes): quieted while a command runs (``serve`` too),
    as :func:`quiet_licence_warnings` is, never at import."""
    from stylebridge.errors import StylebridgeWarning

    warnings.filterwarnings("ignore", category=StylebridgeWarning)


_CLI_CONSOLE: Any = None  # the class, made at the first call (rich loads then, not at import)


def cli_console(*, stderr: bool = False) -> Console:
    """A rich ``Console`` for the command line whose broken pipe (``| head``) raises
    ``BrokenPipeError``, which :func:`stylebridge.cli.main.main` ends with 141 as every other
    broken pipe (rich's own ``on_broken_pipe`` exits with 1); a batch's handlers of
    ``OSError`` see it as the interruption it is, and keep its resume state."""
    global _CLI_CONSOLE
    if _CLI_CONSOLE is None:
        from rich.console import Console as RichConsole

        from stylebridge.cli.text import strip_trailing_spaces, whole_text, whole_words

        class CliConsole(RichConsole):
            def on_broken_pipe(self) -> None:
                self.quiet = True  # nothing more for whoever went away
                raise BrokenPipeError(32, "Broken pipe")

            def print(self, *objects: Any, **kwargs: Any) -> None:
                # words whole (stylebridge.cli.text): text wraps at spaces only, a table's
                # columns hold their widest word, and what is wider than the console is
                # left for the terminal to wrap, not cut
                kwargs.setdefault("crop", False)
                if not kwargs.get("soft_wrap") and kwargs.get("overflow") is None:
                    markup = {k: kwargs.get(k) for k in ("markup", "highlight", "emoji")}
                    objects = tuple(whole_text(self, o, **markup) for o in objects)
                needed = max([self.width, *(whole_words(self, o) for o in objects)])
                if needed <= self.width:
                    super().print(*objects, **kwargs)
                    return
                saved = self._width  # a table whose words are wider: laid out that wide
                self.width = needed
                try:
                    super().print(*objects, **kwargs)
                finally:
                    self._width = saved

            def _render_buffer(self, buffer: Any) -> str:
                text = super()._render_buffer(buffer)
                # a file or a pipe gets no padding (rich pads each line to the width)
                return text if self.is_terminal else strip_trailing_spaces(text)

        _CLI_CONSOLE = CliConsole
    return _CLI_CONSOLE(stderr=stderr)


def stdout_closed() -> bool:
    """Whether the standard output was closed when the command started (``>&-``: Python then
    has no ``sys.stdout``) or its file descriptor is gone."""
    import os

    if sys.stdout is None:
        return True
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # closed, or a buffer without a descriptor
        return getattr(sys.stdout, "closed", False) is True
    try:
        os.fstat(fd)
    except OSError:  # the descriptor was closed under Python's stream
        return True
    return False


def refuse_closed_stdout(what: str) -> None:
    """One line, exit 2 (``--json -: standard output is closed``), best before any work,
    when ``what`` writes to a standard output that is closed (``>&-``): the output would be
    lost without a word."""
    if stdout_closed():
        from stylebridge.errors import StylebridgeError

        raise StylebridgeError(f"{what}: standard output is closed")


def notice_console(console: Console) -> Console:
    """Where ``console``'s notices go (random weights, licences, replaced reports, resume
    hints, notes): stderr when ``console`` writes to stdout (recording or not), so that
    ``> results.txt`` or a pipe gets the results alone and the notices stay on the screen;
    ``console`` itself when it writes elsewhere (a file, a buffer, stderr)."""
    if console.file is not sys.stdout or console.stderr:
        return console
    return cli_console(stderr=True)


def bar_options(console: Console, *, transient: bool = True,
                off_terminal: bool = False) -> dict[str, Any]:
    """``rich.progress.Progress`` keyword arguments of a progress bar for a command whose
    output goes to ``console``: the bar draws on stderr (:func:`notice_console`), so that
    ``> results.txt`` gets the results alone, and only on a terminal unless ``off_terminal``
    (then its last state is one line of a log).  Prints to stdout while it runs pass above
    it only when stdout is that terminal too (redirected to a file, they stay there)."""
    bars = notice_console(console)
    return {"console": bars, "transient": transient,
            "disable": not (bars.is_terminal or off_terminal),
            "redirect_stdout": bars is console or _stdout_is_terminal()}


def status_line(console: Console, text: str) -> Any:
    """A spinner and ``text`` (what ``console.status`` shows) for a command whose output goes
    to ``console``, drawn as :func:`bar_options` draws a bar (stderr, a terminal only); a
    ``rich.live.Live``, not started (``with``, or ``start()`` and ``stop()``)."""
    from rich.live import Live
    from rich.spinner import Spinner

    options = bar_options(console)
    return Live(Spinner("dots", text=text, style="status.spinner"), console=options["console"],
                refresh_per_second=12.5, transient=True,
                redirect_stdout=options["redirect_stdout"])


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout is not None and sys.stdout.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def note_text(note: str, metric: str = "") -> str:
    """A metric's note as every command says it, ``note: METRIC: TEXT`` (``serve`` and
    ``demo`` too): ``note: id: no face was detected ...``; the metric named once, where the
    text starts with its name (``note: id uses dlib's ...``, not ``id: id uses ...``)."""
    import re

    text = f"{metric}: {note}" if metric else note
    head, sep, rest = text.partition(": ")
    name = re.split(r"[\[:( ]", head, maxsplit=1)[0]
    if sep and name and rest.startswith(f"{name} ") and " " not in head:
        text = rest
    return f"note: {text}"


def print_random_notices(console: Console, random_inputs: Mapping[str, Any], *,
                         encoder: str = "", generator: Path | str | None = None) -> None:
    """One bold yellow line per input that runs on random (untrained) weights, then one
    yellow line per loaded checkpoint whose licence forbids commercial use (the generator's
    and those the registry loaded: FSE, StyleRes, e4e/pSp, StyleDomain's domains)."""
    from rich.markup import escape

    console = notice_console(console)
    for part in random_parts(random_inputs):
        if part == "encoder":
            text = (f"{RANDOM_NOTICE}: encoder {encoder!r} runs on untrained (random) weights; "
                    "the results show no trained model")
        elif part == "generator":
            text = f"{RANDOM_NOTICE}: {generator} is a random-weight generator"
        elif part == "latents":
            text = (f"{RANDOM_NOTICE}: inversions made on random (untrained) weights (their "
                    "files say so)")
        elif part == "featureshift":
            text = (f"{RANDOM_NOTICE}: the featureshift model is untrained or was trained on "
                    "random-weight inputs (`stylebridge info` on it says which): it shows no "
                    "real domain shift")
        else:
            text = f"{RANDOM_NOTICE}: {part} has random (untrained) weights"
        console.print(f"[bold yellow]{escape(text)}[/bold yellow]")
    for text in licence_notices(generator):
        console.print(f"[yellow]{escape(text)}[/yellow]", soft_wrap=True)


def licence_notices(generator: Path | str | None = None) -> list[str]:
    """``licence of NAME (FILE): ...`` for the generator file (when it is one) and every
    checkpoint loaded since the last call whose licence is non-commercial, each once."""
    from stylebridge.core.checkpoint import read_header
    from stylebridge.errors import StylebridgeError
    from stylebridge.registry.licences import noncommercial_notice, take_loaded

    notices: list[str] = []
    path = Path(generator) if generator else None
    if path is not None and path.is_file():
        try:
            notice = noncommercial_notice(path, read_header(path).extra)
        except (StylebridgeError, OSError):
            notice = None  # loading it said what is wrong
        if notice is not None:
            notices.append(notice)
    return list(dict.fromkeys([*notices, *take_loaded()]))


def add_photo_arguments(parser: argparse.ArgumentParser, *, several_encoders: bool = False) -> None:
    from stylebridge.cli.common import add_device_argument, add_generator_argument, user_spec

    help_text = "encoder spec, e.g. e4e:e4e.safetensors (see `stylebridge plugins`)"
    if several_encoders:
        parser.add_argument("--encoder", "-e", required=True, action="append", type=user_spec,
                            metavar="NAME[:CKPT][:k=v,...]",
                            help=help_text + "; repeatable: encoders compared side by side")
    else:
        parser.add_argument("--encoder", "-e", required=True, metavar="NAME[:CKPT][:k=v,...]",
                            type=user_spec, help=help_text)
    add_generator_argument(parser)
    parser.add_argument("--align", action=argparse.BooleanOptionalAction, default=True,
                        help="FFHQ-align faces first (default); --no-align for aligned inputs")
    parser.add_argument("--align-size", type=int, default=1024, metavar="N",
                        help="size of the aligned crop before the encoder resizes it (default 1024, "
                             f"at most {MAX_IMAGE_SIZE})")
    parser.add_argument("--batch", type=int, default=4,
                        help=f"images per forward pass (default 4, at most {MAX_BATCH}); "
                             "results agree across batch sizes to floating-point rounding "
                             "(bf16 rounding under --precision bf16)")
    add_device_argument(parser)


def add_style_means_arguments(parser: argparse.ArgumentParser) -> None:
    """Photos vs mapping-network samples, as ``calibrate`` and ``analyze latents`` compare."""
    from stylebridge.cli.common import seed_int, user_path_text  # common imports this module

    parser.add_argument("--images", nargs="+", required=True, metavar="PATH", type=user_path_text,
                        help="photos (files or folders), e.g. 3000 FFHQ images as in the thesis")
    parser.add_argument("--samples", type=int, default=3000,
                        help="z samples for the mapping network's style means (default 3000, at "
                             f"most {MAX_SAMPLES:,})")
    parser.add_argument("--seed", type=seed_int, default=0, help="seed of the z samples (default 0)")


def check_photo_arguments(args: argparse.Namespace) -> None:
    """One-line errors for ``--batch`` / ``--align-size`` below 1."""
    check_photo_options(args.batch, args.align_size)


@contextmanager
def progress_bar(console: Console) -> Iterator[ProgressCallback]:
    """A transient rich progress bar as a pipeline's plain progress callback
    ``(completed, total, description)`` (the description is shown as text, not markup).

    The bar starts at the first call, so an error raised before any progress (a bad
    option, a missing file) prints nothing but the error."""
    from rich.markup import escape
    from rich.progress import Progress, TaskID

    with ExitStack() as stack:
        bar: Progress | None = None
        task: TaskID | None = None

        def update(completed: int, total: int | None, description: str) -> None:
            nonlocal bar, task
            if bar is None or task is None:
                bar = stack.enter_context(Progress(**bar_options(console)))
                task = bar.add_task(escape(description), total=total, completed=completed)
            else:
                bar.update(task, completed=completed, total=total,
                           description=escape(description))

        yield update


def grid_words(n_photos: int) -> str:
    """``grid.png``, or ``grid.png (the first 64 photos)`` when it does not show them all."""
    return "grid.png" + (f" (the first {GRID_MAX_ROWS} photos)" if n_photos > GRID_MAX_ROWS
                         else "")


def print_batch_report(console: Console, report: BatchReport, *,
                       error_follows: bool = False, listed_in: str | None = None) -> None:
    """A short summary and the table of skipped files (a file name is never rich markup).
    With nothing done, an ``error: nothing done`` line ends it, unless ``error_follows``
    (the caller raises the one error line that says why).

    The skipped files: :func:`~stylebridge.cli.common.print_skipped` (names never cut; the
    first 20, then how many more, all in ``listed_in`` when the run's report lists them)."""
    from stylebridge.cli.common import print_skipped

    console.print(f"{len(report.done)} done, {len(report.skipped)} skipped")
    where = print_skipped(console, report, unit="photos",
                          listed_in=listed_in if report.done else None)
    if report.skipped and not report.done and not error_follows:  # exit 2: nothing was done
        path, reason = report.skipped[0]
        more = f" (and {len(report.skipped) - 1} more, {where})" \
            if len(report.skipped) > 1 else ""
        from stylebridge.errors import printable

        print(printable(f"error: nothing done: {path}: {reason}{more}"), file=sys.stderr)


class ConsoleBars:
    """Transient rich progress bars on ``console``, one per named step, started at the first
    update (an error before any progress prints only the error); ``failed`` prints a batch
    report.  The console side of the pipelines' progress objects (``analyze``, ``eval``)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def _task(self, what: str, total: int | None) -> Any:
        if self.bar is None:
            from rich.progress import Progress

            self.bar = Progress(**bar_options(self.console))
            self.bar.start()
        if what not in self.tasks:
            self.tasks[what] = self.bar.add_task(what, total=total)
        return self.tasks[what]

    def update(self, what: str, done: int, total: int | None) -> None:
        task = self._task(what, total)
        self.bar.update(task, completed=done)

    def advance(self, what: str, n: int, total: int | None = None) -> None:
        task = self._task(what, total)
        self.bar.advance(task, n)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
            self.tasks = {}

    def failed(self, report: BatchReport) -> None:
        """The report of a run that failed: the error raised after it is the one line."""
        print_batch_report(self.console, report, error_follows=True)


def add_fit_argument(parser: argparse.ArgumentParser, extra: str = "") -> None:
    """``--fit origin|intercept`` of ``calibrate`` and ``analyze latents``: the two readings of
    the thesis' "simple Linear Regression" (``origin`` is the default, and why)."""
    from stylebridge.plugins.calibrators.alpha import FITS

    parser.add_argument("--fit", choices=FITS, default="origin",
                        help="the thesis' \"simple Linear Regression\" has two readings: origin "
                             "(default) = least squares of y = alpha*x, its hypothesis w_enc = "
                             "alpha*w_orig and the y = alpha*x lines of Fig. 4.9, the only form "
                             "whose offsets a 1/alpha scale can correct (Fig. 4.11); intercept = "
                             "ordinary least squares y = alpha*x + b (a library's default "
                             "LinearRegression), whose slope is used" + extra)


def add_skip_layers_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--skip-layers`` (named sets, style-layer indices, ``w:N`` rows), its table in the epilog."""
    from stylebridge.plugins.calibrators.alpha import LAYER_TABLE_DOC

    parser.add_argument("--skip-layers", default="",
                        metavar="LAYERS",
                        help=f"{what}: `none` (default: every layer changes), a named set, "
                             "`coarse` (StyleDomain's no_coarse, the in-domain remedy the "
                             "thesis recommends for FSE: style layers 0,2,3,5,6,8) or `first` (conv1 only), or style-layer indices "
                             "(26 at 1024 px; a ToRGB index is refused), `w:N` for W+ row N "
                             "(upstream's 18-row numbering), `conv:N` for StyleDomain's head "
                             "conv_N (the 17 convs), `rgb:N` for a ToRGB layer on purpose "
                             "(table below, with the two readings of the thesis' 18 rows)")
    from stylebridge.cli.main import RawDescriptionWordWrapFormatter

    parser.formatter_class = RawDescriptionWordWrapFormatter
    table = LAYER_TABLE_DOC.replace("``", "")
    parser.epilog = f"{parser.epilog}\n\n{table}" if parser.epilog else table
