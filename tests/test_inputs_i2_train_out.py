"""A trainer's (or calibrate's) ``--out`` that cannot be written is refused before any work,
in one line naming ``--out``: a file where a folder of the path should be, a folder that cannot
be written (``/proc``), the training state or sample folder beside it in the way.  Before, the
run trained all its steps and then failed naming an internal file (``existing.txt/
td.train-state.safetensors``, calibrate's ``/proc/.stylebridge-run-x.safetensors``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import tiny_generator
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines.training.outputs import check_run_out

NO_PROC = not Path("/proc/self").is_dir()


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))  # no installed weights


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_train_domain_refuses_an_out_inside_a_file_before_its_first_step(
        tmp_path: Path) -> None:
    """The whole run through the Python API (tiny CLIP: the old code trained its steps and
    then failed): no progress event, no folder or file made, the message names --out."""
    from stylebridge.pipelines.presets import write_tiny_clips

    gen = save_stylegan2(tmp_path / "g.safetensors", tiny_generator())
    clips = write_tiny_clips(tmp_path / "clip")
    blocker = tmp_path / "existing.txt"
    blocker.write_text("keep")
    events: list[object] = []
    cfg = td.DomainTrainConfig(
        generator=str(gen), out=blocker / "td.safetensors", text="a sketch", templates="none",
        steps=2, batch=2, clip=["tiny-vit-p16"],
        clip_weights=[f"tiny-vit-p16={clips['tiny-vit-p16']}"], sample_every=1,
        checkpoint_every=1, device="cpu")
    with pytest.raises(StylebridgeError) as info:
        td.train_domain(cfg, progress=events.append)
    text = str(info.value)
    assert text == f"--out {blocker / 'td.safetensors'}: {blocker} is a file, not a folder"
    assert "train-state" not in text and events == []
    assert blocker.read_text() == "keep"


def test_check_run_out_names_out_for_what_is_written_beside_it(tmp_path: Path) -> None:
    out = tmp_path / "run.safetensors"
    (tmp_path / "run.train-state.safetensors").mkdir()
    with pytest.raises(StylebridgeError, match=r"^--out .*run\.safetensors: .*run\.train-state"
                                               r"\.safetensors, which the run writes beside "
                                               r"it, is a folder$"):
        check_run_out(out, resume=False, force=False)
    (tmp_path / "run.train-state.safetensors").rmdir()
    (tmp_path / "run_samples").write_text("a file")
    assert check_run_out(out, resume=False, force=False, samples=False).name \
        == "run.train-state.safetensors"  # no samples written: the file is no obstacle
    with pytest.raises(StylebridgeError, match=r"^--out .*: .*run_samples, a folder the run "
                                               r"writes beside it, is a file$"):
        check_run_out(out, resume=False, force=False, samples=True)


def test_check_out_writable_leaves_nothing_behind(tmp_path: Path) -> None:
    """The folders it creates to probe a new path are removed again."""
    from stylebridge.pipelines.training.outputs import check_out_writable

    check_out_writable(tmp_path / "a" / "b" / "run.safetensors")
    check_out_writable(tmp_path / "c" / "run", folder=True, folders=[tmp_path / "c" / "run" / "s"])
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(StylebridgeError, match=r"^--run .*f: is a file, not a folder$"):
        check_out_writable(tmp_path / "f", option="--run", folder=True)


@pytest.mark.skipif(NO_PROC, reason="needs /proc (a folder nobody can create files in)")
def test_an_unwritable_out_folder_is_named_as_out(tmp_path: Path) -> None:
    with pytest.raises(StylebridgeError, match=r"^--out /proc/td\.safetensors: cannot write "
                                               r"in /proc \("):
        check_run_out("/proc/td.safetensors", resume=False, force=False)
    with pytest.raises(StylebridgeError, match=r"^--out /proc/x/y/td\.safetensors: cannot "
                                               r"create the folder /proc/x \("):
        check_run_out("/proc/x/y/td.safetensors", resume=False, force=False)


def test_train_featureshift_checks_out_before_the_dataset(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--data does not even exist: --out is refused first, before anything loads."""
    gen = save_stylegan2(tmp_path / "g.safetensors", tiny_generator())
    blocker = tmp_path / "existing.txt"
    blocker.write_text("keep")
    argv = ["train", "featureshift", "--data", str(tmp_path / "no-dataset"), "--generator",
            str(gen), "--loss", "mse:1.0", "--inversion-loss", "mse:1.0", "--adversarial", "0",
            "--steps", "2", "--device", "cpu"]
    line = _error_line(capsys, [*argv, "--out", str(blocker / "run")])
    assert line == f"error: --out {blocker / 'run'}: {blocker} is a file, not a folder", line
    line = _error_line(capsys, [*argv, "--out", str(blocker)])
    assert line == f"error: --out {blocker}: is a file, not a folder", line
    run = tmp_path / "run"
    (run / "log.jsonl").mkdir(parents=True)
    line = _error_line(capsys, [*argv, "--out", str(run)])
    assert line == (f"error: --out {run}: {run / 'log.jsonl'}, which the run writes in it, is "
                    "a folder"), line


@pytest.mark.parametrize("where", ["file", "proc"])
def test_calibrate_names_out_not_its_journal(tmp_path: Path, where: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Checked before the generator and encoder load (neither exists here)."""
    if where == "proc" and NO_PROC:
        pytest.skip("needs /proc")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (8, 8)).save(photos / "a.png")
    blocker = tmp_path / "existing.txt"
    blocker.write_text("keep")
    out = blocker / "x.safetensors" if where == "file" else Path("/proc/x.safetensors")
    line = _error_line(capsys, ["calibrate", "alpha", "--images", str(photos), "--encoder",
                                f"e4e:{tmp_path / 'missing-e4e.safetensors'}", "--generator",
                                str(tmp_path / "missing-g.safetensors"), "--out", str(out),
                                "--no-align", "--device", "cpu"])
    assert line.startswith(f"error: --out {out}: "), line
    assert ".stylebridge-run" not in line and "missing" not in line
    expected = f"{blocker} is a file, not a folder" if where == "file" \
        else "cannot write in /proc ("
    assert expected in line, line


def test_train_featureshift_from_python_checks_out_before_the_dataset(tmp_path: Path) -> None:
    """The check was the command line's only: a Python caller found a bad --out when the run
    first saved."""
    from stylebridge.errors import StylebridgeError
    from stylebridge.pipelines.featureshift.trainer import TrainConfig, train_featureshift

    blocker = tmp_path / "existing.txt"
    blocker.write_text("keep")
    cfg = TrainConfig(data=str(tmp_path / "no-dataset"), generator=str(tmp_path / "no-gen"),
                      out=str(blocker / "run"), device="cpu")
    with pytest.raises(StylebridgeError, match=rf"^--out {re.escape(str(blocker / 'run'))}: "
                                               rf"{re.escape(str(blocker))} is a file"):
        train_featureshift(cfg)
    assert blocker.read_text() == "keep"
