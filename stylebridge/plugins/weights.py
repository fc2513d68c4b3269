"""``stylebridge weights list|fetch|register|verify|path``: the official-checkpoint cache."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from stylebridge.core.interfaces import Command
from stylebridge.registry import hookimpl


class WeightsCommand(Command):
    name = "weights"
    help = "list, download, register, verify and locate official checkpoints"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        p = sub.add_parser("list", help="the supported checkpoints and what is installed")
        p.add_argument("--json", action="store_true")
        p = sub.add_parser("fetch", help="download (resumable), check sha256, convert")
        p.add_argument("names", nargs="+", metavar="NAME")
        p.add_argument("--no-convert", action="store_true")
        p = sub.add_parser("register", help="add a file you downloaded yourself")
        p.add_argument("name", metavar="NAME")
        p.add_argument("--from", dest="source", required=True, metavar="FILE")
        p.add_argument("--no-convert", action="store_true")
        p.add_argument("--link", action="store_true",
                       help="record FILE where it is instead of copying it into the cache")
        p = sub.add_parser("verify", help="re-hash installed files")
        p.add_argument("names", nargs="*", metavar="NAME")
        p = sub.add_parser("path", help="print the path of an installed checkpoint")
        p.add_argument("name", metavar="NAME")

    def run(self, args: argparse.Namespace, console: Console) -> int:
        from stylebridge.core.weights import WeightsManager

        manager = WeightsManager()
        if args.action == "list":
            return self._list(manager, args, console)
        if args.action == "path":
            print(manager.path(args.name))
            return 0
        if args.action == "verify":
            results = manager.verify(args.names or None)
            for name, status in results.items():
                style = "green" if status == "ok" else "red"
                console.print(f"{name}: [{style}]{status}[/{style}]")
            return 0 if all(s == "ok" for s in results.values()) else 2
        if args.action == "register":
            path = manager.register(args.name, args.source, convert=not args.no_convert,
                                    copy=not args.link)
            console.print(f"[green]registered[/green] {args.name} → {path}")
            console.print(f"licence: {manager.entry(args.name).licence}")
            return 0
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        for name in args.names:
            with Progress("[progress.description]{task.description}", BarColumn(),
                          DownloadColumn(), TransferSpeedColumn(), console=console,
                          transient=True) as progress:
                task = progress.add_task(name, total=None)

                def update(done: int, total: int | None, _task: Any = task,
                           _p: Progress = progress) -> None:
                    _p.update(_task, completed=done, total=total)

                path = manager.fetch(name, progress=update, convert=not args.no_convert)
            console.print(f"[green]installed[/green] {name} → {path}")
            console.print(f"licence: {manager.entry(name).licence}")
        return 0

    @staticmethod
    def _list(manager: Any, args: argparse.Namespace, console: Console) -> int:
        from stylebridge.cli.commands import print_json

        rows = []
        for entry in manager.entries.values():
            record = manager.installed(entry.name)
            rows.append({"name": entry.name, "kind": entry.kind, "plugin": entry.plugin,
                         "installed": record is not None,
                         "path": (record.get("converted") or record.get("raw")) if record else None,
                         "download": "url" if entry.url else "register --from",
                         "source": entry.source, "licence": entry.licence})
        if args.json:
            print_json({"home": str(manager.home), "weights": rows})
            return 0
        table = Table(title=f"weights (cache: {manager.home})")
        table.add_column("name", no_wrap=True)
        for col in ("kind", "plugin", "installed", "how to get", "licence"):
            table.add_column(col)
        for row in rows:
            table.add_row(row["name"], row["kind"], row["plugin"],
                          "[green]yes[/green]" if row["installed"] else "no",
                          "weights fetch" if row["download"] == "url" else "register --from",
                          row["licence"])
        console.print(table)
        return 0


@hookimpl
def register_commands(register: Any) -> None:
    register(WeightsCommand())
