"""The built-in CLI commands: plugins, info, convert, generate."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from stylebridge.core.interfaces import Command
from stylebridge.core.spec import coerce_option, parse_plugin_spec
from stylebridge.errors import RegistryError, SpecError, StylebridgeError
from stylebridge.registry import KINDS, get_registry, hookimpl


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
            p = sub.add_parser(target.name, help=target.help, description=target.help,
                               epilog=target.epilog or None)
            p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                           help="show full tracebacks instead of one-line errors")
            target.add_arguments(p)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        target = self.targets.get(args.target)
        if target is None:  # pragma: no cover - argparse rejects unknown targets
            raise StylebridgeError(f"unknown {self.command} target {args.target!r}")
        return int(target.run(args, console) or 0)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda[:N]",
                        help="where to run (default: auto = CUDA when available)")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def checkpoint_spec(text: str, what: str) -> tuple[str | None, Path]:
    """``[NAME:]PATH`` → (plugin name or None, path); a path is required."""
    spec = parse_plugin_spec(text, what=what)
    if spec.path is None:
        raise SpecError(f"{what} spec {text!r} names no checkpoint file (expected [NAME:]PATH)")
    if spec.options:
        raise SpecError(f"{what} spec {text!r}: options are not accepted here")
    return spec.name, spec.path


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
            for row in rows:
                table.add_row(kind, row["name"], row["provider"], row["description"])
        console.print(table)
        for fail in data["failed"]:
            console.print(f"[yellow]plugin {fail['provider']} ({fail['entry_point']}) failed to "
                          f"load:[/yellow] {fail['error']}")
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
        table = Table(show_header=False, title=str(args.checkpoint))
        table.add_column("field", style="bold")
        table.add_column("value")
        for key in ("kind", "plugin", "format_version", "n_tensors", "n_parameters", "bytes"):
            value = info[key]
            table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
        table.add_row("dtypes", ", ".join(f"{k}: {v:,}" for k, v in dtypes.items()))
        table.add_row("config", json.dumps(header.config))
        if header.extra:
            table.add_row("extra", json.dumps(header.extra))
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
        with console.status(f"converting {args.src} with {args.kind}"):
            result = converter.convert(args.src, args.dst, **options)
        console.print(f"[green]wrote[/green] {result.path} ({result.kind}/{result.plugin}, "
                      f"{result.n_tensors} tensors)")
        for note in result.notes:
            console.print(f"  note: {note}")
        return 0


_SEEDS_RE = re.compile(r"^\d+(-\d+)?$")


def parse_seeds(text: str) -> list[int]:
    """``"0-7"``, ``"1,5,9"``, ``"0-3,10"`` → list of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not _SEEDS_RE.match(part):
            raise SpecError(f"--seeds {text!r}: expected e.g. 0-7 or 1,5,9")
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if b < a:
            raise SpecError(f"--seeds {text!r}: range {part} is empty")
        seeds.extend(range(a, b + 1))
    if len(seeds) > 100_000:
        raise SpecError(f"--seeds {text!r}: {len(seeds)} seeds is too many")
    return seeds


class GenerateCommand(Command):
    name = "generate"
    help = "sample images from a generator checkpoint (PNG files + a grid)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--generator", "-g", required=True, metavar="[stylegan2:]CKPT",
                            help="generator checkpoint (convert upstream files with `convert`)")
        parser.add_argument("--seeds", default="0-7", help="seeds, e.g. 0-7 or 1,5,9 (default 0-7)")
        parser.add_argument("--truncation", type=float, default=1.0,
                            help="truncation psi in (0, 1]; 1 = none (default)")
        parser.add_argument("--noise", choices=("const", "random"), default="const",
                            help="stored noise buffers (default) or per-seed random noise")
        parser.add_argument("--batch", type=int, default=4, help="images per forward pass")
        parser.add_argument("--out", type=Path, required=True, metavar="DIR")
        add_device_argument(parser)

    def run(self, args: argparse.Namespace, console: Console) -> int:
        import torch
        from rich.progress import Progress

        from stylebridge.core.device import resolve_device
        from stylebridge.core.images import from_generator_range, make_grid, save_png
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
        gen = load_stylegan2(path, device=device).generator
        args.out.mkdir(parents=True, exist_ok=True)
        images = []
        with Progress(console=console, transient=True) as progress, torch.no_grad():
            task = progress.add_task("generating", total=len(seeds))
            for i in range(0, len(seeds), args.batch):
                chunk = seeds[i:i + args.batch]
                z = torch.stack([torch.randn(gen.style_dim, generator=torch.Generator().manual_seed(s))
                                 for s in chunk]).to(device)
                noise = None
                if args.noise == "random":
                    g = torch.Generator().manual_seed(chunk[0] + 1_000_003)
                    noise = [torch.randn(len(chunk), 1, *getattr(gen.noises, f"noise_{k}").shape[2:],
                                         generator=g).to(device) for k in range(gen.num_layers)]
                out = gen([z], truncation=args.truncation, noise=noise, randomize_noise=False)
                out01 = from_generator_range(out).cpu()
                for seed, img in zip(chunk, out01, strict=True):
                    save_png(args.out / f"seed{seed:04d}.png", img)
                    images.append(img)
                progress.advance(task, len(chunk))
        save_png(args.out / "grid.png", make_grid(images))
        console.print(f"[green]wrote[/green] {len(seeds)} images and grid.png to {args.out}")
        return 0


@hookimpl
def register_commands(register: Any) -> None:
    from stylebridge.cli.demo import DemoCommand

    for cmd in (PluginsCommand(), InfoCommand(), ConvertCommand(), GenerateCommand(), DemoCommand()):
        register(cmd)
