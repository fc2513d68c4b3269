"""Hostile environments: no writable temporary folder, no home folder, SIGHUP during training,
bad ops switches, a weights cache that cannot be written.

Each of these stopped every command (or lost a training run) before: ``error: No usable
temporary directory found``, ``error: RuntimeError: Could not determine home directory``, a
dropped ssh session killing a run with nothing saved, ``STYLEBRIDGE_EPILOGUE=maybe`` passing
every CPU run and ``STYLEBRIDGE_OPS=bogus stylebridge doctor --json`` printing no JSON.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# the tiny featureshift run of test_featureshift (its module-scoped fixtures come along)
from test_featureshift import _one_thread, env, fs, make_registry, tiny_cfg  # noqa: F401

from stylebridge.cli.main import main
from stylebridge.core import locks
from stylebridge.errors import StylebridgeError

NO_HOME_LINE = ("no home folder (HOME unset, user has no passwd entry): set STYLEBRIDGE_HOME "
                "(or XDG_CACHE_HOME) to a writable folder")


# -- 1. no writable temporary folder: the lock is skipped, the run goes on --------------------


@pytest.fixture
def no_temporary_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """``tempfile.gettempdir()`` as in a read-only container (``TMPDIR=/nonexistent``, ``/tmp``
    and ``/var/tmp`` and the current folder read-only), and no runtime folder either."""
    def none() -> str:
        raise FileNotFoundError(2, "No usable temporary directory found in ['/nonexistent', "
                                   "'/tmp', '/var/tmp', '/usr/tmp', '/work']")

    monkeypatch.setattr(tempfile, "gettempdir", none)
    monkeypatch.setattr(locks, "_fallback_folders", lambda: [], raising=False)
    monkeypatch.setattr(locks, "_noticed", False, raising=False)


@pytest.mark.skipif(locks.fcntl is None, reason="no fcntl: nothing is locked")
def test_no_temporary_folder_skips_the_lock_with_one_notice(
        tmp_path: Path, no_temporary_folder: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert locks.hold(tmp_path / "a", "adapt") is None
    assert locks.hold(tmp_path / "b", "invert") is None
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "TMPDIR" in err[0] and "not locked" in err[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(locks.fcntl is None, reason="no fcntl: nothing is locked")
def test_a_batch_command_runs_without_a_temporary_folder(
        tmp_path: Path, converted_tiny: Path, no_temporary_folder: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "samples"
    code = main(["generate", "-g", str(converted_tiny), "--seeds", "0", "--out", str(out),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (out / "seed0000.png").is_file()
    assert "No usable temporary directory" not in err
    assert sum("TMPDIR" in line for line in err.splitlines()) == 1


@pytest.mark.skipif(locks.fcntl is None, reason="no fcntl: nothing is locked")
def test_the_lock_folder_never_lands_in_the_current_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Python's last resort for the temporary directory is the current folder (the only
    writable one): the lock folder goes to the runtime folder instead, or nowhere."""
    work, runtime = tmp_path / "work", tmp_path / "runtime"
    work.mkdir()
    runtime.mkdir()
    monkeypatch.chdir(work)
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(work))
    monkeypatch.setattr(locks, "_noticed", False, raising=False)
    monkeypatch.setattr(locks, "_fallback_folders", lambda: [str(runtime)], raising=False)
    lock = locks.hold(work / "out", "adapt")
    assert lock is not None
    assert locks.lock_path(work / "out").parent == runtime / f"stylebridge-locks-{os.getuid()}"
    lock.release()
    monkeypatch.setattr(locks, "_fallback_folders", lambda: [])
    assert locks.hold(work / "out", "adapt") is None
    assert list(work.iterdir()) == []
    assert "TMPDIR" in capsys.readouterr().err


# -- 2. no home folder ------------------------------------------------------------------------


@pytest.fixture
def no_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """``HOME`` unset and a uid without a passwd entry (``docker run --user 12345``)."""
    for name in ("HOME", "STYLEBRIDGE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)

    def unknown(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", unknown)
    with pytest.raises(RuntimeError):
        Path.home()


def test_no_home_is_one_line_where_the_cache_is_needed(
        no_home: None, capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.registry.weights import WeightsManager, default_home

    with pytest.raises(StylebridgeError) as caught:
        default_home()
    assert str(caught.value) == NO_HOME_LINE
    manager = WeightsManager()  # looked up when needed: nothing is installed without a cache
    assert manager.index() == {} and manager.resolve("encoder", "e4e") is None
    assert NO_HOME_LINE in manager.missing_message(manager.entry("e4e-ffhq"))
    assert main(["weights", "list"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {NO_HOME_LINE}"]


def test_a_command_with_explicit_files_runs_without_a_home(
        tmp_path: Path, converted_tiny: Path, no_home: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.pipelines.presets import build_tiny_preset

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    out = tmp_path / "inverted"
    code = main(["invert", "-e", f"e4e:{preset.e4e}", "-g", str(preset.generator), "--no-align",
                 "--device", "cpu", str(preset.images), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (out / "invert.json").is_file() and "home" not in err


def test_doctor_reports_a_missing_home_as_a_row(
        no_home: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--json"]) == 1
    rows = {row["item"]: row for row in json.loads(capsys.readouterr().out)["weights"]}
    cache = rows["cache (STYLEBRIDGE_HOME)"]
    assert cache["status"] == "error" and "set STYLEBRIDGE_HOME" in cache["hint"]
    assert rows["installed official weights"]["value"] == "none"


def test_tilde_paths_without_a_home_stay_as_written(no_home: None, tmp_path: Path) -> None:
    """A ``~`` that cannot be expanded is left as written (``Path.expanduser`` would raise a
    bare RuntimeError): the file is then reported missing by its name."""
    from stylebridge.pipelines.reproduce.clips import parse_clip_weights
    from stylebridge.pipelines.run_record import absolute

    assert parse_clip_weights(["ViT-B-32=~/clip.safetensors"]) == {
        "ViT-B-32": Path("~/clip.safetensors")}
    assert absolute("~/model.safetensors") == str(Path("~/model.safetensors").resolve())


# -- 3. SIGHUP during training ---------------------------------------------------------------

_STOP = """
import os, signal, sys
from pathlib import Path
from stylebridge.pipelines.training.interrupt import StopRequests, TrainingInterrupted
if sys.argv[1] == "nohup":
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
saved = []
with StopRequests() as stops:
    os.kill(os.getpid(), signal.SIGHUP)
    try:
        stops.stop_if_requested(5, Path("run.state"), lambda: saved.append(1))
        print("trained on", saved)
    except TrainingInterrupted as exc:
        print("saved", saved, exc)
print("after", signal.getsignal(signal.SIGHUP) is signal.SIG_IGN)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_saves_after_the_step_and_nohup_keeps_ignoring_it() -> None:
    hup = subprocess.run([sys.executable, "-c", _STOP, "hup"], capture_output=True, text=True,
                         timeout=120)
    assert hup.returncode == 0, hup.stderr  # before: killed by the signal, nothing saved
    assert hup.stdout.splitlines() == [
        "saved [1] interrupted (SIGHUP) after step 5; the state is saved in run.state: rerun "
        "the same command with --resume to continue exactly from there", "after False"]
    nohup = subprocess.run([sys.executable, "-c", _STOP, "nohup"], capture_output=True,
                           text=True, timeout=120)
    assert nohup.returncode == 0, nohup.stderr
    assert nohup.stdout.splitlines() == ["trained on []", "after True"]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_train_featureshift_saves_on_sighup(env, tmp_path: Path) -> None:  # noqa: F811
    from stylebridge.core.checkpoint import read_header
    from stylebridge.pipelines.training.interrupt import TrainingInterrupted

    def unhandled(signum: int, frame: object) -> None:
        raise AssertionError("SIGHUP reached the handler from before the run")

    def hang_up(trainer: fs.FeatureShiftTrainer) -> None:
        if trainer.step == 3:
            os.kill(os.getpid(), signal.SIGHUP)

    previous = signal.signal(signal.SIGHUP, unhandled)
    try:
        with pytest.raises(TrainingInterrupted, match=r"^interrupted \(SIGHUP\) after step 3"
                           ) as stopped:
            fs.train_featureshift(tiny_cfg(env, tmp_path / "b", steps=6, checkpoint_every=1000),
                                  registry=make_registry(), on_step=hang_up)
        assert stopped.value.exit_code == 128 + signal.SIGHUP  # as a shell reports it (was 130)
        assert signal.getsignal(signal.SIGHUP) is unhandled  # put back
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert read_header(tmp_path / "b" / "state.safetensors").extra["step"] == 3


# -- 4. the ops switches --------------------------------------------------------------------


def test_a_bad_switch_stops_a_cpu_run_as_the_model_is_built(
        clean_ops_state: None, monkeypatch: pytest.MonkeyPatch, converted_tiny: Path,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.core import ops
    from stylebridge.core.stylegan2.generator import Generator

    assert ops.check_switches() == []
    monkeypatch.setenv("STYLEBRIDGE_EPILOGUE", "maybe")  # read on CUDA tensors only
    monkeypatch.setenv("STYLEBRIDGE_UPFIRDN2D", "x" * 5000)
    problems = ops.check_switches()
    assert problems[0] == "STYLEBRIDGE_EPILOGUE='maybe' is not one of auto, on, off"
    assert problems[1].startswith("STYLEBRIDGE_UPFIRDN2D='xxx") and len(problems[1]) < 120
    ran: list[object] = []
    real = Generator.forward
    monkeypatch.setattr(Generator, "forward", lambda *a, **k: ran.append(a) or real(*a, **k))
    out = tmp_path / "samples"
    assert main(["generate", "-g", str(converted_tiny), "--seeds", "0", "--out", str(out),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "STYLEBRIDGE_EPILOGUE='maybe' is not one of auto, on, off" in err[0]
    assert "STYLEBRIDGE_UPFIRDN2D" in err[0] and len(err[0]) < 400
    assert ran == [] and not (out / "seed0000.png").exists()  # refused as it was built
    ops.set_fused_epilogue("off")  # a Python override wins: the environment is not read
    ops.set_upfirdn2d_tiled("generic")
    assert ops.check_switches() == []


def test_doctor_shows_each_switch_and_a_bad_one_is_a_failing_row(
        clean_ops_state: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STYLEBRIDGE_OPS", "bogus")
    monkeypatch.setenv("STYLEBRIDGE_UPFIRDN2D", " Tiled ")
    assert main(["doctor", "--json"]) == 1
    rows = {row["item"]: row for row in json.loads(capsys.readouterr().out)["cuda"]}
    ops_row = rows["ops backend (STYLEBRIDGE_OPS)"]
    assert ops_row["status"] == "error"
    assert ops_row["value"] == "'bogus': not one of auto, native, cuda"
    assert "unset STYLEBRIDGE_OPS" in ops_row["hint"]
    assert rows["fused epilogue (STYLEBRIDGE_EPILOGUE)"]["value"] == "auto"
    assert rows["fused epilogue (STYLEBRIDGE_EPILOGUE)"]["status"] == ""
    assert rows["upfirdn2d kernel (STYLEBRIDGE_UPFIRDN2D)"]["value"] == "tiled"


def test_doctor_with_a_5000_character_home_keeps_its_lines_short(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / ("a" * 5000)))
    assert main(["doctor", "--json"]) == 1
    said = capsys.readouterr()
    rows = {row["item"]: row for row in json.loads(said.out)["weights"]}
    cache = rows["cache (STYLEBRIDGE_HOME)"]
    assert cache["status"] == "error" and "too long" in cache["hint"]
    assert all(len(value) < 400 for row in rows.values() for value in row.values())
    assert said.err == ""


# -- 5. a cache that cannot be written -------------------------------------------------------


def _cache_rows(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, str]]:
    code = main(["doctor", "--json"])
    rows = {row["item"]: row for row in json.loads(capsys.readouterr().out)["weights"]}
    rows["exit"] = {"code": str(code)}
    return rows


def test_doctor_says_when_xdg_cache_home_is_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("STYLEBRIDGE_HOME", raising=False)
    (tmp_path / "cache").write_text("a file")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rows = _cache_rows(capsys)
    folder = rows["cache folder"]
    assert folder["status"] == "error" and rows["exit"]["code"] == "1"
    assert folder["value"] == f"cannot be created: {tmp_path / 'cache'} is a file, not a folder"
    assert "STYLEBRIDGE_HOME" in folder["hint"]


def test_doctor_says_when_the_cache_is_read_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import stylebridge.pipelines.doctor as doctor

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(home))
    rows = _cache_rows(capsys)
    assert rows["cache folder"]["value"] == "exists, writable"
    assert rows["cache folder"]["status"] == "ok"
    # a read-only mount (root writes through file permissions, so they cannot show it here)
    real = tempfile.TemporaryFile

    def read_only(*args: object, dir: object = None, **kwargs: object) -> object:
        if dir is not None and Path(str(dir)) == home:
            raise OSError(30, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(doctor.tempfile, "TemporaryFile", read_only)
    rows = _cache_rows(capsys)
    assert rows["cache folder"]["value"] == "exists, not writable"
    assert rows["cache folder"]["status"] == "error" and rows["exit"]["code"] == "1"
    assert "set STYLEBRIDGE_HOME to a folder you can write to" in rows["cache folder"]["hint"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes through file permissions")
def test_doctor_says_when_the_cache_folder_is_not_writable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(home))
    try:
        rows = _cache_rows(capsys)
    finally:
        home.chmod(0o755)
    assert rows["cache folder"]["status"] == "error"
