"""``stylebridge generate``: sample images from a generator checkpoint."""

from __future__ import annotations

import argparse
import math
import re
from typing import Any

from rich.console import Console
from rich.markup import escape

from stylebridge.cli.base import Command
from stylebridge.cli.common import (
    add_compile_argument,
    add_device_argument,
    add_generator_argument,
    add_out_argument,
    add_precision_argument,
    finite_float,
    out_dir,
)
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.limits import MAX_BATCH, check_range
from stylebridge.errors import SpecError, StylebridgeError
from stylebridge.registry import hookimpl
from stylebridge.registry.resolve import load_generator

_SEEDS_RE = re.compile(r"^\d+(-\d+)?$")
# torch's CPU generator (mt19937) keeps only the low 32 bits of a seed for its draws (seeds 0 and
# 2**32 give the same numbers), so larger seeds would silently repeat images
MAX_SEED = 2**32 - 1
MAX_SEEDS = 100_000


def parse_seeds(text: str) -> list[int]:
    """``"0-7"``, ``"1,5,9"``, ``"0-3,10"`` → list of seeds (each in ``0..MAX_SEED``)."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not _SEEDS_RE.match(part):
            raise SpecError(f"--seeds {text!r}: expected e.g. 0-7 or 1,5,9")
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if b < a:
            raise SpecError(f"--seeds {text!r}: range {part} is empty")
        if b > MAX_SEED:
            raise SpecError(f"--seeds {text!r}: seed {b} is out of range (seeds must be in "
                            f"0..{MAX_SEED})")
        if len(seeds) + (b - a + 1) > MAX_SEEDS:  # checked before the range is expanded
            raise SpecError(f"--seeds {text!r}: more than {MAX_SEEDS:,} seeds is too many")
        seeds.extend(range(a, b + 1))
    return seeds


def seed_inputs(seed: int, style_dim: int, noise_shapes: list[tuple[int, ...]] | None,
                ) -> tuple[Any, list[Any] | None]:
    """The z ``[style_dim]`` of one seed and, with ``noise_shapes``, its noise maps
    ``[1, *shape[1:]]``: all drawn from a generator seeded by this seed alone, so an image
    does not depend on the other seeds of its batch (z first, as without noise)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    z = torch.randn(style_dim, generator=g)
    if noise_shapes is None:
        return z, None
    return z, [torch.randn(1, *shape[1:], generator=g) for shape in noise_shapes]


class GenerateCommand(Command):
    name = "generate"
    help = "sample images from a generator checkpoint (PNG files + a grid)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_generator_argument(parser)
        parser.add_argument("--seeds", default="0-7",
                            help=f"seeds in 0..{MAX_SEED}, e.g. 0-7 or 1,5,9 (default 0-7)")
        parser.add_argument("--truncation", type=finite_float, default=1.0,
                            help="truncation psi in (0, 1]; 1 = none (default)")
        parser.add_argument("--noise", choices=("const", "random"), default="const",
                            help="stored noise buffers (default) or random noise drawn from "
                                 "each image's own seed (independent of --batch)")
        parser.add_argument("--batch", type=int, default=4, help=f"images per forward pass (default 4, at most {MAX_BATCH})")
        add_out_argument(parser, "samples")
        add_device_argument(parser)
        add_compile_argument(parser)
        add_precision_argument(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        import torch
        from rich.progress import Progress

        from stylebridge.core.compiled import compile_synthesis
        from stylebridge.core.device import resolve_device
        from stylebridge.core.images import from_generator_range, labelled_grid, make_grid, save_png
        from stylebridge.core.precision import check_precision

        if not 0.0 < args.truncation <= 1.0:
            raise StylebridgeError(f"--truncation {args.truncation}: must be in (0, 1]")
        check_range("--batch", args.batch, 1, MAX_BATCH)
        seeds = parse_seeds(args.seeds)
        args.out = out_dir(args.out, "samples")
        device = resolve_device(args.device)
        check_precision(args.precision, device)
        gen, provenance = load_generator(args.generator, device)
        path, random = provenance.path, provenance.random
        gen.set_precision(args.precision)
        compile_synthesis(gen, args.compile)
        if random:
            console.print("[bold yellow]" + escape(
                f"{RANDOM_NOTICE}: {path} is a random-weight generator; the images show no "
                "trained model") + "[/bold yellow]")
        noise_shapes = None
        if args.noise == "random":
            noise_shapes = [tuple(getattr(gen.noises, f"noise_{k}").shape)
                            for k in range(gen.num_layers)]
        args.out.mkdir(parents=True, exist_ok=True)
        images = []
        with Progress(console=console, transient=True,
                      disable=not console.is_terminal) as progress, torch.no_grad():
            task = progress.add_task("generating", total=len(seeds))
            for i in range(0, len(seeds), args.batch):
                chunk = seeds[i:i + args.batch]
                drawn = [seed_inputs(s, gen.style_dim, noise_shapes) for s in chunk]
                z = torch.stack([d[0] for d in drawn]).to(device)
                noise = None
                if noise_shapes is not None:
                    noise = [torch.cat([d[1][k] for d in drawn]).to(device)  # type: ignore[index]
                             for k in range(len(noise_shapes))]
                out = gen([z], truncation=args.truncation, noise=noise, randomize_noise=False)
                out01 = from_generator_range(out).cpu()
                for seed, img in zip(chunk, out01, strict=True):
                    save_png(args.out / f"seed{seed:04d}.png", img)
                    images.append(img)
                progress.advance(task, len(chunk))
        if random:  # a red notice under the grid (blank column header: the grid has no labels)
            ncol = min(len(images), max(1, math.ceil(math.sqrt(len(images)))))
            grid = labelled_grid([images], [""] * ncol,
                                 notice=f"{RANDOM_NOTICE}: random-weight generator, not a "
                                        "trained model")
        else:
            grid = make_grid(images)
        save_png(args.out / "grid.png", grid)
        console.print(f"[green]wrote[/green] {len(seeds)} images and grid.png to "
                      f"{escape(str(args.out))}"
                      + (f" [bold yellow]{escape(f'[{RANDOM_NOTICE}]')}[/bold yellow]"
                         if random else ""))
        return 0


@hookimpl
def register_commands(register: Any) -> None:
    register(GenerateCommand())
