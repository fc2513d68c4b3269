"""``stylebridge generate``: sample images from a generator checkpoint, and render the
samples through domains (:mod:`stylebridge.pipelines.generate`)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape

from stylebridge.cli.base import Command
from stylebridge.cli.commands.weights import add_fetch_arguments, fetch_check
from stylebridge.cli.common import (
    add_compile_argument,
    add_device_argument,
    add_generator_argument,
    add_out_argument,
    add_precision_argument,
    finite_float,
    finite_floats,
    user_spec,
)
from stylebridge.cli.options import notice_console, print_random_notices, progress_bar
from stylebridge.cli.resume_args import add_resume_argument, resumable, resume_out
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.limits import MAX_BATCH
from stylebridge.pipelines.adapter import MAX_STRENGTH
from stylebridge.pipelines.generate import MAX_SEED, GenerateConfig, generate, parse_seeds
from stylebridge.registry import hookimpl

__all__ = ["GenerateCommand", "parse_seeds"]


class GenerateCommand(Command):
    name = "generate"
    help = "sample images from a generator checkpoint (PNG files + a grid), also through domains"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_generator_argument(parser)
        parser.add_argument("--seeds", default="0-7",
                            help=f"seeds in 0..{MAX_SEED}, e.g. 0-7 or 1,5,9 (default 0-7)")
        parser.add_argument("--truncation", type=finite_float, default=1.0,
                            help="truncation psi in [0, 1]; 1 = none (default), 0 = the "
                                 "average w (the mean face)")
        parser.add_argument("--noise", choices=("const", "random"), default="const",
                            help="stored noise buffers (default) or random noise drawn from "
                                 "each image's own seed (the same noise whatever --batch)")
        parser.add_argument("--method", "-m", type=user_spec, action="append", default=[],
                            metavar="[NAME:]DOMAIN.safetensors|DOMAIN",
                            help="also render every sample through this domain (as `adapt "
                                 "--method` takes it): seed0000_NAME.png and a labelled grid, "
                                 "a row per seed; repeatable")
        parser.add_argument("--strength", type=finite_floats, default=[1.0], metavar="K[,K...]",
                            help="with --method: how much of each domain's change (1 = as "
                                 "trained, default; 0 = the sample); several values render "
                                 f"each domain once per value (NAME@K, and NAME at 1; |K| <= "
                                 f"{MAX_STRENGTH:g})")
        parser.add_argument("--batch", type=int, default=4,
                            help=f"images per forward pass (default 4, at most {MAX_BATCH}); "
                                 "another --batch may change a pixel by 1/255 (rounding)")
        add_out_argument(parser, "samples")
        add_resume_argument(parser, "seeds")
        add_fetch_arguments(parser)
        add_device_argument(parser)
        add_compile_argument(parser)
        add_precision_argument(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        config = GenerateConfig(
            generator=args.generator, out=resume_out(args, "samples", console, "generate"),
            seeds=args.seeds, truncation=args.truncation, noise=args.noise, batch=args.batch,
            device=args.device, compile=args.compile, precision=args.precision,
            methods=list(args.method), strength=args.strength, resume=args.resume)

        def notice(line: str) -> None:
            notice_console(console).print(f"[yellow]{escape(line)}[/yellow]")

        with resumable(console, None, "generate", config.out), progress_bar(console) as progress:
            result = generate(config, progress, notice,
                              ensure_weights=fetch_check(args, console))
        print_random_notices(console, result.random_inputs, generator=result.generator_path)
        n = sum(len(f) for f in result.files.values())
        console.print(f"[green]wrote[/green] {n} images and grid.png to "
                      f"{escape(str(config.out))}"
                      + (f" [bold yellow]{escape(f'[{RANDOM_NOTICE}]')}[/bold yellow]"
                         if result.random_parts else ""))
        return 0


@hookimpl
def register_commands(register: Any) -> None:
    register(GenerateCommand())
