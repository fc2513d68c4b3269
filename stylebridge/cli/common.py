"""CLI pieces shared by several commands: image/device options, JSON output,
``[NAME:]PATH`` checkpoint specs."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

# the grouped commands' targets are defined in stylebridge.cli.base; importable from here too
from stylebridge.cli.base import TARGET_KIND as TARGET_KIND
from stylebridge.cli.base import Target as Target
from stylebridge.cli.base import TargetGroup as TargetGroup
from stylebridge.core.precision import PRECISIONS
from stylebridge.registry.spec import expand_home


def finite_float(text: str) -> float:
    """argparse ``type`` of every float option: a number, never NaN or +-Inf (``--power nan``
    would otherwise turn every image black and exit 0), reported in one line as
    ``--power: expected a finite number, got 'nan'``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r} (NaN and Inf "
                                         "are refused)")
    return value


def seed_int(text: str) -> int:
    """argparse ``type`` of every ``--seed``: an integer in ``0..2**32-1`` (what numpy and
    torch's generators take; ``-1`` was an internal ValueError)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected 0..{2**32 - 1}, got {value}")
    return value


def finite_floats(text: str) -> list[float]:
    """argparse ``type`` of a comma-separated list of finite numbers (``0.5,1,1.5``)."""
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")
    return [finite_float(part) for part in parts]


# -- paths: a leading ~ ------------------------------------------------------------------------
# The shell expands `~` only at the start of a word: `--out ~/x` arrives expanded, `--out=~/x`,
# `-o~/x`, a quoted '~/x' and `--encoder e4e:~/e4e.safetensors` arrive with the `~` (which
# then became a folder literally named `~` in the current one).  Every option and positional
# that names a file or folder takes one of these types (tests/test_inputs_i2_paths.py checks
# that each built-in command's do).  Specs expand as the registry's grammar does
# (stylebridge.registry.spec.expand_home), so that Python's specs read the same.


def user_path(text: str) -> Path:
    """argparse ``type`` of a path option: a leading ``~`` or ``~user`` expanded, as the shell
    expands it in ``--out ~/x`` (but not in ``--out=~/x``).  An empty text is refused: it
    would be the current folder (an unset ``$OUT`` in ``--out "$OUT"`` wrote there)."""
    return Path(user_path_text(text))


def user_path_text(text: str) -> str:
    """:func:`user_path` for options the commands keep as text (photo lists, ``--data``)."""
    if not text:
        raise argparse.ArgumentTypeError("empty path (an unset variable?); give a path, "
                                         "e.g. . for the current folder")
    return os.path.expanduser(text)


def user_spec(text: str) -> str:
    """argparse ``type`` of a plugin spec or ``KEY=PATH`` option: ``~`` expanded where it
    starts a path part (``~/g.safetensors``, ``e4e:~/e4e.safetensors``,
    ``lpips:backbone=~/vgg.pth``, ``tiny=~/clip.safetensors``, ``a.safetensors,~/b.safetensors``);
    a ``~`` anywhere else (in a prompt) is kept.  An empty value (``-g ''``, an unset shell
    variable) is refused naming the option, not said later as "empty generator spec"."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a value, got {text!r}")
    return expand_home(text)


def claim_swallowed(action: argparse.Action, test: Callable[[str], bool]) -> None:
    """Let the positional ``action`` claim a value that a list option before it read as its
    own (``calibrate --images a b alpha``: ``alpha`` is an ``--images`` path, and NAME is
    missing).  When argparse then finds ``action`` missing and ``test`` holds for the last
    value of such an option, the error says so and how to place it (the CLI's parser,
    :class:`stylebridge.cli.main.OneLineArgumentParser`, reads this)."""
    from stylebridge.cli.main import SWALLOW_TEST

    setattr(action, SWALLOW_TEST, test)


def add_images_argument(parser: argparse.ArgumentParser) -> None:
    """The positional ``IMAGE...`` of the batch commands (files or folders)."""
    parser.add_argument("images", nargs="+", metavar="IMAGE", type=user_path_text,
                        help="image files or folders (their PNG, JPEG (.jpg/.jpeg/.jfif), "
                             "WebP, TIFF, BMP, GIF (first frame), AVIF and HEIC/HEIF files, "
                             "sorted, not those of their subfolders; each name once, a "
                             "symlink by its own name; HEIC needs pillow-heif)")


#: ``--generator``'s default: the installed official FFHQ generator (``stylebridge weights``)
DEFAULT_GENERATOR = "stylegan2"


def add_generator_argument(parser: argparse.ArgumentParser) -> None:
    """``--generator``/``-g``, by default the installed official FFHQ 1024 px generator."""
    parser.add_argument("--generator", "-g", default=DEFAULT_GENERATOR, type=user_spec,
                        metavar="[stylegan2:]CKPT",
                        help="generator checkpoint (convert upstream files with `convert`) or an "
                             "installed name (default: stylegan2, the installed official FFHQ "
                             "generator: `stylebridge weights fetch stylegan2-ffhq-1024`)")


def add_out_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """``--out DIR`` of a photo command; without it, ``default`` in the current folder, or
    ``default-2``, ``default-3``... when that one already holds files (never mixed)."""
    parser.add_argument("--out", type=user_path, default=None, metavar="DIR",
                        help=f"output folder (default: ./{default}, or ./{default}-2, -3... "
                             "when it already holds files)")


def out_dir(given: Path | None, default: str) -> Path:
    """``--out`` as given, else the first of ``default``, ``default-2``, ... that does not
    exist or is an empty folder (an earlier run's files are never overwritten by default)."""
    if given is not None:
        return given
    k = 1
    while True:
        candidate = Path(default if k == 1 else f"{default}-{k}")
        if not candidate.exists() or (candidate.is_dir() and not any(candidate.iterdir())):
            return candidate
        k += 1


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda[:N]",
                        help="where to run (default: auto = CUDA when available)")


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="the synthesis network's dtype: fp32 (the reference, default), "
                             "bf16 (CUDA or CPU; about 2x faster on a CPU with AMX, slower "
                             "on one without AMX, as the run says; images differ "
                             "by a few 8-bit levels on most pixels, up to about 20 on some) or "
                             "fp16 (CUDA); `stylebridge docs speed`")


def add_compile_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compile", default="auto", choices=("auto", "on", "off"),
                        help="run the synthesis network through torch.compile (CUDA graphs on "
                             "CUDA); auto (default) = only where it measured faster (so far: "
                             "nowhere; `stylebridge docs speed`); a failed compile prints one "
                             "line and runs eagerly")


def add_run_arguments(parser: argparse.ArgumentParser, *, sample_every: int,
                      checkpoint_every: int, seed: int = 0, seed_help: str | None = None,
                      sample_help: str = "write a source | adapted grid every N steps") -> None:
    """``--sample-every``, ``--checkpoint-every``, ``--tensorboard``, ``--resume``,
    ``--force``, ``--seed`` and ``--device``: what every domain trainer's command takes."""
    parser.add_argument("--sample-every", type=int, default=sample_every, metavar="N",
                        help=f"{sample_help} (0 = never; default {sample_every})")
    parser.add_argument("--checkpoint-every", type=int, default=checkpoint_every, metavar="N",
                        help="write the checkpoint and training state every N steps "
                             f"(default {checkpoint_every})")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write the losses of DOMAIN.log.jsonl (one record per step) "
                             "and the sample grids as TensorBoard events in DOMAIN_tensorboard/ "
                             "(needs pip install 'stylebridge[tensorboard]')")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run whose training state lies beside --out")
    parser.add_argument("--force", action="store_true",
                        help="start over even if --out or its training state exists")
    parser.add_argument("--seed", type=seed_int, default=seed, help=seed_help or f"default {seed}")
    add_device_argument(parser)


def add_clip_weights_arguments(parser: argparse.ArgumentParser, notice: str) -> None:
    """``--clip-weights MODEL=PATH`` and ``--allow-random-clip`` (the domain trainers)."""
    parser.add_argument("--clip-weights", action="append", metavar="MODEL=PATH", type=user_spec,
                        help="weights file of a CLIP model (.safetensors state dict), repeatable")
    parser.add_argument("--allow-random-clip", action="store_true",
                        help=f"run CLIP models without weights on {notice} "
                             "(tests only; every output says so)")
    parser.add_argument("--clip-config", action="append", default=[], type=user_path,
                        metavar="JSON|DIR",
                        help="extra open_clip architecture configs, repeatable (the tiny "
                             "preset's: --clip-config PRESET/clip, then name tiny-vit-p16 in "
                             "--clip (and --mapper-clip) with --clip-weights "
                             "tiny-vit-p16=PRESET/clip/tiny-vit-p16.safetensors)")


def register_clip_config_args(args: argparse.Namespace) -> None:
    """Make open_clip know the architectures ``--clip-config`` gives, before ``--clip`` names
    one of them."""
    from stylebridge.pipelines.reproduce.clips import register_clip_configs

    register_clip_configs(list(args.clip_config or []))


def print_training_outcome(console: Any, outcome: Any, notice_text: str,
                           what: str = "") -> str | None:
    """The end of a domain trainer's command: ``already trained`` (a resumed run with nothing
    left; returns ``None``) or ``wrote OUT (WHAT step N/M; losses) [NOTICE]``; returns the
    notice markup (empty when the run used trained CLIP weights) for the lines that follow."""
    from rich.markup import escape

    out = escape(str(outcome.out))
    if outcome.result is None:
        console.print(f"{out} is already trained for {outcome.step} steps (--steps "
                      f"{outcome.steps}); nothing to do")
        return None
    notice = f" [bold yellow]{notice_text}[/bold yellow]" if outcome.random_clip else ""
    summary = ", ".join(f"{k} {v:.4f}" for k, v in outcome.losses.items())
    console.print(f"[green]wrote[/green] {out} ({what}step {outcome.step}/{outcome.steps}; "
                  f"{summary}){notice}")
    log, events = outcome.result.log_path, outcome.result.events
    if log is not None and log.is_file():  # the losses of every step
        watch = (f" (TensorBoard: tensorboard --logdir {escape(str(events))})"
                 if events is not None else "")
        console.print(f"log: {escape(str(log))}{watch}", highlight=False)
    return notice


def print_json(data: Any) -> None:
    """``--json`` on stdout; one line instead when stdout is closed (print() would drop it)."""
    from stylebridge.cli.options import refuse_closed_stdout  # options imports this module

    refuse_closed_stdout("--json")
    print(json.dumps(data, indent=2))


# -- tables of numbers ---------------------------------------------------------------------

#: a stacked header is at least this wide when its text is (``Quality ↑`` stays one line)
HEADER_WIDTH = 9
#: a cell that reads as a number (or as no number: ``–``, ``n/a``): right-aligned
_NUMBER = r"[-+−]?[\d,]*\.?\d+(?:e[-+]?\d+)?%?|[-+]?inf|nan|n/a|–|-"


def _numeric(cells: Sequence[str]) -> bool:
    """Whether a column holds numbers (some cell reads as one; a transposed table's column
    holds one row's values, a label among them)."""
    return any(re.fullmatch(_NUMBER, c.strip()) for c in cells if c.strip())


def _tokens(text: str) -> list[str]:
    """The words of one line of ``text``, a direction mark (``↑``, ``↓``, ``→1``) kept with
    the word before it: ``Diversity ↑`` is never stacked as ``Diversity`` / ``↑ Image``."""
    out: list[str] = []
    for word in text.split():
        if out and word[0] in "↑↓→":
            out[-1] += " " + word
        else:
            out.append(word)
    return out


def _words(text: str) -> int:
    """The widest word of ``text`` (what a column must hold so that no word is split)."""
    from rich.cells import cell_len

    return max((cell_len(w) for w in _tokens(text)), default=0)


def _lines(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.splitlines()), default=0)


def _stack(text: str, width: int) -> str:
    """``text`` broken at spaces into lines of at most ``width`` cells (words stay whole)."""
    from rich.cells import cell_len

    lines: list[str] = []
    for part in text.splitlines() or [""]:
        line = ""
        for word in _tokens(part):
            if line and cell_len(line) + 1 + cell_len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return "\n".join(lines)


def _widths(header: list[str], rows: list[list[str]], width: int
            ) -> tuple[list[int], list[bool], int]:
    """(column widths, which columns wrap at spaces, the table's width) of the narrowest
    layout that splits no word, widened towards the natural one while it fits ``width``.
    A column whose cells hold no space (numbers, names) is as wide as its widest cell, its
    header stacked into lines of at least :data:`HEADER_WIDTH`; one whose cells hold spaces
    (row labels) may wrap, down to its widest word."""
    from rich.cells import cell_len

    columns = [[h, *(row[i] for row in rows)] for i, h in enumerate(header)]
    wraps = [any(" " in c for c in col[1:]) for col in columns]
    low, high = [], []
    for col, wrap in zip(columns, wraps, strict=True):
        body = max((_lines(c) for c in col[1:]), default=0)
        if wrap:
            low.append(max(_words(c) for c in col))
            high.append(max(body, cell_len(col[0])))
        else:
            w = max(body, _words(col[0]), min(HEADER_WIDTH, cell_len(col[0])))
            low.append(w)
            high.append(w)
    extra = 3 * len(header) + 1  # a space either side of each cell, the rules between them
    widths = list(high)
    while sum(widths) + extra > width:  # narrow the widest wrapping column, never below low
        k = max((i for i in range(len(widths)) if widths[i] > low[i]),
                key=lambda i: widths[i] - low[i], default=None)
        if k is None:
            break
        widths[k] -= 1
    return widths, wraps, sum(widths) + extra


def _table(title: str, header: list[str], rows: list[list[str]], widths: list[int],
           wraps: list[bool], labels: int, title_style: str | None) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title), title_style=title_style)
    for i, (head, w, wrap) in enumerate(zip(header, widths, wraps, strict=True)):
        right = i >= labels and _numeric([row[i] for row in rows])
        table.add_column(Text(head if wrap else _stack(head, w)), width=w, no_wrap=not wrap,
                         justify="right" if right else "left")
    for row in rows:  # names of files, domains, encoders: plain text, never markup
        table.add_row(*(Text(cell) for cell in row))
    return table


def _parts(header: list[str], rows: list[list[str]], labels: int, width: int,
           groups: Sequence[Any] | None = None) -> list[tuple[list[str], list[list[str]]]]:
    """The table cut into as few tables as fit ``width``: the label columns, then as many
    of the others as fit (at least one each); consecutive columns of one ``groups`` value
    (one per column) go to the same part when they fit in one."""
    def fits(part: list[int]) -> bool:
        cols = [*range(labels), *part]
        return _widths([header[c] for c in cols], [[r[c] for c in cols] for r in rows],
                       width)[2] <= width

    runs: list[list[int]] = []  # the columns, in runs of one group
    for i in range(labels, len(header)):
        if runs and groups is not None and groups[i] == groups[runs[-1][-1]]:
            runs[-1].append(i)
        else:
            runs.append([i])
    parts: list[list[int]] = []
    for run in runs:
        if parts and fits([*parts[-1], *run]):
            parts[-1] += run
            continue
        if fits(run):
            parts.append(list(run))
            continue
        for i in run:  # a group wider than the console: as many columns as fit
            if parts and fits([*parts[-1], i]):
                parts[-1].append(i)
            else:
                parts.append([i])
    return [([header[c] for c in (*range(labels), *p)],
             [[r[c] for c in (*range(labels), *p)] for r in rows]) for p in parts] or \
        [(header, rows)]


def numeric_tables(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], *,
                   width: int, labels: int = 1, title_style: str | None = None,
                   groups: Sequence[Any] | None = None) -> list[Any]:
    """Rich tables that show ``rows`` (cells as text; the first ``labels`` columns name the
    row) within ``width`` terminal columns without splitting a number or a name: numeric
    columns never wrap, headers are stacked at their spaces, row labels wrap at spaces.  When
    the table does not fit, it is shown transposed (one row per column: ``labels == 1``) or cut
    into parts (the label columns repeated; ``groups``, one value per column, keeps the
    columns of one value together), whichever needs fewer tables; the titles say "part k of
    n"."""
    header = [str(h) for h in header]
    rows = [[str(c) for c in row] for row in rows]
    layouts = [(header, rows, labels, groups)]
    if labels == 1 and rows:
        layouts.append(([header[0], *(r[0] for r in rows)],
                        [[header[i], *(r[i] for r in rows)] for i in range(1, len(header))],
                        1, None))
    options = [(_parts(h, r, n, width, g), n) for h, r, n, g in layouts]
    best = min(options, key=lambda o: len(o[0]))  # the first (the usual layout) on a tie
    parts, n = best
    tables = []
    for k, (h, r) in enumerate(parts, 1):
        widths, wraps, _ = _widths(h, r, width)
        name = title + (f" (part {k} of {len(parts)})" if len(parts) > 1 else "")
        tables.append(_table(name, h, r, widths, wraps, n, title_style))
    return tables


def print_numeric_table(console: Console, title: str, header: Sequence[str],
                        rows: Sequence[Sequence[str]], *, labels: int = 1,
                        title_style: str | None = None,
                        groups: Sequence[Any] | None = None) -> None:
    """:func:`numeric_tables` at the console's width, printed."""
    for table in numeric_tables(title, header, rows, width=console.width, labels=labels,
                                title_style=title_style, groups=groups):
        console.print(table)


#: the skipped files a batch command prints; past them, how many more and their commonest
#: reasons (300 broken files were 300 rows that scrolled the means table away)
SKIPPED_SHOWN = 20


def print_skipped(console: Console, report: Any, *, unit: str = "files",
                  listed_in: str | None = None) -> str:
    """A batch report's notes (five, then how many more such ``unit``) and its skipped files
    (plain text, never markup), for a command that says its own counts; returns where the
    skipped files are ("in the table above" / "listed above") for a closing error line.
    The first :data:`SKIPPED_SHOWN` are shown, then how many more (all in ``listed_in``, the
    run's report, when it lists them) and the three commonest reasons.

    The table is :func:`numeric_tables`' (as the other commands' tables): a file name or a
    word of a reason is never split or cut, the reasons wrap at spaces.  A name too wide for
    that at the console's width is not cut either: the skipped files are then listed one per
    line, each reason indented under its file."""
    import textwrap

    from rich.text import Text

    from stylebridge.cli.options import notice_console
    from stylebridge.errors import printable  # an ESC in a name: not raw

    notes = notice_console(console)
    for path, text in report.notes[:5]:
        notes.print(Text(printable(f"note: {path} {text}"), style="yellow"))
    if len(report.notes) > 5:
        notes.print(Text(f"note: and {len(report.notes) - 5} more such {unit}",
                         style="yellow"))
    if not report.skipped:
        return "in the table above"
    shown = [(printable(str(path)), printable(reason))
             for path, reason in report.skipped[:SKIPPED_SHOWN]]
    tables = numeric_tables("skipped", ["file", "reason"],
                            [[path, reason] for path, reason in shown], width=console.width)
    if all(_table_width(table) <= console.width for table in tables):
        for table in tables:
            console.print(table)
        where = "in the table above"
    else:  # wrapped here at spaces only: a long name is left for the terminal to wrap
        console.print(Text("skipped:", style="italic"))
        for path, reason in shown:
            console.print(Text(f"  {path}"), soft_wrap=True)
            console.print(Text(textwrap.fill(reason, console.width - 1, initial_indent="    ",
                                             subsequent_indent="    ", break_long_words=False,
                                             break_on_hyphens=False)), soft_wrap=True)
        where = "listed above"
    more = len(report.skipped) - len(shown)
    if more:
        common = Counter(reason for _, reason in report.skipped).most_common(3)
        text = f"and {more} more skipped {unit}" + (f" (all in {listed_in})" if listed_in else "")
        if common[0][1] > 1:
            text += "; commonest reasons: " + "; ".join(f"{n} × {reason}" for reason, n in common)
        console.print(Text(text, style="italic"), soft_wrap=True)
        where = f"{where} and {listed_in}" if listed_in else where
    return where


def _table_width(table: Any) -> int:
    """The width of a table of :func:`numeric_tables` (its columns' widths, a space either
    side of each cell and the rules between them)."""
    return sum(column.width or 0 for column in table.columns) + 3 * len(table.columns) + 1
