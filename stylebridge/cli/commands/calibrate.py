"""``stylebridge calibrate NAME --encoder E --generator G --images DIR --out STATS.safetensors
[--samples 3000] [--fetch]``: fit a calibrator, e.g. the alpha-rescaling statistics
(:mod:`stylebridge.pipelines.calibrate`, :mod:`stylebridge.plugins.calibrators.alpha`), and print
its table (``Calibrator.fit_report``: alpha per style layer), or for a calibrator without one
its offset scale per style layer.  ``--skip-layers``, ``--fit`` and ``--power`` go to the
calibrators that declare them (``Calibrator.fit_options``) and are refused for the others.  The
official generator and encoder weights it names and lacks are listed in one error, or fetched
first with ``--fetch``, as ``adapt`` does."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from stylebridge.cli.base import Command
from stylebridge.cli.commands.weights import add_fetch_arguments, fetch_check
from stylebridge.cli.common import claim_swallowed, finite_float, print_numeric_table, user_path
from stylebridge.cli.options import (
    add_fit_argument,
    add_photo_arguments,
    add_skip_layers_argument,
    add_style_means_arguments,
    notice_console,
    print_batch_report,
    print_random_notices,
    progress_bar,
)
from stylebridge.cli.photo_args import photo_options
from stylebridge.cli.resume_args import resumable
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.calibrate import (
    CalibrateConfig,
    CalibrateJob,
    CalibrateResult,
    prepare_calibrate,
    run_calibrate,
)
from stylebridge.pipelines.training.outputs import RESUME_AND_FORCE
from stylebridge.registry import get_registry, hookimpl


def _calibrator_name(value: str) -> bool:
    """Whether ``value``, read as an ``--images`` path, is a calibrator's name instead (not a
    file or folder that exists)."""
    return value in get_registry().names("calibrator") and not Path(value).exists()


class CalibrateCommand(Command):
    """Fit a calibrator (e.g. alpha-rescaling) from an encoder's styles on photos."""

    name = "calibrate"
    help = "fit calibration statistics, e.g. alpha-rescaling of domain offsets for an encoder"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        name = parser.add_argument("calibrator", metavar="NAME",
                                   help="calibrator to fit, e.g. alpha (before --images, or "
                                        "after `--`: a name after --images is read as a path; "
                                        "`stylebridge docs calibration`)")
        claim_swallowed(name, _calibrator_name)
        parser.add_argument("--out", type=user_path, required=True, metavar="STATS.safetensors",
                            help="the fitted calibrator file (refused when it exists, unless --force)")
        add_style_means_arguments(parser)
        add_skip_layers_argument(parser, "style layers whose offsets are always switched off "
                                         "(calibrators that take it, e.g. alpha)")
        add_fit_argument(parser, "; alpha only")
        parser.add_argument("--power", type=finite_float, default=None,
                            help="alpha only: offset scale = alpha ** power: -1 (default) is "
                                 "1/alpha, the thesis' formula; 1 is alpha, the reading of its "
                                 "example (latents twice as large: \"we double up the offsets "
                                 "power\")")
        # None: not given (refused for a calibrator that does not take it, not passed to it)
        parser.set_defaults(skip_layers=None, fit=None)
        parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
        parser.add_argument("--resume", action="store_true",
                            help="continue the interrupted run that writes the same --out (same "
                                 "photos, encoder, generator): the photos it encoded are kept "
                                 "as their style sums; --batch/--device may change")
        add_fetch_arguments(parser)
        add_photo_arguments(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        if args.resume and args.force:  # as train domain: --force was silently ignored
            raise StylebridgeError(RESUME_AND_FORCE)
        given = {key: getattr(args, key) for key in ("skip_layers", "fit", "power")
                 if getattr(args, key) is not None}
        config = CalibrateConfig(
            **photo_options(args), calibrator=args.calibrator, encoder=args.encoder,
            generator=args.generator, out=args.out, samples=args.samples, seed=args.seed,
            force=args.force, resume=args.resume, **given)
        job = prepare_calibrate(config, ensure_weights=fetch_check(args, console),
                                explicit=set(given))
        print_random_notices(console, job.random_inputs, encoder=job.encoder.name,
                             generator=job.generator_path)
        with resumable(console, job.journal, "calibrate", args.out), \
                progress_bar(console) as progress:
            try:
                result = run_calibrate(job, progress)
            except StylebridgeError:
                print_batch_report(console, job.report, error_follows=True)
                raise
        random = result.random
        counts = (f" ({result.n_images} photos, {args.samples} samples)"
                  + (f" [{RANDOM_NOTICE}]" if random else ""))
        report = result.fit_report
        if report is not None:  # the calibrator's own table (alpha: alpha per style layer)
            print_numeric_table(console, report.title + counts, list(report.header),
                                [list(row) for row in report.rows], labels=report.labels)
            for line in report.notes:
                console.print(Text(line, style="dim"))
        warnings = list(report.warnings) if report is not None else []
        if report is None:
            _print_summary(console, job, result, counts)
        if not warnings and result.unreliable_layers:
            warnings = [f"layers {result.unreliable_layers} get no domain offset: {job.label} "
                        "switches them off"]
        for line in warnings:
            notice_console(console).print(f"[yellow]{escape(line)}[/yellow]")
        console.print(f"[green]wrote[/green] {escape(str(args.out))}"
                      + (f" [bold yellow]{escape(f'[{RANDOM_NOTICE}]')}[/bold yellow]"
                         if random else ""))
        print_batch_report(console, result.report)
        return result.exit_code


def _print_summary(console: Console, job: CalibrateJob, result: CalibrateResult,
                   counts: str) -> None:
    """The summary of a calibrator without a ``fit_report``: its offset scale per style
    layer, or one line saying it sets none."""
    name = job.config.calibrator
    if result.offset_scale is None:
        console.print(Text(f"{name}: no per-layer offset scale{counts}"))
        return
    print_numeric_table(
        console, f"{name} offset scale per style layer{counts}",
        ["layer", "name", "offset scale ×"],
        [[str(layer.index), layer.name, f"{result.offset_scale[layer.index]:.4g}"]
         for layer in job.generator.style_layers()], labels=2)
    console.print(Text("offset scale ×: what each layer's domain offset is multiplied by "
                       "(0 = switched off)", style="dim"))


@hookimpl
def register_commands(register: Any) -> None:
    register(CalibrateCommand())


__all__ = ["CalibrateCommand"]
