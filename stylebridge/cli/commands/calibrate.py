"""``stylebridge calibrate alpha --encoder E --generator G --images DIR --out STATS.safetensors
[--samples 3000] [--fetch]``: fit the alpha-rescaling statistics
(:mod:`stylebridge.pipelines.calibrate`, :mod:`stylebridge.plugins.calibrators.alpha`) and print
alpha per style layer.  The official generator and encoder weights it names and lacks are listed
in one error, or fetched first with ``--fetch``, as ``adapt`` does."""

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
from stylebridge.pipelines.analyze.report import QUANTITIES
from stylebridge.pipelines.calibrate import CalibrateConfig, prepare_calibrate, run_calibrate
from stylebridge.pipelines.training.outputs import RESUME_AND_FORCE
from stylebridge.registry import get_registry, hookimpl


def _calibrator_name(value: str) -> bool:
    """Whether ``value``, read as an ``--images`` path, is a calibrator's name instead (not a
    file or folder that exists)."""
    return value in get_registry().names("calibrator") and not Path(value).exists()


class CalibrateCommand(Command):
    """Fit a calibrator (alpha-rescaling) from an encoder's styles on photos."""

    name = "calibrate"
    help = "fit calibration statistics, e.g. alpha-rescaling of domain offsets for an encoder"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        name = parser.add_argument("calibrator", metavar="NAME",
                                   help="calibrator to fit, e.g. alpha (before --images, or "
                                        "after `--`: a name after --images is read as a path)")
        claim_swallowed(name, _calibrator_name)
        parser.add_argument("--out", type=user_path, required=True, metavar="STATS.safetensors",
                            help="the fitted calibrator file (refused when it exists, unless --force)")
        add_style_means_arguments(parser)
        add_skip_layers_argument(parser, "style layers whose offsets are always switched off")
        add_fit_argument(parser)
        parser.add_argument("--power", type=finite_float, default=-1.0,
                            help="offset scale = alpha ** power: -1 (default) is 1/alpha, the "
                                 "thesis' formula; 1 is alpha, the reading of its example "
                                 "(latents twice as large: \"we double up the offsets power\")")
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
        config = CalibrateConfig(
            **photo_options(args), calibrator=args.calibrator, encoder=args.encoder,
            generator=args.generator, out=args.out, samples=args.samples, seed=args.seed,
            skip_layers=args.skip_layers, fit=args.fit, power=args.power, force=args.force,
            resume=args.resume)
        job = prepare_calibrate(config, ensure_weights=fetch_check(args, console))
        print_random_notices(console, job.random_inputs, encoder=job.encoder.name,
                             generator=job.generator_path)
        with resumable(console, job.journal, "calibrate", args.out), \
                progress_bar(console) as progress:
            try:
                result = run_calibrate(job, progress)
            except StylebridgeError:
                print_batch_report(console, job.report, error_follows=True)
                raise
        calib, n_images, random = result.calibrator, result.n_images, result.random
        gen = job.generator
        alpha, r2 = QUANTITIES["alpha"], QUANTITIES["r2"]
        scale = calib.offset_scale(gen.n_style_layers)
        print_numeric_table(
            console, f"alpha per style layer ({n_images} photos, {args.samples} samples)"
            + (f" [{RANDOM_NOTICE}]" if random else ""),
            ["layer", "name", alpha.header, "offset scale ×", r2.header],
            [[str(layer.index), layer.name, f"{float(calib.alpha[layer.index]):.4g}",
              f"{float(scale[layer.index]):.4g}", f"{float(calib.r2[layer.index]):.3f}"]
             for layer in gen.style_layers()], labels=2)
        for line in (f"{alpha.header}: {alpha.meaning}",
                     f"offset scale ×: what each layer's domain offset is multiplied by "
                     f"(alpha ** {args.power:g}; 0 = switched off)",
                     f"{r2.header}: {r2.meaning}"):
            console.print(Text(line, style="dim"))
        bad = calib.unreliable_layers()
        if bad:
            notice_console(console).print(f"[yellow]layers {escape(str(bad))} have alpha <= {calib.min_alpha} "
                          "(or undefined): they get no domain offset[/yellow]")
        console.print(f"[green]wrote[/green] {escape(str(args.out))}"
                      + (f" [bold yellow]{escape(f'[{RANDOM_NOTICE}]')}[/bold yellow]"
                         if random else ""))
        print_batch_report(console, result.report)
        return result.exit_code


@hookimpl
def register_commands(register: Any) -> None:
    register(CalibrateCommand())


__all__ = ["CalibrateCommand"]
