"""``stylebridge plugins``: every registered plugin by kind, with its provider package."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stylebridge.cli.base import Command
from stylebridge.cli.common import print_json
from stylebridge.registry import KINDS, get_registry, hookimpl


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


@hookimpl
def register_commands(register: Any) -> None:
    register(PluginsCommand())
