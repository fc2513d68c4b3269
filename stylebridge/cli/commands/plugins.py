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
from stylebridge.registry.registry import BUILTIN_PROVIDER


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
        # one section per kind; the description gets the width (readable at 80 columns), and a
        # plugin from another package names it there
        table = Table(title="stylebridge plugins", show_lines=False)
        table.add_column("name", no_wrap=True)
        table.add_column("description (provider when not stylebridge)", ratio=1,
                         overflow="fold")
        for i, kind in enumerate(KINDS):
            if i:
                table.add_section()
            table.add_row(f"[bold cyan]{escape(kind)}[/bold cyan]", "")
            rows = data[kind]
            if not rows:
                table.add_row("  [dim](none yet)[/dim]", "")
            for row in rows:  # plain text: a "[word]" in a description is no rich tag
                provider = ("" if row["provider"] == BUILTIN_PROVIDER
                            else f" [dim](from {escape(row['provider'])})[/dim]")
                table.add_row(f"  {escape(row['name'])}",
                              escape(row["description"] or "") + provider)
        console.print(table)
        for fail in data["failed"]:
            console.print(f"[yellow]plugin {escape(str(fail['provider']))} "
                          f"({escape(str(fail['entry_point']))}) failed to "
                          f"load:[/yellow] {escape(str(fail['error']))}")
        return 0


@hookimpl
def register_commands(register: Any) -> None:
    register(PluginsCommand())
