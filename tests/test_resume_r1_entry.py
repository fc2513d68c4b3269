"""A Ctrl-C while ``stylebridge`` starts (its imports: torch takes seconds) prints the one line
``error: interrupted`` and exits with 130, as a Ctrl-C later does: no traceback.

Each case runs the entry point in a fresh Python whose import system sends the process a real
SIGINT when ``torch`` (or the command line itself) is about to be imported, so the Ctrl-C lands
at a known place of the start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: installs the Ctrl-C at the first import of ``$SB_CTRL_C_AT``, then runs ``sys.argv[1]``
#: (``module:function`` as a console script calls it, or ``-m module`` as ``python -m``)
DRIVER = r"""
import os, runpy, signal, sys, time

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["SB_CTRL_C_AT"]:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(60)  # the KeyboardInterrupt is raised here
        return None

sys.meta_path.insert(0, CtrlC())
entry, sys.argv = sys.argv[1], ["stylebridge", *sys.argv[2:]]
if entry.startswith("-m "):
    runpy.run_module(entry[3:], run_name="__main__", alter_sys=True)
else:  # what the console script pip writes does
    module, function = entry.split(":")
    sys.exit(getattr(__import__(module, fromlist=[function]), function)())
"""


def _console_entry() -> str:
    """The ``stylebridge`` console script's ``module:function``, from pyproject.toml."""
    with open(REPO / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]["scripts"]["stylebridge"]


CASES = [(entry, at) for entry in ("console", "-m stylebridge", "-m stylebridge.cli")
         for at in ("torch", "stylebridge.cli.main")]
# a Python caller imports stylebridge.cli.main itself; main() imports torch
CASES.append(("stylebridge.cli.main:main", "torch"))


@pytest.mark.parametrize(("entry", "at"), CASES)
def test_a_ctrl_c_during_start_up_is_one_line_and_exit_code_130(
        entry: str, at: str, tmp_path: Path) -> None:
    entry = _console_entry() if entry == "console" else entry
    run = subprocess.run([sys.executable, "-c", DRIVER, entry, "generate", "--seeds", "0",
                          "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "SB_CTRL_C_AT": at})
    assert (run.returncode, run.stderr) == (130, "error: interrupted\n"), run.stderr
    assert run.stdout == ""
    assert not (tmp_path / "out").exists()


def test_the_cli_package_stays_cheap_to_import() -> None:
    """The console entry point's own module imports neither torch nor the command line."""
    code = ("import sys; from stylebridge.cli import run; "
            "print(sorted(m for m in ('torch', 'stylebridge.cli.main', 'rich') "
            "if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.stdout == "[]\n", run.stderr
