"""``stylebridge eval``: the command line of :mod:`stylebridge.pipelines.evaluate`.

Official weights the metrics read and that are not installed (``lpips-alex``, ``lpips-vgg``,
``arcface-irse50``) are named in one error before any metric is built, or fetched first with
``--fetch`` (``--accept-licence`` for non-commercial ones), as ``adapt`` and ``invert`` do.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stylebridge.cli.base import Command
from stylebridge.cli.commands.weights import add_fetch_arguments, ensure_weights
from stylebridge.cli.common import add_device_argument, user_path, user_path_text, user_spec
from stylebridge.cli.options import (
    ConsoleBars,
    cli_console,
    note_text,
    notice_console,
    print_batch_report,
    refuse_closed_stdout,
)
from stylebridge.core.batch import BatchReport
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.io import STREAMS
from stylebridge.core.limits import MAX_BATCH, MAX_IMAGE_SIZE
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.eval_report import RESIZE_FILTER
from stylebridge.pipelines.evaluate import (
    EvalConfig,
    EvalProgress,
    EvalResult,
    evaluate,
    journal_folder,
    parse_metric_spec,
)
from stylebridge.pipelines.resume import drawn_in, resume_hint
from stylebridge.plugins.metrics.image import PSNR_CAP
from stylebridge.registry import get_registry, hookimpl


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"


class _ConsoleProgress(ConsoleBars, EvalProgress):
    """Notes as yellow lines, a transient progress bar while the predictions are scored."""

    def note(self, text: str) -> None:
        notice_console(self.console).print(f"[yellow]note:[/yellow] {escape(text)}")

    def start(self, total: int) -> None:
        self._task("evaluating", total)

    def advance(self, n: int) -> None:  # type: ignore[override]
        ConsoleBars.advance(self, "evaluating", n)


#: the widest the image column is made before its names wrap at their spaces (a name without
#: one stays whole: the column is then as wide as it)
IMAGE_WIDTH = 24


def _groups(widths: list[int], room: int) -> list[list[int]]:
    """Indices of columns of ``widths`` characters in groups that fit ``room`` characters
    (each column also takes its padding and a border: 3 more); one column per group at least."""
    groups: list[list[int]] = [[]]
    used = 0
    for i, width in enumerate(widths):
        if groups[-1] and used + width + 3 > room:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += width + 3
    return groups


def print_result(console: Console, result: EvalResult, show: int) -> None:
    """The table (per-image rows when there are at most ``show`` images, then the means;
    each column with its unit and direction) and each metric's notes; a bold line and the
    title say when the pictures were made on random weights (their files say so).

    A number is never split over two lines: each column is at least as wide as its widest
    number (its header may wrap), and columns that do not fit the terminal's width go on to
    another table under the first, with the image names again."""
    rows, means = result.rows, result.means
    per_image, random_cols = set(result.per_image_columns), result.random_columns
    notice = result.input_notice()
    if notice is not None:
        notice_console(console).print(f"[bold red]{escape(notice)}[/bold red]")
    columns = list(means)
    listed = len(rows) <= show
    cells = {col: [*(_fmt(row[col]) if col in per_image and col in row else ""
                     for row in (rows if listed else [])), _fmt(means[col])] for col in columns}
    heads = [result.header(col) + (" (RANDOM WEIGHTS)" if col in random_cols else "")
             for col in columns]
    # a column holds its widest number and the widest word of its header (a metric's label,
    # never split): the groups of columns that fit the width are made of these
    widths = [max([*map(len, cells[col]), *map(len, heads[i].split())])
              for i, col in enumerate(columns)]
    names = [row["name"] for row in rows] if listed else []
    image_width = max([5, *(len(word) for name in names for word in name.split()),
                       min(max([5, *map(len, names)]), IMAGE_WIDTH)])
    groups = _groups(widths, console.width - 1 - (image_width + 3))
    title = f"stylebridge eval: {len(rows)} image(s)" + (
        f" [{RANDOM_NOTICE} pictures]" if notice is not None else "")
    for group in groups:
        part = "" if len(groups) < 2 else f" (column {group[0] + 1} of {len(columns)})" \
            if len(group) == 1 else f" (columns {group[0] + 1}-{group[-1] + 1} of {len(columns)})"
        table = Table(title=escape(title + part))
        table.add_column("image", overflow="fold", max_width=IMAGE_WIDTH)
        for i in group:  # "ssim[ssim:gaussian=true]" is a label, not rich markup
            table.add_column(escape(heads[i]),
                             justify="right", min_width=widths[i], overflow="fold")
        for r, name in enumerate(names):
            table.add_row(escape(name), *(cells[columns[i]][r] for i in group))
        if listed:
            table.add_section()
        table.add_row("[bold]mean[/bold]",
                      *(f"[bold]{cells[columns[i]][-1]}[/bold]" for i in group))
        console.print(table)
    for metric in result.metrics:
        for note in metric.notes:
            style = "bold red" if note.startswith("RANDOM") else "yellow"
            text = note_text(note, metric.text).removeprefix("note: ")
            notice_console(console).print(f"[{style}]note:[/{style}] {escape(text)}")


class EvalCommand(Command):
    name = "eval"
    help = "evaluate predictions against targets (mse, psnr, ssim, lpips, id, fid, clip_*)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--metric", "-m", type=user_spec, action="append", required=True,
                            metavar="NAME[:k=v,...]",
                            help="metric, repeatable: mse, psnr (dB, capped at "
                                 f"{PSNR_CAP:.2f}: an MSE below 8-bit quantisation noise, "
                                 "(1/255)²/12, counts as that noise, so identical images "
                                 f"give {PSNR_CAP:.2f}, not inf), ssim[:gaussian=true], "
                                 "lpips[:net=alex|vgg,backbone=PATH,size=N] (size: both "
                                 "images resized to N×N first, torch bilinear with "
                                 "antialias), "
                                 "id[:backend=auto|arcface|dlib,detect=auto|hog|whole] (auto: "
                                 "ArcFace IR-SE50, the thesis's pSp ID, when arcface-irse50 is "
                                 "installed, else dlib; reported as id[arcface] or id[dlib]; "
                                 "detect: how dlib finds the face, auto = HOG, else the whole "
                                 "image; hog = leave images without a found face out; whole = "
                                 "the image is the face crop), "
                                 "fid[:weights=PATH,ref_stats=PATH], "
                                 "clip_quality[:model=ViT-B-16,weights=PATH,text=PROMPT|"
                                 "reference=IMG] (or --domain-text), "
                                 "clip_diversity[:model=...,weights=PATH]; a network-based "
                                 "metric without its weights runs only with allow_random=true, "
                                 "labelled RANDOM WEIGHTS")
        parser.add_argument("--pred", type=user_path_text, required=True, nargs="+",
                            metavar="DIR|FILE",
                            help="predicted images, or folders of them")
        parser.add_argument("--target", type=user_path_text, nargs="+", metavar="DIR|FILE",
                            help="target images, paired with --pred by file name (stem); "
                                 "one file each: paired as given; when no metric compares "
                                 "pairs (fid alone): the reference set, names need not match")
        parser.add_argument("--suffix", default="", metavar="SUFFIX",
                            help="only the predictions whose name ends with SUFFIX, paired by "
                                 "the name without it: `--pred adapted/ --suffix _pixar "
                                 "--target aligned/` scores adapt's photo_pixar.png against "
                                 "photo.png (_inversion for invert's and adapt's inversions)")
        parser.add_argument("--domain-text", metavar="TEXT",
                            help="domain description for clip_quality (unless it has text= or "
                                 "reference=)")
        parser.add_argument("--size", type=int, metavar="N",
                            help=f"resize every image to N×N first (8..{MAX_IMAGE_SIZE}; "
                                 "default: targets' size; predictions of another size are "
                                 "resized to their target, noted in the report); the "
                                 f"filter: {RESIZE_FILTER}")
        parser.add_argument("--batch", type=int, default=8, help=f"images per batch (default 8, at most {MAX_BATCH})")
        parser.add_argument("--json", type=user_path, metavar="OUT",
                            help="write all values as JSON (- for stdout: everything else "
                                 "then goes to stderr)")
        parser.add_argument("--csv", type=user_path, metavar="OUT",
                            help="write per-image values (and a 'mean' row) as CSV (- for "
                                 "stdout, as --json)")
        parser.add_argument("--resume", action="store_true",
                            help="continue the interrupted evaluation that writes the same "
                                 "--json/--csv (same metrics and files): the pairs it scored "
                                 "are kept, their values and the metrics' sums with them "
                                 "(not with FID or clip_diversity, which need every image); "
                                 "a metric on random weights continues when it holds the same "
                                 "ones (allow_random=true draws them from the spec's seed)")
        parser.add_argument("--show", type=int, default=20, metavar="N",
                            help="print per-image rows when there are at most N images (default 20)")
        add_fetch_arguments(parser)
        add_device_argument(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        if args.show < 0:
            raise StylebridgeError(f"--show {args.show}: must be >= 0")
        if args.domain_text is not None:
            check_domain_text(args.domain_text, args.metric)
        for option, out in (("--json", args.json), ("--csv", args.csv)):
            if STREAMS.get(str(out)) == 1:
                refuse_closed_stdout(f"{option} {out}")
        config = EvalConfig(metrics=list(args.metric), pred=list(args.pred),
                            target=list(args.target) if args.target else None,
                            domain_text=args.domain_text, size=args.size, batch=args.batch,
                            device=args.device, json=args.json, csv=args.csv,
                            suffix=args.suffix, resume=args.resume)
        if any(STREAMS.get(str(out)) == 1 for out in (args.json, args.csv)):
            console = cli_console(stderr=True)  # stdout holds the JSON/CSV alone, to be parsed
        report = BatchReport()
        progress = _ConsoleProgress(console)
        try:
            result = evaluate(config, report, progress, ensure_weights=lambda requests:
                              ensure_weights(args, requests, console))
        except (KeyboardInterrupt, MemoryError, OSError):
            progress.stop()
            folder = journal_folder(config)
            if folder is not None and (folder / "state.json").is_file():
                drawn = drawn_in(folder)
                hint = (resume_hint("eval", folder.parent, drawn) if drawn else
                        "the pairs of every finished batch are kept: continue with "
                        "`stylebridge eval ... --resume` (the same options)")
                notice_console(console).print(f"[yellow]{escape(hint)}[/yellow]")
            raise
        finally:
            progress.stop()
        print_result(console, result, args.show)
        for path in result.written:
            if str(path) not in STREAMS:
                console.print(f"[green]wrote[/green] {escape(str(path))}")
        print_batch_report(console, report)
        return result.exit_code


def check_domain_text(text: str, metrics: list[str]) -> None:
    """One line when ``--domain-text`` would change nothing: it is empty, or no ``--metric``
    scores against a prompt it was not given (``clip_quality`` without ``text=`` or
    ``reference=``), as ``adapt --guide`` without ``--featureshift`` is refused.  A spec that
    does not parse is left to the evaluation, which names it."""
    if not text.strip():
        raise StylebridgeError("--domain-text is empty: give the domain's text, e.g. "
                               "--domain-text \"a 3d render in the style of Pixar\"")
    registry = get_registry()
    for spec in metrics:
        try:
            request = parse_metric_spec(spec)
            cls = registry.get("metric", request.name).obj
        except StylebridgeError:
            return
        if cls.with_domain_text(dict(request.options), text) != dict(request.options):
            return
    raise StylebridgeError("--domain-text applies with --metric clip_quality (without text= or "
                           "reference=: the prompt it scores against); without it nothing "
                           "would use it")


@hookimpl
def register_commands(register: Any) -> None:
    register(EvalCommand())
