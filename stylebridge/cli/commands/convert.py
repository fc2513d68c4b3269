"""``stylebridge convert``: an upstream checkpoint → a stylebridge checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from stylebridge.cli.base import Command
from stylebridge.cli.common import user_path, user_spec
from stylebridge.core.options import coerce_option
from stylebridge.core.pickle_scan import named_refusals
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




def check_outputs(converter: Any, src: Path, dst: Path, options: dict[str, Any], *,
                  force: bool) -> None:
    """Every file the conversion writes (DST and the converter's ``output_options``, such as
    ``generator=PATH``) is new or ``--force``d, and none is SRC or another output: a
    ``-o generator=`` once replaced the upstream file it was reading, without a word."""
    outputs = [("DST", dst)] + [(f"-o {key}", Path(str(options[key])))
                                for key in sorted(converter.output_options) if options.get(key)]
    seen: dict[Path, str] = {}
    for label, path in outputs:
        where = path.resolve()
        if where == src.resolve():
            raise StylebridgeError(f"{label} is the same file as SRC", path=path)
        if where in seen:
            raise StylebridgeError(f"{label} is the same file as {seen[where]}", path=path)
        seen[where] = label
        if path.is_dir():
            raise StylebridgeError(f"{label} is a folder; give a file name", path=path)
        if path.exists() and not force:
            raise StylebridgeError(f"{label} already exists (use --force to overwrite)", path=path)


class ConvertCommand(Command):
    name = "convert"
    help = "convert an upstream checkpoint into a stylebridge checkpoint"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("kind", metavar="KIND",
                            help="converter name (see `stylebridge plugins`), e.g. "
                                 "stylegan2-rosinality, stylegan2-nvlabs")
        parser.add_argument("src", type=user_path, metavar="SRC",
                            help="the upstream file KIND reads (`stylebridge plugins KIND` "
                                 "says which: rosinality's .pt, an NVlabs .pkl, ...)")
        parser.add_argument("dst", type=user_path, metavar="DST",
                            help="the stylebridge checkpoint to write (.safetensors; refused when "
                                 "it exists, unless --force)")
        parser.add_argument("--option", "-o", type=user_spec, action="append", metavar="KEY=VALUE",
                            help="converter option, repeatable (e.g. expect_size=1024, "
                                 "lr_mlp=0.01, discriminator=false)")
        parser.add_argument("--force", action="store_true",
                            help="overwrite DST (and a -o generator= file) if it exists")

    def run(self, args: argparse.Namespace, console: Console) -> int:
        from stylebridge.cli.options import status_line  # the spinner on stderr

        converter = get_registry().get("converter", args.kind).obj
        options = parse_options(args.option)
        if not args.src.exists():
            raise StylebridgeError("no such file", path=args.src)
        if args.src.is_dir():
            raise StylebridgeError("is a folder; give the upstream checkpoint file",
                                   path=args.src)
        check_outputs(converter, args.src, args.dst, options, force=args.force)
        # a refused pickle global named in one wording, whichever loader the converter uses
        with status_line(console, f"converting {escape(str(args.src))} with {escape(args.kind)}"), \
                named_refusals():
            result = converter.convert(args.src, args.dst, **options)
        console.print(f"[green]wrote[/green] {escape(str(result.path))} "
                      f"({escape(f'{result.kind}/{result.plugin}')}, {result.n_tensors} tensors)")
        for note in result.notes:
            console.print(f"  note: {escape(str(note))}")
        return 0


@hookimpl
def register_commands(register: Any) -> None:
    register(ConvertCommand())
