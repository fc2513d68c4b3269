"""Every ``stylebridge ...`` command shown in README.md, CONTRIBUTING.md and docs/*.md parses
with today's command line (an option renamed or removed fails here, with the file and the
line).  Lines with ``...`` are sketches and are skipped; ``[--opt]`` usage brackets are
checked both with and without what they hold."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from stylebridge.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]


def _commands() -> list[tuple[str, str]]:
    """``(where, command line)`` of every shell-block line that runs stylebridge."""
    out = []
    for path in FILES:
        for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", path.read_text(), re.S):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                found = re.match(r"^\s*(?:torchrun .*? -m )?stylebridge (.*)$", line)
                if found:
                    out.append((path.name, re.split(r"\s+#", found.group(1))[0].strip()))
    return out


def _variants(command: str) -> list[list[str]]:
    """The command with its ``[...]`` groups kept (brackets dropped) and left out."""
    if "[" not in command:
        return [shlex.split(command)]
    kept = re.sub(r"\[([^\[\]]*)\]", r"\1", command)
    left_out = re.sub(r"\s*\[[^\[\]]*\]", "", command)
    return [shlex.split(kept), shlex.split(left_out)]


COMMANDS = [c for c in _commands() if "..." not in c[1] and "…" not in c[1]]


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) >= 40  # the tour alone has more; a broken extractor finds none
    assert {"README.md", "weights.md"} <= {where for where, _ in COMMANDS}


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[f"{w}:{c[:60]}" for w, c in COMMANDS])
def test_documented_command_parses(where: str, command: str) -> None:
    parser, _ = build_parser()
    for argv in _variants(command):
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args(argv)
        except SystemExit as exc:
            assert not exc.code, f"{where}: `stylebridge {' '.join(argv)}`: {err.getvalue()}"


README_ROWS = {"encoder": "encoders", "domain_method": "domain methods", "loss": "losses",
               "metric": "metrics", "calibrator": "calibrators", "renderer": "renderers",
               "converter": "converters"}


def test_readme_plugin_table_lists_every_built_in_plugin() -> None:
    """README's "What is inside" table names each plugin stylebridge registers (it had left
    out three converters and two losses the README itself uses)."""
    from stylebridge.registry import Registry

    registry = Registry(entry_points=False)  # the built-ins only, not what is installed
    text = (ROOT / "README.md").read_text()
    for kind, row in README_ROWS.items():
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {row} |"))
        named = set(re.findall(r"`([^`]+)`", line))
        missing = sorted(set(registry.names(kind)) - named)
        assert not missing, f"README.md '{row}' row leaves out {missing}"
