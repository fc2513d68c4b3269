"""Turn the fidelity suite's JSON (``run.py --out``) into Markdown, and keep the copies of that
table in docs/fidelity.md and benchmarks/RESULTS.md identical to it.

    python benchmarks/fidelity/summarize.py benchmarks/results/fidelity.json
    python benchmarks/fidelity/summarize.py benchmarks/results/fidelity.json \\
        --write docs/fidelity.md benchmarks/RESULTS.md

``--write`` replaces the text between ``<!-- fidelity-table:begin -->`` and
``<!-- fidelity-table:end -->`` in each file (which must hold those two markers).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- fidelity-table:begin -->", "<!-- fidelity-table:end -->"


def _num(x: float | None) -> str:
    return "—" if x is None else "0" if x == 0 else f"{x:.2e}"


def _result(passed: bool | None) -> str:
    return "info" if passed is None else "pass" if passed else "**FAIL**"


def summarize(result: Mapping[str, Any]) -> str:
    """Markdown: a line on the run, then one table row per comparison."""
    m = result.get("machine", {})
    checks = result.get("checks", [])
    failed = sum(c.get("passed") is False for c in checks)
    info = sum(c.get("passed") is None for c in checks)
    errors = [mod["name"] for mod in result.get("modules", []) if mod.get("error")]
    lines = [
        f"Run {result.get('created', '?')}: {len(checks)} comparisons, {failed} failed, "
        f"{info} informational, {len(errors)} module errors"
        f"{' (' + ', '.join(errors) + ')' if errors else ''}; "
        f"{result.get('total_seconds', '?')} s in all; torch {m.get('torch', '?')}, "
        f"Python {m.get('python', '?')}, {m.get('cpu_count', '?')} CPUs "
        f"({m.get('machine', '?')}), {m.get('torch_threads', '?')} torch threads, "
        f"{m.get('dtype', 'float32')} on the {m.get('device', 'cpu')}.",
        "",
        "| check | upstream @ commit | compares | size | max abs diff | max abs reference "
        "| tolerance | result | s |",
        "|---|---|---|---|---:|---:|---:|---|---:|",
    ]
    def cell(x: object) -> str:
        return str(x).replace("|", "\\|")

    for c in checks:
        commit = " + ".join(part.strip()[:7] for part in str(c["commit"]).split("+"))
        lines.append(
            f"| {cell(c['name'])} | {c['repo']} @ {commit} | {cell(c['compares'])} | "
            f"{cell(c['size'])} | "
            f"{_num(c['max_abs_diff'])} | {_num(c['reference_max_abs'])} | "
            f"{_num(c['tolerance'])} | {_result(c['passed'])} | {c['seconds']} |")
    return "\n".join(lines) + "\n"


def write_between_markers(path: Path, table: str) -> None:
    text = path.read_text(encoding="utf-8")
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"{path}: needs one {BEGIN} ... {END} pair")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    path.write_text(f"{head}{BEGIN}\n{table}{END}{tail}", encoding="utf-8")


def table_in(path: Path) -> str:
    """The text between the markers of ``path`` (what ``--write`` put there)."""
    text = path.read_text(encoding="utf-8")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].removeprefix("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fidelity JSON -> Markdown table")
    parser.add_argument("json", type=Path)
    parser.add_argument("--write", type=Path, nargs="+", default=[],
                        help="files whose fidelity-table markers get the table")
    args = parser.parse_args(argv)
    table = summarize(json.loads(args.json.read_text()))
    for path in args.write:
        write_between_markers(path, table)
    if not args.write:
        print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
