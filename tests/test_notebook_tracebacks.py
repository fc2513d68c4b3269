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


CHAINED = textwrap.dedent("""
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_cell("import stylebridge\\nfrom stylebridge.errors import StylebridgeError\\n"
                   "def parse(text):\\n    return int(text)\\n"
                   "def steps(text):\\n    try:\\n        return parse(text)\\n"
                   "    except ValueError as err:\\n"
                   "        raise StylebridgeError(f'steps {text!r}: not a number') from err\\n"
                   "steps('ten')")
    print("-- inside --")
    shell.run_cell("stylebridge.create('generator', 'missing.safetensors')")
    print("-- made --")
    shell.run_cell("raise StylebridgeError('no key') from KeyError('k')")
""")


def test_a_notebook_shows_the_users_own_exception_the_error_was_raised_from() -> None:
    # the user's ValueError, then their StylebridgeError raised from it: both, each with the
    # user's frames, joined as Python joins them (the cause was dropped)
    run = subprocess.run([sys.executable, "-c", CHAINED], capture_output=True, text=True,
                         timeout=120, check=True)
    mine, rest = run.stdout.split("-- inside --\n")
    inside, made = rest.split("-- made --\n")
    lines = [line for line in mine.strip().splitlines() if line.strip()]
    assert lines.count("Traceback (most recent call last):") == 2
    cause = lines.index("The above exception was the direct cause of the following exception:")
    assert lines[cause - 1].startswith("ValueError: invalid literal for int()")
    assert any("return int(text)" in line for line in lines[:cause])
    assert lines[-1] == "StylebridgeError: steps 'ten': not a number"
    # an error stylebridge raised from an exception it handled itself shows no chain
    assert "direct cause" not in inside and "During handling" not in inside
    assert inside.strip().splitlines()[-2] == "CheckpointError: missing.safetensors: no such file"
    # a cause the user made without raising it (no traceback of its own) is shown too
    lines = [line for line in made.strip().splitlines() if line.strip()]
    assert lines[0] == "KeyError: 'k'"
    assert lines[1] == "The above exception was the direct cause of the following exception:"
    assert lines[-1] == "StylebridgeError: no key"
