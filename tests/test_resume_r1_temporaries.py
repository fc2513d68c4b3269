# ruff: noqa: F811  (the `files` and `registered` fixtures are used as parameters)
"""The half-written temporary files a killed run leaves (``.seed0001.png.x7k2m9qa.tmp``) are
removed by the next run into the folder, journal or not, fresh or ``--resume``: those of the
files that run writes, and only those (shards of one photo set may write into one ``--out``
at the same time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_generator
from test_adapt_random import registered  # noqa: F401  (the fixture)
from test_batch_resume import (  # noqa: F401  (the fixture)
    _adapt_argv,
    _interrupted,
    _invert_argv,
    _journal,
    files,
)

from stylebridge.cli.main import main
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.pipelines import adapt as adapt_module
from stylebridge.pipelines.resume import JOURNAL_DIR

#: ``stylebridge`` with a ``kill -9`` of itself in the middle of writing ``$SB_KILL_AT``: the
#: temporary file is complete, the rename into place has not happened
KILLED = r"""
import os, signal, sys
real = os.replace
def replace(src, dst, *args, **kwargs):
    if os.path.basename(str(dst)) == os.environ["SB_KILL_AT"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)
os.replace = replace
from stylebridge.cli.main import main
sys.exit(main(sys.argv[1:]))
"""

#: what other runs (another shard, another program) left in the same folder: never removed
OTHERS = (".seed0042.png.abcdefgh.tmp", ".zz_inversion.png.abcdefgh.tmp",
          ".notes.txt.abcdefgh.tmp")


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _plant(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"half a file")


def test_generate_killed_before_its_first_journal_save_leaves_no_temporary_behind(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gen = save_stylegan2(tmp_path / "gen.safetensors", tiny_generator(seed=0, size=32,
                                                                       style_dim=32))
    out = tmp_path / "out"
    argv = ["generate", "-g", str(gen), "--seeds", "0-3", "--batch", "2", "--device", "cpu",
            "--compile", "off", "--out", str(out)]
    killed = subprocess.run([sys.executable, "-c", KILLED, *argv], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "SB_KILL_AT":
                                                         "seed0001.png"})
    assert killed.returncode == -9, killed.stderr
    assert not (out / JOURNAL_DIR).exists()  # killed in its first batch: no journal
    left = _hidden(out)
    assert len(left) == 1 and left[0].startswith(".seed0001.png.")  # the kill's own
    _plant(out, list(OTHERS))
    assert main(argv) == 0  # a fresh run (there is no journal to resume)
    assert _hidden(out) == sorted(OTHERS)
    assert (out / "seed0001.png").is_file() and (out / "grid.png").is_file()
    # the next run, and a --resume, remove them too; other names stay
    _plant(out, [".seed0003.png.abcdefgh.tmp", ".grid.png.abcdefgh.tmp"])
    assert main(argv) == 0
    assert _hidden(out) == sorted(OTHERS)


def test_adapt_removes_its_own_temporaries_not_another_shards(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    out = tmp_path / "out"
    # batches [a b] [broken c d] ...: Ctrl-C in the second batch, its journal has a and b
    _interrupted(monkeypatch, capsys, adapt_module, _adapt_argv(files, out), 8)
    assert _journal(out)["done"] == 2
    own = [".c_inversion.png.abcdefgh.tmp", ".a_joker.png.x7k2m9qa.tmp",
           ".g_pixar.png.ab_12cd3.tmp", ".grid.png.abcdefgh.tmp", ".metrics.json.abcdefgh.tmp",
           ".adapt.json.abcdefgh.tmp"]
    _plant(out, own + list(OTHERS))
    _plant(out / "sub", [".a_joker.png.abcdefgh.tmp"])  # not this run's folder
    assert main(_adapt_argv(files, out, "--resume")) == 3
    assert _hidden(out) == sorted(OTHERS)
    assert _hidden(out / "sub") == [".a_joker.png.abcdefgh.tmp"]
    # a fresh run over a finished one (no journal at all)
    _plant(out, own)
    assert main(_adapt_argv(files, out)) == 3
    assert _hidden(out) == sorted(OTHERS)


def test_invert_removes_its_own_temporaries_without_a_journal(
        files: dict[str, Path], tmp_path: Path, registered: None) -> None:
    out = tmp_path / "out"
    own = [".a_inversion.png.abcdefgh.tmp", ".g_inversion.safetensors.abcdefgh.tmp",
           ".grid.png.abcdefgh.tmp", ".metrics.json.abcdefgh.tmp"]
    _plant(out, [*own, *OTHERS, ".a_pixar.png.abcdefgh.tmp"])  # invert writes no a_pixar
    assert main(_invert_argv(files, out)) == 3
    assert _hidden(out) == sorted([*OTHERS, ".a_pixar.png.abcdefgh.tmp"])
