"""A StylebridgeError in IPython / Jupyter shows the user's frames and its one line, not the
frames inside stylebridge (``stylebridge.errors.SHORT_TRACEBACKS = False``: all of them)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("IPython")

CELLS = textwrap.dedent("""
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_cell("import stylebridge\\ndef load():\\n"
                   "    return stylebridge.create('generator', 'missing.safetensors')\\nload()")
    print("-- full --")
    shell.run_cell("import stylebridge.errors\\nstylebridge.errors.SHORT_TRACEBACKS = False\\n"
                   "load()")
""")


def test_a_notebook_shows_the_users_frames_and_the_one_line() -> None:
    run = subprocess.run([sys.executable, "-c", CELLS], capture_output=True, text=True,
                         timeout=120, check=True)
    short, full = run.stdout.split("-- full --\n")
    lines = short.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-2] == "CheckpointError: missing.safetensors: no such file"
    assert lines[-1].startswith("(") and "frame(s) inside stylebridge not shown; " \
        "stylebridge.errors.SHORT_TRACEBACKS = False shows them)" in lines[-1]
    assert int(lines[-1][1:].split()[0]) >= 3  # create → registry → checkpoint, at least
    files = [line.strip() for line in lines if line.strip().startswith('File "')]
    assert len(files) == 2 and all("<ipython-input-" in f for f in files), files  # cell, load
    assert "stylebridge/" not in short and "interactiveshell.py" not in short
    # all frames, as plain Python prints them
    assert "stylebridge/core/checkpoint.py" in full
    assert full.strip().splitlines()[-1] == ("stylebridge.errors.CheckpointError: "
                                             "missing.safetensors: no such file")
