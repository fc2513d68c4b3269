"""``stylebridge eval``: the command line of :mod:`stylebridge.pipelines.evaluate`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stylebridge.cli.base import Command
from stylebridge.cli.common import add_device_argument
from stylebridge.cli.options import ConsoleBars, print_batch_report
from stylebridge.core.batch import BatchReport
from stylebridge.core.limits import MAX_BATCH, MAX_IMAGE_SIZE
from stylebridge.pipelines.evaluate import (
    EvalConfig,
    EvalProgress,
    EvalResult,
    evaluate,
    journal_folder,
)
from stylebridge.pipelines.resume import drawn_in, resume_hint
from stylebridge.registry import hookimpl


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"


class _ConsoleProgress(ConsoleBars, EvalProgress):
    """Notes as yellow lines, a transient progress bar while the predictions are scored."""

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]note:[/yellow] {escape(text)}")

    def start(self, total: int) -> None:
        self._task("evaluating", total)

    def advance(self, n: int) -> None:  # type: ignore[override]
        ConsoleBars.advance(self, "evaluating", n)


def print_result(console: Console, result: EvalResult, show: int) -> None:
    """The table (per-image rows when there are at most ``show`` images, then the means) and
    each metric's notes."""
    rows, means = result.rows, result.means
    per_image, random_cols = set(result.per_image_columns), result.random_columns
    table = Table(title=f"stylebridge eval: {len(rows)} image(s)")
    table.add_column("image")
    for col in means:  # "ssim[ssim:gaussian=true]" is a label, not rich markup
        table.add_column(escape(col) + (" (RANDOM WEIGHTS)" if col in random_cols else ""),
                         justify="right")
    if len(rows) <= show:
        for row in rows:
            table.add_row(escape(row["name"]), *(_fmt(row[c]) if c in per_image and c in row
                                                 else "" for c in means))
        table.add_section()
    table.add_row("[bold]mean[/bold]", *(f"[bold]{_fmt(v)}[/bold]" for v in means.values()))
    console.print(table)
    for metric in result.metrics:
        for note in metric.notes:
            style = "bold red" if note.startswith("RANDOM") else "yellow"
            console.print(f"[{style}]{escape(metric.text)}:[/{style}] {escape(note)}")


class EvalCommand(Command):
    name = "eval"
    help = "evaluate predictions against targets (mse, psnr, ssim, lpips, id, fid, clip_*)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--metric", "-m", action="append", required=True,
                            metavar="NAME[:k=v,...]",
                            help="metric, repeatable: mse, psnr, ssim[:gaussian=true], "
                                 "lpips[:net=vgg,backbone=PATH], "
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
        parser.add_argument("--pred", required=True, nargs="+", metavar="DIR|FILE",
                            help="predicted images, or folders of them")
        parser.add_argument("--target", nargs="+", metavar="DIR|FILE",
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
                            help=f"resize every image to N×N first (8..{MAX_IMAGE_SIZE}; default: targets' size; "
                                 "predictions of another size are resized to their target)")
        parser.add_argument("--batch", type=int, default=8, help=f"images per batch (default 8, at most {MAX_BATCH})")
        parser.add_argument("--json", type=Path, metavar="OUT", help="write all values as JSON")
        parser.add_argument("--csv", type=Path, metavar="OUT",
                            help="write per-image values (and a 'mean' row) as CSV")
        parser.add_argument("--resume", action="store_true",
                            help="continue the interrupted evaluation that writes the same "
                                 "--json/--csv (same metrics and files): the pairs it scored "
                                 "are kept, their values and the metrics' sums with them "
                                 "(not with FID or clip_diversity, which need every image)")
        parser.add_argument("--show", type=int, default=20, metavar="N",
                            help="print per-image rows when there are at most N images (default 20)")
        add_device_argument(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        config = EvalConfig(metrics=list(args.metric), pred=list(args.pred),
                            target=list(args.target) if args.target else None,
                            domain_text=args.domain_text, size=args.size, batch=args.batch,
                            device=args.device, json=args.json, csv=args.csv,
                            suffix=args.suffix, resume=args.resume)
        report = BatchReport()
        progress = _ConsoleProgress(console)
        try:
            result = evaluate(config, report, progress)
        except (KeyboardInterrupt, MemoryError, OSError):
            progress.stop()
            folder = journal_folder(config)
            if folder is not None and (folder / "state.json").is_file():
                drawn = drawn_in(folder)
                hint = (resume_hint("eval", folder.parent, drawn) if drawn else
                        "the pairs of every finished batch are kept: continue with "
                        "`stylebridge eval ... --resume` (the same options)")
                console.print(f"[yellow]{escape(hint)}[/yellow]")
            raise
        finally:
            progress.stop()
        print_result(console, result, args.show)
        for path in result.written:
            console.print(f"[green]wrote[/green] {escape(str(path))}")
        print_batch_report(console, report)
        return result.exit_code


@hookimpl
def register_commands(register: Any) -> None:
    register(EvalCommand())
