"""The ``stylebridge example-info CKPT`` command: what a ``tiny-pool`` checkpoint holds.

One plugin module, registered through ``register_commands``: a third-party package adds a
subcommand the same way the built-in ones do (subclass :class:`stylebridge.cli.base.Command`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from stylebridge.cli.base import Command
from stylebridge.core.checkpoint import is_random_weights, read_header
from stylebridge.errors import CheckpointError
from stylebridge.registry import get_registry, hookimpl
from stylebridge_example_encoder.encoder import TinyPoolEncoder


def describe(path: Path) -> dict[str, Any]:
    """Header, tensors and output shape of a ``tiny-pool`` encoder checkpoint.

    The encoder is rebuilt through the registry, which checks every tensor against the
    header's config (a bad file is a one-line ``CheckpointError`` naming it).
    """
    header = read_header(path)
    if (header.kind, header.plugin) != ("encoder", TinyPoolEncoder.name):
        raise CheckpointError(f"holds a {header.kind} of plugin {header.plugin!r}, "
                              f"not a {TinyPoolEncoder.name} encoder", path=path)
    encoder = get_registry().load("encoder", path, name=TinyPoolEncoder.name)
    return {
        "file": str(path),
        "plugin": header.plugin,
        "config": encoder.config(),
        "random_weights": is_random_weights(header.extra),
        "input": [3, encoder.preprocessing.size, encoder.preprocessing.size],
        "w_plus": [encoder.n_latent, encoder.style_dim],
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "tensors": {name: list(t.shape) for name, t in encoder.state_dict().items()},
    }


class ExampleInfoCommand(Command):
    """``stylebridge example-info CKPT [--json]``."""

    name = "example-info"
    help = "what a tiny-pool encoder checkpoint holds (the example plugin package's command)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("checkpoint", type=Path, metavar="CKPT",
                            help="a tiny-pool encoder checkpoint (.safetensors)")
        parser.add_argument("--json", action="store_true", help="print it as JSON")

    def run(self, args: argparse.Namespace, console: Console) -> int:
        info = describe(args.checkpoint)
        if args.json:
            print(json.dumps(info, indent=2))
            return 0
        console.print(f"{info['file']}: tiny-pool encoder, {info['parameters']:,} parameters"
                      + (" (random weights)" if info["random_weights"] else ""))
        console.print(f"input {'x'.join(map(str, info['input']))} -> w+ "
                      f"{'x'.join(map(str, info['w_plus']))}; config {info['config']}")
        table = Table("tensor", "shape")
        for name, shape in info["tensors"].items():
            table.add_row(name, str(shape))
        console.print(table)
        return 0


@hookimpl
def register_commands(register: Any) -> None:
    register(ExampleInfoCommand())
