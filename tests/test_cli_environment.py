"""The command line in unusual environments: a licence question on a terminal whose stdout is
redirected, the C locale, a pipe closed by its reader, a closed stdout, SIGTERM and SIGHUP
stopping a batch.  Most run ``python -m stylebridge`` in a subprocess: what is tested is the
process's streams, signals and exit code."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stylebridge.cli.main import main

TIMEOUT = 120


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "STYLEBRIDGE_HOME": str(tmp_path / "home"), "COLUMNS": "200",
           "OMP_NUM_THREADS": "1", **extra}
    env.pop("STYLEBRIDGE_DEBUG", None)
    return env


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory):
    from stylebridge.pipelines.presets import build_tiny_preset

    return build_tiny_preset(tmp_path_factory.mktemp("preset"), n_images=4)


def _invert_argv(preset, out: Path) -> list[str]:
    return ["invert", "-e", f"e4e:{preset.e4e}", "-g", str(preset.generator), "--no-align",
            "--device", "cpu", "--batch", "1", "--compile", "off", str(preset.images),
            "--out", str(out)]


# -- 1. the licence question ------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize("answer", [b"\x04", b"n\n"], ids=["ctrl-d", "no"])
def test_licence_question_is_asked_on_stderr_and_ctrl_d_is_a_no(tmp_path: Path,
                                                                answer: bytes) -> None:
    """`weights fetch e4e-ffhq > log` on a terminal put the licence and `[y/N]` into the log
    and waited without a word; Ctrl-D at the question was `error: EOFError: EOFError`, 1."""
    master, slave = os.openpty()
    try:
        os.write(master, answer)  # queued: read when the question is asked
        proc = subprocess.run([sys.executable, "-m", "stylebridge", "weights", "fetch",
                               "e4e-ffhq"], stdin=slave, capture_output=True,
                              env=_env(tmp_path), timeout=TIMEOUT)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.stdout == b""  # `> log` keeps nothing of the question
    err = proc.stderr.decode()
    assert "licence of e4e-ffhq: " in err
    assert "accept them and download? [y/N] " in err
    last = err.splitlines()[-1]
    if answer == b"\x04":  # the error on a line of its own (a typed answer is echoed)
        assert last == ("error: e4e-ffhq is under a non-commercial licence (shown above); pass "
                        "--accept-licence to accept it and download")
    else:
        assert last.endswith("[y/N] error: licence not accepted; nothing was downloaded")
    assert proc.returncode == 2
    assert not (tmp_path / "home").is_dir() or not any((tmp_path / "home").rglob("*.pt"))


# -- 2. encodings that cannot write the text ------------------------------------------------

@pytest.mark.parametrize("env", [{"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0",
                                  "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": ""},
                                 {"PYTHONIOENCODING": "ascii:surrogateescape"}],
                         ids=["c-locale", "ascii-surrogateescape"])
def test_help_with_arrows_in_an_ascii_locale_is_escaped_not_a_crash(tmp_path: Path,
                                                                    env: dict) -> None:
    proc = subprocess.run([sys.executable, "-m", "stylebridge", "eval", "--help"],
                          capture_output=True, env=_env(tmp_path, **env), timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    assert b"usage: stylebridge eval" in proc.stdout
    assert re.search(rb"\\(x[0-9a-f]{2}|u[0-9a-f]{4})", proc.stdout)  # `²` as `\xb2`


def test_a_surrogateescape_stream_keeps_file_name_bytes_and_escapes_the_rest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.cli.streams import printable_names

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", errors="surrogateescape")
    monkeypatch.setattr(sys, "stdout", stream)
    with printable_names():
        print("photo\udcff.png \u2193 \xb2")  # a Latin-1 file name's byte, then text
        stream.flush()
    assert raw.getvalue() == b"photo\xff.png \\u2193 \\xb2\n"
    assert stream.errors == "surrogateescape"  # as it was


def test_a_prompt_the_locale_could_not_decode_is_refused(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    """In the C locale `--text "Skizze ü"` reached CLIP as two lone surrogates."""
    with pytest.raises(SystemExit) as exit_:  # a usage error: argparse's exit
        main(["train", "domain", "-g", str(tmp_path / "gen.safetensors"), "--text",
              "Skizze \udcc3\udcbc", "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "error: --text: the prompt is not valid text in this locale: set LANG to a UTF-8 "
        "locale (see stylebridge train domain --help)\n")


# -- 3. a reader that went away: 141 --------------------------------------------------------

def _closed_reader(argv: list[str], tmp_path: Path, *, both: bool = False
                   ) -> subprocess.Popen[bytes]:
    """``argv`` with its stdout (and stderr, ``both``) a pipe whose reader is gone."""
    proc = subprocess.Popen([sys.executable, "-m", "stylebridge", *argv],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if both else subprocess.PIPE,
                            env=_env(tmp_path))
    assert proc.stdout is not None
    proc.stdout.close()  # before the first line: `| head -0`, deterministically
    return proc


def test_a_rich_table_into_a_closed_pipe_ends_with_141(tmp_path: Path) -> None:
    """Rich's own broken-pipe handling exited with 1."""
    proc = _closed_reader(["weights", "list"], tmp_path)
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert proc.wait(timeout=TIMEOUT) == 141 and err == b""


def test_a_batch_whose_reader_went_away_stops_with_141_and_resumes(tmp_path: Path,
                                                                   preset) -> None:
    out = tmp_path / "out"
    proc = _closed_reader(_invert_argv(preset, out), tmp_path, both=True)
    assert proc.wait(timeout=TIMEOUT) == 141
    proc = subprocess.run([sys.executable, "-m", "stylebridge", *_invert_argv(preset, out),
                           "--resume"], capture_output=True, env=_env(tmp_path),
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert b"4 done, 0 skipped" in proc.stdout


def test_a_broken_pipe_in_a_batch_keeps_its_finished_photos(
        tmp_path: Path, preset, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """What the CLI's consoles now raise on a broken pipe, in the middle of a batch: 141 and
    the finished batches kept for --resume."""
    from stylebridge.cli.options import cli_console
    from stylebridge.pipelines import invert as invert_module

    read, write = os.pipe()
    os.close(read)
    broken = cli_console()
    with os.fdopen(write, "w") as pipe:
        broken.file = pipe
        with pytest.raises(BrokenPipeError):  # rich's own: SystemExit(1)
            broken.print("x")
        with contextlib.suppress(BrokenPipeError):
            pipe.close()
    monkeypatch.setattr("stylebridge.cli.main.silence_stdout", lambda: None)  # pytest's fd 1

    real, count = invert_module.save_png, [0]

    def save_png(*args, **kwargs):
        count[0] += 1
        if count[0] == 3:
            raise BrokenPipeError(32, "Broken pipe")
        return real(*args, **kwargs)

    out = tmp_path / "out"
    with monkeypatch.context() as m:
        m.setattr(invert_module, "save_png", save_png)
        assert main(_invert_argv(preset, out)) == 141
    assert f"--resume --out {out}" in " ".join(capsys.readouterr().err.split())
    assert main([*_invert_argv(preset, out), "--resume"]) == 0
    assert "done before are kept" in " ".join(capsys.readouterr().err.split())


# -- 4. a closed stdout ---------------------------------------------------------------------

def _closed_stdout(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    script = 'exec "$@" >&-'
    return subprocess.run(["sh", "-c", script, "sh", sys.executable, "-m", "stylebridge",
                           *argv], capture_output=True, env=_env(tmp_path), timeout=TIMEOUT)


def test_json_to_a_closed_stdout_is_refused_in_one_line(tmp_path: Path, preset) -> None:
    photos = str(preset.images)
    proc = _closed_stdout(["eval", "--pred", photos, "--target", photos, "--metric", "mse",
                           "--device", "cpu", "--json", "-"], tmp_path)
    assert (proc.returncode, proc.stderr) == (2, b"error: --json -: standard output is closed\n")
    proc = _closed_stdout(["doctor", "--json"], tmp_path)
    assert (proc.returncode, proc.stderr) == (2, b"error: --json: standard output is closed\n")


# -- 5. SIGTERM and SIGHUP stop a batch as Ctrl-C does ---------------------------------------

#: runs the CLI with a signal sent to itself while the 3rd PNG of the batch is written
DRIVER = r'''
import os, signal, sys
from stylebridge.pipelines import invert
real, count, sig = invert.save_png, [0], getattr(signal, sys.argv[1])
def save_png(*args, **kwargs):
    count[0] += 1
    if count[0] == 3:
        os.kill(os.getpid(), sig)
    return real(*args, **kwargs)
invert.save_png = save_png
from stylebridge.cli.main import main
sys.exit(main(sys.argv[2:]))
'''


@pytest.mark.parametrize("name", [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)])
def test_a_signalled_batch_says_how_to_continue_and_resumes(tmp_path: Path, preset,
                                                            name: str) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", DRIVER, name, *_invert_argv(preset, out)],
                          capture_output=True, env=_env(tmp_path), timeout=TIMEOUT)
    err = " ".join(proc.stderr.decode().split())
    # 128 + the signal, as a shell reports it (was 130, Ctrl-C's, for every signal)
    assert proc.returncode == 128 + getattr(signal, name), err
    assert f"continue with `stylebridge invert ... --resume --out {out}`" in err
    assert err.endswith(f"error: interrupted ({name})")
    if name == "SIGTERM":
        proc = subprocess.run([sys.executable, "-m", "stylebridge", *_invert_argv(preset, out),
                               "--resume"], capture_output=True, env=_env(tmp_path),
                              timeout=TIMEOUT)
        assert proc.returncode == 0, proc.stderr
        assert "done before are kept" in " ".join(proc.stderr.decode().split())



@pytest.mark.parametrize("name", [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)])
def test_a_signal_while_the_command_line_is_imported_stops_as_ctrl_c_does(
        tmp_path: Path, name: str) -> None:
    """The handlers came with the command, after torch and every plugin were imported
    (~1.5 s): a SIGTERM before killed the process outright (-15), with no line."""
    proc = subprocess.Popen([sys.executable, "-m", "stylebridge", "generate", "-g",
                             str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "o")],
                            stderr=subprocess.PIPE, env=_env(tmp_path))
    try:
        deadline = time.monotonic() + TIMEOUT
        while "libc10" not in Path(f"/proc/{proc.pid}/maps").read_text():  # torch loads
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.002)
        os.kill(proc.pid, getattr(signal, name))
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert (proc.returncode, err.decode()) == (128 + getattr(signal, name),
                                               f"error: interrupted ({name})\n")
