"""``stylebridge doctor``: what this installation has and lacks (versions, GPUs, CUDA ops,
optional packages, installed weights, plugin packages), for a first run or a bug report
(:mod:`stylebridge.pipelines.doctor`)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stylebridge.cli.base import Command
from stylebridge.cli.common import print_json
from stylebridge.registry import hookimpl

_STYLE = {"ok": "green", "note": "yellow", "missing": "yellow", "error": "bold red"}


class DoctorCommand(Command):
    name = "doctor"
    help = "check this installation: versions, GPUs, CUDA ops, optional packages, weights, plugins"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--build-cuda", action="store_true",
                            help="also compile the CUDA ops where a GPU and a toolkit are found "
                                 "(minutes the first time) and report the outcome")
        parser.add_argument("--json", action="store_true", help="print JSON instead of tables")

    def run(self, args: argparse.Namespace, console: Console) -> int:
        from stylebridge.cli.options import refuse_closed_stdout
        from stylebridge.pipelines.doctor import diagnose

        if args.json:
            refuse_closed_stdout("--json")  # before the checks (a --build-cuda takes minutes)
        report = diagnose(build_cuda=args.build_cuda)
        if args.json:
            print_json(report.as_dict())
        else:
            for section, checks in report.sections.items():
                table = Table(title=section, title_justify="left", show_header=False)
                table.add_column("item")
                table.add_column("value", overflow="fold")
                table.add_column("")
                for check in checks:
                    status = Text(check.status, style=_STYLE.get(check.status, ""))
                    if check.hint:
                        status += Text(f"{' - ' if check.status else ''}{check.hint}")
                    table.add_row(Text(check.item), Text(check.value), status)
                console.print(table)
        return 1 if report.problems else 0


@hookimpl
def register_commands(register: Any) -> None:
    register(DoctorCommand())


__all__ = ["DoctorCommand"]
