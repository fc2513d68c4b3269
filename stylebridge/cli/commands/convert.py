"""``stylebridge convert``: an upstream checkpoint → a stylebridge checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from stylebridge.cli.base import Command
from stylebridge.core.options import coerce_option
from stylebridge.errors import SpecError, StylebridgeError
from stylebridge.registry import get_registry, hookimpl


def parse_options(items: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--option {item!r}: expected KEY=VALUE")
        options[key.strip().replace("-", "_")] = coerce_option(value.strip(), key.strip())
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


@hookimpl
def register_commands(register: Any) -> None:
    register(ConvertCommand())
