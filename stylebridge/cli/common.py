"""The built-in CLI commands: plugins, info, convert, generate."""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stylebridge.cli.base import Command
from stylebridge.core.checkpoint import RANDOM_NOTICE
from stylebridge.core.options import coerce_option
from stylebridge.errors import RegistryError, SpecError, StylebridgeError
from stylebridge.registry import KINDS, get_registry, hookimpl
from stylebridge.registry.spec import parse_plugin_spec


@dataclass(frozen=True)
class Target:
    """One ``stylebridge COMMAND TARGET`` entry (e.g. ``train domain``)."""

    name: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Any], int]
    help: str = ""
    epilog: str = ""


class TargetGroup:
    """The targets of a command such as ``train`` or ``reproduce``, added by plugins.

    A plugin calls :meth:`register` when its module is imported (the registry imports
    every plugin module before the CLI parser is built).  Registering the same ``run``
    twice is a no-op; another one under a taken name is an error.
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.targets: dict[str, Target] = {}

    def register(self, name: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                 run: Callable[[argparse.Namespace, Any], int], *, help: str = "",
                 epilog: str = "") -> None:
        old = self.targets.get(name)
        if old is not None and old.run is not run:
            raise RegistryError(f"{self.command} target {name!r} is registered twice")
        self.targets[name] = Target(name, add_arguments, run, help, epilog)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
        for target in sorted(self.targets.values(), key=lambda t: t.name):
            # --debug is added to every sub-parser by the CLI (stylebridge.cli.main)
            p = sub.add_parser(target.name, help=target.help, description=target.help,
                               epilog=target.epilog or None)
            target.add_arguments(p)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        target = self.targets.get(args.target)
        if target is None:  # pragma: no cover - argparse rejects unknown targets
            raise StylebridgeError(f"unknown {self.command} target {args.target!r}")
        return int(target.run(args, console) or 0)


def add_images_argument(parser: argparse.ArgumentParser) -> None:
    """The positional ``IMAGE...`` of the batch commands (files or folders)."""
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files or folders (their image files, sorted)")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda[:N]",
                        help="where to run (default: auto = CUDA when available)")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def checkpoint_spec(text: str, what: str) -> tuple[str | None, Path]:
    """``[NAME:]PATH`` → (plugin name or None, path).

    Without a path, ``NAME`` may name installed weights of this kind (``stylebridge
    weights``): a plugin (``--generator stylegan2`` → the installed FFHQ generator) or a
    weights entry (``--generator stylegan2-ffhq-1024``); otherwise the error says how to
    get them.
    """
    spec = parse_plugin_spec(text, what=what)
    if spec.options:
        raise SpecError(f"{what} spec {text!r}: options are not accepted here")
    if spec.path is not None:
        return spec.name, spec.path
    from stylebridge.registry.weights import WeightsManager

    manager = WeightsManager()
    entry = manager.entries.get(spec.name or "")
    if entry is not None and entry.kind == what:
        if manager.installed(entry.name):
            return entry.plugin, manager.path(entry.name)
        raise SpecError(f"{what} {text!r}: {manager.missing_message(entry)}")
    path = manager.resolve(what, spec.name or "")
    if path is not None:
        return spec.name, path
    known = manager.candidates(what, spec.name or "")
    if known:
        raise SpecError(f"{what} {text!r}: no {what} weights are installed; "
                        f"{manager.missing_message(known[0])}")
    raise SpecError(f"{what} spec {text!r} names no checkpoint file (expected [NAME:]PATH)")


class PluginsCommand(Command):
    name = "plugins"
    help = "list every registered plugin by kind, with the package that provides it"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, args: argparse.Namespace, console: Console) -> int:
        registry = get_registry()
        data: dict[str, Any] = {
            kind: [{"name": e.name, "provider": e.provider, "description": e.description}
                   for e in (registry.get(kind, n) for n in registry.names(kind))]
            for kind in KINDS
        }
        data["failed"] = [{"provider": f.provider, "entry_point": f.entry_point, "error": f.error}
                          for f in registry.failures]
        if args.json:
            print_json(data)
            return 0
        table = Table(title="stylebridge plugins")
        for col in ("kind", "name", "provider", "description"):
            table.add_column(col)
        for kind in KINDS:
            rows = data[kind]
            if not rows:
                table.add_row(kind, "[dim](none yet)[/dim]", "", "")
            for row in rows:  # plain text: a "[word]" in a description is no rich tag
                table.add_row(kind, escape(row["name"]), escape(row["provider"]),
                              escape(row["description"] or ""))
        console.print(table)
        for fail in data["failed"]:
            console.print(f"[yellow]plugin {escape(str(fail['provider']))} "
                          f"({escape(str(fail['entry_point']))}) failed to "
                          f"load:[/yellow] {escape(str(fail['error']))}")
        return 0


class InfoCommand(Command):
    name = "info"
    help = "show a stylebridge checkpoint's header, tensor and parameter counts"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("checkpoint", metavar="[NAME:]CKPT",
                            help="checkpoint file; with NAME:, also check that it holds that plugin")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, args: argparse.Namespace, console: Console) -> int:
        from stylebridge.core.checkpoint import load_checkpoint

        name, path = checkpoint_spec(args.checkpoint, "checkpoint")
        args.checkpoint = path
        header, tensors = load_checkpoint(path, plugin=name)
        dtypes: dict[str, int] = {}
        for t in tensors.values():
            dtypes[str(t.dtype).removeprefix("torch.")] = dtypes.get(
                str(t.dtype).removeprefix("torch."), 0) + t.numel()
        info = {
            "path": str(args.checkpoint),
            "bytes": args.checkpoint.stat().st_size,
            "format_version": header.version,
            "kind": header.kind,
            "plugin": header.plugin,
            "config": header.config,
            "extra": header.extra,
            "n_tensors": len(tensors),
            "n_parameters": sum(t.numel() for t in tensors.values()),
            "dtypes": dtypes,
        }
        if args.json:
            print_json(info)
            return 0
        table = Table(show_header=False, title=escape(str(args.checkpoint)))
        table.add_column("field", style="bold")
        table.add_column("value")
        for key in ("kind", "plugin", "format_version", "n_tensors", "n_parameters", "bytes"):
            value = info[key]
            table.add_row(key, f"{value:,}" if isinstance(value, int) else escape(str(value)))
        table.add_row("dtypes", ", ".join(f"{k}: {v:,}" for k, v in dtypes.items()))
        table.add_row("config", escape(json.dumps(header.config)))
        if header.extra:
            table.add_row("extra", escape(json.dumps(header.extra)))
        console.print(table)
        return 0


def parse_options(items: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--option {item!r}: expected KEY=VALUE")
        options[key.strip().replace("-", "_")] = coerce_option(value.strip())
    return options


class ConvertCommand(Command):
    name = "convert"
    help = "convert an upstream checkpoint into a stylebridge checkpoint"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("kind", metavar="KIND",
                            help="converter name (see `stylebridge plugins`), e.g. "
                                 "stylegan2-rosinality, stylegan2-nvlabs")
        parser.add_argument("src", type=Path, metavar="SRC")
        parser.add_argument("dst", type=Path, metavar="DST")
        parser.add_argument("--option", "-o", action="append", metavar="KEY=VALUE",
                            help="converter option, repeatable (e.g. expect_size=1024, "
                                 "lr_mlp=0.01, discriminator=false)")
        parser.add_argument("--force", action="store_true", help="overwrite DST if it exists")

    def run(self, args: argparse.Namespace, console: Console) -> int:
        converter = get_registry().get("converter", args.kind).obj
        options = parse_options(args.option)
        if not args.src.exists():
            raise StylebridgeError("no such file", path=args.src)
        if args.dst.exists() and not args.force:
            raise StylebridgeError("already exists (use --force to overwrite)", path=args.dst)
        if args.dst.resolve() == args.src.resolve():
            raise StylebridgeError("DST is the same file as SRC", path=args.dst)
        with console.status(f"converting {escape(str(args.src))} with {escape(args.kind)}"):
            result = converter.convert(args.src, args.dst, **options)
        console.print(f"[green]wrote[/green] {escape(str(result.path))} "
                      f"({escape(f'{result.kind}/{result.plugin}')}, {result.n_tensors} tensors)")
        for note in result.notes:
            console.print(f"  note: {escape(str(note))}")
        return 0


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
        parser.add_argument("--generator", "-g", required=True, metavar="[stylegan2:]CKPT",
                            help="generator checkpoint (convert upstream files with `convert`)")
        parser.add_argument("--seeds", default="0-7",
                            help=f"seeds in 0..{MAX_SEED}, e.g. 0-7 or 1,5,9 (default 0-7)")
        parser.add_argument("--truncation", type=float, default=1.0,
                            help="truncation psi in (0, 1]; 1 = none (default)")
        parser.add_argument("--noise", choices=("const", "random"), default="const",
                            help="stored noise buffers (default) or random noise drawn from "
                                 "each image's own seed (independent of --batch)")
        parser.add_argument("--batch", type=int, default=4, help="images per forward pass")
        parser.add_argument("--out", type=Path, required=True, metavar="DIR")
        add_device_argument(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        import torch
        from rich.markup import escape
        from rich.progress import Progress

        from stylebridge.core.checkpoint import is_random_weights
        from stylebridge.core.device import resolve_device
        from stylebridge.core.images import from_generator_range, labelled_grid, make_grid, save_png
        from stylebridge.core.stylegan2.checkpoint import load_stylegan2

        if not 0.0 < args.truncation <= 1.0:
            raise StylebridgeError(f"--truncation {args.truncation}: must be in (0, 1]")
        if args.batch < 1:
            raise StylebridgeError(f"--batch {args.batch}: must be >= 1")
        seeds = parse_seeds(args.seeds)
        device = resolve_device(args.device)
        name, path = checkpoint_spec(args.generator, "generator")
        if name not in (None, "stylegan2"):
            raise StylebridgeError(f"--generator {args.generator!r}: unknown generator {name!r} "
                                   "(known: stylegan2)")
        ckpt = load_stylegan2(path, device=device)
        gen = ckpt.generator
        random = is_random_weights(ckpt.header.extra)
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
        with Progress(console=console, transient=True) as progress, torch.no_grad():
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
    for cmd in (PluginsCommand(), InfoCommand(), ConvertCommand(), GenerateCommand()):
        register(cmd)
