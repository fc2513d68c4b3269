"""``stylebridge docs [TOPIC]``: the user documentation, offline and from any install.

Help texts and messages point here (``stylebridge docs speed``) instead of at files of the
source repository, which an installed wheel does not have.  A wheel carries the pages as
``stylebridge/_docs/`` (copied by ``setup.py`` when it is built); a source checkout (an
editable install) reads them where they are: ``docs/*.md``, ``CONTRIBUTING.md``,
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table

from stylebridge.cli.base import Command
from stylebridge.errors import StylebridgeError
from stylebridge.registry import hookimpl

PACKAGE = Path(__file__).resolve().parents[2]  # .../stylebridge
#: pages outside docs/ by topic: topic -> path in the source tree
EXTRA_PAGES = {"contributing": "CONTRIBUTING.md", "benchmarks": "benchmarks/RESULTS.md",
               "security": "SECURITY.md"}


def pages(package: Path = PACKAGE) -> dict[str, Path]:
    """Topic -> page: the wheel's ``_docs/`` folder, else the source checkout's files."""
    shipped = package / "_docs"
    if shipped.is_dir():
        return {p.stem: p for p in sorted(shipped.glob("*.md"))}
    root = package.parent
    found = {p.stem: p for p in sorted((root / "docs").glob("*.md"))}
    found.update({topic: root / rel for topic, rel in EXTRA_PAGES.items()
                  if (root / rel).is_file()})
    return dict(sorted(found.items()))


def _title(path: Path) -> str:
    """A page's first heading (its title), or its file name."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return path.name


class DocsCommand(Command):
    name = "docs"
    help = "read the documentation offline: list its pages, or show one (speed, weights, ...)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("topic", nargs="?", metavar="TOPIC",
                            help="the page to show (without TOPIC: the list of pages)")
        parser.add_argument("--raw", action="store_true",
                            help="print the page's Markdown as is (for a pager or a file)")
        parser.add_argument("--path", action="store_true",
                            help="print where the page is on this machine")

    def run(self, args: argparse.Namespace, console: Console) -> int:
        found = pages()
        if not found:
            raise StylebridgeError("no documentation pages were installed with stylebridge "
                                   f"(looked in {PACKAGE / '_docs'} and the source checkout)")
        if args.topic is None:
            table = Table("topic", "page", title="stylebridge docs TOPIC")
            for topic, path in found.items():
                table.add_row(topic, escape(_title(path)))
            console.print(table)
            return 0
        topic = args.topic.lower().removesuffix(".md")
        if topic not in found:
            import difflib

            close = difflib.get_close_matches(topic, list(found), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise StylebridgeError(f"no documentation page {args.topic!r}{hint} (pages: "
                                   f"{', '.join(found)})")
        path = found[topic]
        if args.path:
            print(path)
        elif args.raw:
            print(path.read_text(encoding="utf-8"), end="")
        else:
            console.print(Markdown(path.read_text(encoding="utf-8")))
        return 0


@hookimpl
def register_commands(register: Any) -> None:
    register(DocsCommand())


__all__ = ["DocsCommand", "pages"]
