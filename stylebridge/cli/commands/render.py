"""``stylebridge render``: saved inversions through more domains, without the photos.

``stylebridge render INVERSION.safetensors|DIR... --method DOMAIN [--method ...]
[--calibrate ...] [--skip-layers ...] [--strength K,...] [--featureshift MODEL | --renderer
NAME[:CKPT][:k=v,...]] [--encoder E] [--generator G] [--out DIR] [--resume]``: the
:mod:`stylebridge.pipelines.render` pipeline over the ``<stem>_inversion.safetensors`` files that ``invert``/``adapt
--save-latents`` write (outputs described there).  Exit code 3 when some files were skipped,
2 when all were.  ``--resume --out DIR`` continues an interrupted run
(:mod:`stylebridge.pipelines.resume`).
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape

from stylebridge.cli.base import Command
from stylebridge.cli.commands.adapt import add_domain_arguments
from stylebridge.cli.commands.weights import add_fetch_arguments, ensure_weights
from stylebridge.cli.common import (
    add_compile_argument,
    add_device_argument,
    add_out_argument,
    add_precision_argument,
    user_path_text,
    user_spec,
)
from stylebridge.cli.options import (
    grid_words,
    notice_console,
    print_batch_report,
    print_random_notices,
    progress_bar,
)
from stylebridge.cli.resume_args import resumable, resume_out
from stylebridge.core.limits import MAX_BATCH
from stylebridge.pipelines.inversion_file import LATENTS_SUFFIX
from stylebridge.pipelines.photos import DEFAULT_BATCH
from stylebridge.pipelines.render import RenderConfig, prepare_render, run_render
from stylebridge.registry import hookimpl


class RenderCommand(Command):
    """Render saved inversions through domain methods, without the photos."""

    name = "render"
    help = ("render saved inversions (invert/adapt --save-latents) through more domains, "
            "without reading or encoding the photos again")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("latents", type=user_path_text, nargs="+", metavar="INVERSION",
                            help=f"inversion files, or folders of *{LATENTS_SUFFIX} (written "
                                 "by invert/adapt --save-latents)")
        add_domain_arguments(parser, "render domains through a trained FeatureShift, guided by "
                                     "the inversions' own latents (a model trained with "
                                     "another guide encoder needs the photos: adapt)",
                             "one that reads guide latents is guided by the inversions' own "
                             "(one trained with another guide encoder needs the photos: adapt)")
        parser.add_argument("--encoder", "-e", type=user_spec, metavar="NAME[:CKPT][:k=v,...]",
                            help="the encoder that rebuilds what a file cannot hold (StyleRes's "
                                 "gated residual); default: the one the files were saved with, "
                                 "loaded only for such files")
        parser.add_argument("--generator", "-g", type=user_spec, metavar="[stylegan2:]CKPT",
                            help="generator (default: the one the files record, when that file "
                                 "exists, else the installed FFHQ generator)")
        parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                            help=f"inversions per forward pass (default {DEFAULT_BATCH}, at "
                                 f"most {MAX_BATCH})")
        add_out_argument(parser, "rendered")
        parser.add_argument("--resume", action="store_true",
                            help="continue the interrupted run in --out DIR (same inversion "
                                 "files and options): the files of its finished batches are "
                                 "kept, and render.json and grid.png come out as one "
                                 "uninterrupted run's; --batch/--device/--compile may change; "
                                 "a model on random weights built without a file is refused")
        add_fetch_arguments(parser)
        add_device_argument(parser)
        add_compile_argument(parser)
        add_precision_argument(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        out = resume_out(args, "rendered", console, "render")
        config = RenderConfig(latents=args.latents, methods=args.method, out=out,
                              generator=args.generator, encoder=args.encoder,
                              calibrate=args.calibrate, skip_layers=args.skip_layers,
                              featureshift=args.featureshift, renderer=args.renderer,
                              strength=args.strength,
                              batch=args.batch, device=args.device, compile=args.compile,
                              precision=args.precision, resume=args.resume)
        job = prepare_render(config, lambda requests: ensure_weights(args, requests, console))
        for note in job.notes:
            notice_console(console).print(f"[yellow]{escape(note)}[/yellow]")
        encoder = job.adapter.encoder
        print_random_notices(console, job.random_inputs,
                             encoder=encoder.name if encoder is not None else "",
                             generator=job.generator_path)
        said = len(job.notes)
        with resumable(console, job.journal, "render", out), progress_bar(console) as progress:
            result = run_render(job, progress)
        for note in job.notes[said:]:  # added while it ran (a --compile fall-back to eager)
            notice_console(console).print(f"[yellow]{escape(note)}[/yellow]")
        if result.grid is not None:
            console.print(f"[green]wrote[/green] {len(result.report.done)} inversion(s) × "
                          f"{result.n_images} images and {grid_words(len(result.report.done))} "
                          f"to {escape(str(out))}")
        print_batch_report(console, result.report, listed_in=str(out / "render.json"))
        return result.exit_code


@hookimpl
def register_commands(register: Any) -> None:
    register(RenderCommand())


__all__ = ["RenderCommand"]
