"""``stylebridge invert``: photos → encoder → StyleGAN2 reconstructions (+ saved latents).

The :mod:`stylebridge.pipelines.invert` pipeline; faces are FFHQ-aligned first (``--align``,
the default; ``--no-align`` for aligned inputs).  Exit code 3 when some inputs were skipped,
2 when all were.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape

from stylebridge.cli.base import Command
from stylebridge.cli.commands.adapt import add_metric_argument, print_output_metrics
from stylebridge.cli.commands.weights import add_fetch_arguments, ensure_weights
from stylebridge.cli.common import (
    add_compile_argument,
    add_images_argument,
    add_out_argument,
    add_precision_argument,
)
from stylebridge.cli.options import (
    add_photo_arguments,
    grid_words,
    notice_console,
    print_batch_report,
    print_random_notices,
    progress_bar,
)
from stylebridge.cli.photo_args import photo_options
from stylebridge.cli.resume_args import add_resume_argument, resumable, resume_out
from stylebridge.pipelines.invert import InvertConfig, prepare_invert, run_invert
from stylebridge.pipelines.output_metrics import DEFAULT_METRICS
from stylebridge.registry import hookimpl


class InvertCommand(Command):
    """Invert face photos with an encoder and render them with a StyleGAN2 generator."""

    name = "invert"
    help = "encode face photos with an encoder and render them with a StyleGAN2 generator"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_images_argument(parser)
        add_metric_argument(parser, "the inversion")
        add_out_argument(parser, "inverted")
        add_fetch_arguments(parser)
        parser.add_argument("--save-latents", action="store_true",
                            help="also write <stem>_inversion.safetensors (w+ and features; "
                                 "`stylebridge render` takes them through domains)")
        add_photo_arguments(parser)
        add_resume_argument(parser)
        add_compile_argument(parser)
        add_precision_argument(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        out = resume_out(args, "inverted", console, "invert")
        config = InvertConfig(**photo_options(args), encoder=args.encoder,
                              generator=args.generator, out=out,
                              save_latents=args.save_latents, compile=args.compile,
                              precision=args.precision,
                              metrics=tuple(args.metric or DEFAULT_METRICS),
                              resume=args.resume)
        job = prepare_invert(config, lambda requests: ensure_weights(args, requests, console))
        print_random_notices(console, job.random_inputs, encoder=job.encoder_name,
                             generator=job.generator_path)
        with resumable(console, job.journal, "invert", out), progress_bar(console) as progress:
            result = run_invert(job, progress)
        report = result.report
        if result.grid is not None:
            console.print(f"[green]wrote[/green] {len(report.done)} inversion(s) and "
                          f"{grid_words(len(report.done))} to {escape(str(out))}")
        if result.metrics is not None:
            print_output_metrics(console, result.metrics, {}, random=bool(job.parts),
                                 n_photos=len(report.done), out=out)
            for note in result.metric_notes:  # a note, as every command says one: on stderr
                notice_console(console).print(f"[yellow]note:[/yellow] {escape(note)}")
        print_batch_report(console, report, listed_in=str(out / "invert.json"))
        return result.exit_code


@hookimpl
def register_commands(register: Any) -> None:
    register(InvertCommand())


__all__ = ["InvertCommand"]
