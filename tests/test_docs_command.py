"""``stylebridge docs``: the pages help texts and messages point to, readable from any
install.  A wheel has no ``docs/`` folder: ``setup.py`` copies the pages into it as
``stylebridge/_docs``; a source checkout reads them in place."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from stylebridge.cli.commands.docs import EXTRA_PAGES, pages
from stylebridge.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def test_every_page_is_listed_and_shown_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    found = pages()
    expected = {p.stem for p in (ROOT / "docs").glob("*.md")} | set(EXTRA_PAGES)
    assert set(found) == expected and {"speed", "weights", "contributing"} <= set(found)
    assert main(["docs"]) == 0
    listing = capsys.readouterr().out
    assert all(topic in listing for topic in expected)
    assert main(["docs", "speed", "--raw"]) == 0
    assert capsys.readouterr().out == (ROOT / "docs" / "speed.md").read_text(encoding="utf-8")
    assert main(["docs", "contributing.md", "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(ROOT / "CONTRIBUTING.md")
    assert main(["docs", "weights"]) == 0  # rendered: the page's title is in it
    assert "Official weights" in capsys.readouterr().out


def test_an_unknown_page_is_one_line_with_a_suggestion(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    assert main(["docs", "speeed"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no documentation page 'speeed'; did you mean 'speed'?")
    assert err.count("\n") == 1


def _strings(tree: ast.AST) -> list[str]:
    """The string constants of a module but its docstrings (what a user can be shown)."""
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docs]


def test_every_docs_topic_the_code_points_to_exists() -> None:
    """Help texts and messages say ``stylebridge docs TOPIC``, each topic a page; none names
    a file of the source tree (``docs/speed.md`` was no help to someone with the wheel)."""
    cited: set[str] = set()
    for path in (ROOT / "stylebridge").rglob("*.py"):
        if path.name == "docs.py" and path.parent.name == "commands":
            continue  # the command itself maps topics to those files
        for text in _strings(ast.parse(path.read_text(encoding="utf-8"))):
            cited |= set(re.findall(r"stylebridge docs\s+([a-z][a-z-]*)", text))
            assert not re.search(r"\bdocs/[\w-]+\.md|RESULTS\.md|CONTRIBUTING\.md", text), (
                path, text)
    assert cited and cited <= set(pages()), cited - set(pages())


@pytest.mark.slow  # builds a wheel (~20 s)
def test_the_wheel_carries_the_pages(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: the build writes build/ beside its sources
    for rel in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "MANIFEST.in",
                "CONTRIBUTING.md", "SECURITY.md", "benchmarks/RESULTS.md"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, src / rel)
    for rel in ("stylebridge", "docs"):
        shutil.copytree(ROOT / rel, src / rel,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "_docs"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(tmp_path), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel, = tmp_path.glob("stylebridge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix("stylebridge/_docs/") for n in names
               if n.startswith("stylebridge/_docs/")}
    assert shipped == {f"{topic}.md" for topic in pages()}
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read("stylebridge/_docs/speed.md").decode()
    assert text == (ROOT / "docs" / "speed.md").read_text(encoding="utf-8")
    # the installed package reads them from there
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    assert set(pages(unpacked / "stylebridge")) == set(pages())
