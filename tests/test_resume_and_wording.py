"""`--resume` of a domain trainer killed before its first checkpoint, and the words of errors
of the system.

(A) `train domain`, `train hyperdomain` and `train mindthegap --resume` where nothing was saved
yet (no training state, no `--out` model) start a new run and say so in one note, as
`train featureshift` does; they refused ("--resume: no training state at ...") and left the
hidden temporary state file of the kill behind.  A `--resume` of a model without a state (a
finished run, a model from elsewhere) is still refused, in one line saying what is there and
how to go on.

(B) An unreadable photo read `cannot read image ([Errno 13] Permission denied:)`; an
unreadable prompts file `cannot read the prompts (PermissionError)`; a folder of `--out` that
cannot be made on a read-only mount `(Read-only file system)`: now the system's words in lower
case, without errno noise.  Root reads any file, so the errors are raised by monkeypatching.
Tiny preset, tiny CLIPs on random weights."""

from __future__ import annotations

import builtins
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import read_header
from stylebridge.core.images import load_image
from stylebridge.errors import ImageError, StylebridgeError
from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines import train_hyperdomain as th
from stylebridge.pipelines import train_mindthegap as mtg
from stylebridge.pipelines.presets import TinyPreset, build_tiny_preset
from stylebridge.pipelines.training.outputs import check_out_writable
from stylebridge.pipelines.training.progress import ProgressEvent

STEPS = 2

pytestmark = pytest.mark.usefixtures("no_weights_one_thread")


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> TinyPreset:
    return build_tiny_preset(tmp_path_factory.mktemp("tiny"), seed=0)



def _domain(preset: TinyPreset, out: Path, progress: Any) -> Any:
    return td.train_domain(td.DomainTrainConfig(
        generator=str(preset.generator), out=out, text="a pixar render", steps=STEPS,
        checkpoint_every=1, sample_every=1, batch=2, clip=["a"], allow_random_clip=True,
        device="cpu", resume=True), progress=progress)


def _hyper(preset: TinyPreset, out: Path, progress: Any) -> Any:
    return th.train_hyperdomain(th.HyperDomainTrainConfig(
        generator=str(preset.generator), out=out, prompt_list=["a pixar render", "zombie"],
        templates="none", steps=STEPS, batch=2, width=16, inner=16, allow_random_clip=True,
        sample_every=1, checkpoint_every=1, device="cpu", resume=True), progress=progress)


def _mindthegap(preset: TinyPreset, out: Path, progress: Any) -> Any:
    return mtg.train_mindthegap(mtg.MindTheGapConfig(
        reference=preset.images / "photo0.png", generator=str(preset.generator), out=out,
        encoder=f"e4e:{preset.e4e}", losses=["clip_direction:1", "mtg_ref_l2:10"], clip=["a"],
        allow_random_clip=True, steps=STEPS, batch=2, lr=0.01, sample_every=1,
        checkpoint_every=1, device="cpu", resume=True), progress=progress)


TRAINERS = pytest.mark.parametrize("train", [_domain, _hyper, _mindthegap],
                                   ids=["domain", "hyperdomain", "mindthegap"])


@TRAINERS
def test_resume_before_the_first_checkpoint_starts_a_new_run_and_says_so(
        preset: TinyPreset, tmp_path: Path, fake_clips: None,
        train: Callable[[TinyPreset, Path, Any], Any]) -> None:
    """Before: `--resume: no training state at run/d.train-state.safetensors`, and the
    temporary state file of the kill stayed until a run without --resume."""
    run = tmp_path / "run"
    run.mkdir()
    out = run / "d.safetensors"
    # what a kill during the first state write leaves: its temporaries, beside another run's
    own = [run / ".d.train-state.safetensors.abcdefgh.tmp", run / ".d.safetensors.zhgtxqsv.tmp"]
    other = run / ".e.train-state.safetensors.abcdefgh.tmp"
    for path in [*own, other]:
        path.write_bytes(b"\0" * 64)
    events: list[ProgressEvent] = []
    outcome = train(preset, out, events.append)
    assert outcome.step == STEPS and outcome.result is not None
    assert read_header(out).extra["step"] == STEPS
    assert read_header(run / "d.train-state.safetensors").extra["step"] == STEPS
    assert [p for p in own if p.exists()] == [] and other.exists()
    said = [e.text for e in events if "new run" in e.text]
    assert said == [f"--resume: no training state at {run / 'd.train-state.safetensors'} "
                    "(the run stopped before its first checkpoint); starting a new run"]
    assert [e.kind for e in events if e.text in said] == ["note"]
    assert not any("resuming from step" in e.text for e in events)


@TRAINERS
def test_resume_of_a_model_without_a_state_is_refused_in_one_line(
        preset: TinyPreset, tmp_path: Path, fake_clips: None,
        train: Callable[[TinyPreset, Path, Any], Any]) -> None:
    """A finished run (or a model from elsewhere) has no state: refused, saying what is there
    and how to go on, the model left as it was.  Before: `no training state at ...` only."""
    out = tmp_path / "d.safetensors"
    out.write_bytes(b"a model from elsewhere")
    with pytest.raises(StylebridgeError) as info:
        train(preset, out, None)
    assert str(info.value) == (
        f"--resume: {out} holds a model but no training state (d.train-state.safetensors): "
        "a finished run or a model from elsewhere; train it again with --force instead of "
        "--resume, or give another --out")
    assert out.read_bytes() == b"a model from elsewhere"
    assert not (tmp_path / "d.train-state.safetensors").exists()


def test_cli_resume_before_the_first_checkpoint_prints_one_note(
        preset: TinyPreset, tmp_path: Path, fake_clips: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The note reaches the terminal through the trainers' progress printer; the finished
    run resumed again is refused on stderr in one line."""
    out = tmp_path / "d.safetensors"
    args = ["train", "domain", "--text", "a pixar render", "--templates", "none",
            "--generator", str(preset.generator), "--out", str(out), "--batch", "2",
            "--steps", str(STEPS), "--allow-random-clip", "--clip", "a", "--device", "cpu",
            "--resume"]
    assert main(args) == 0
    text = " ".join(capsys.readouterr().err.split())  # the note: on stderr
    assert text.count("starting a new run") == 1
    assert "note: --resume: no training state at" in text
    assert read_header(out).extra["step"] == STEPS
    (tmp_path / "d.train-state.safetensors").unlink()     # the model alone: from elsewhere
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "holds a model but no training state" in err and "--force" in err


# -- (B) the words of errors of the system ---------------------------------------------------


@pytest.mark.parametrize(("code", "words"), [
    (errno.EACCES, "permission denied"), (errno.EIO, "input/output error"),
    (errno.ENOENT, "no such file or directory"), (errno.EPERM, "operation not permitted")])
def test_an_unreadable_photo_says_why_in_plain_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str) -> None:
    """Before: `cannot read image ([Errno 13] Permission denied:)` (the path taken out, its
    colon left)."""
    photo = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(photo)
    real_open = builtins.open

    def unreadable(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file) == str(photo):      # what Pillow's Image.open raises for a mode-000 file
            raise OSError(code, os.strerror(code), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", unreadable)
    with pytest.raises(ImageError) as info:
        load_image(photo)
    assert str(info.value) == f"{photo}: cannot read image ({words})"


def test_an_unreadable_prompts_file_says_why_in_plain_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `cannot read the prompts (PermissionError)`."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a pixar render\n")

    def unreadable(self: Path, *args: Any, **kwargs: Any) -> str:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", unreadable)
    with pytest.raises(StylebridgeError) as info:
        th.read_prompts(prompts)
    assert str(info.value) == f"{prompts}: cannot read the prompts (permission denied)"


def test_an_out_folder_on_a_read_only_mount_names_the_cause(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new folder of --out on a read-only mount (EROFS, also for root) says so, in the
    system's words in lower case.  Before: `(Read-only file system)`."""
    out = tmp_path / "new" / "run.safetensors"

    def read_only(self: Path, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    with monkeypatch.context() as m:
        m.setattr(Path, "mkdir", read_only)
        with pytest.raises(StylebridgeError) as info:
            check_out_writable(out)
    assert str(info.value) == (f"--out {out}: cannot create the folder {tmp_path / 'new'} "
                               "(read-only file system)")
    assert not (tmp_path / "new").exists()

    import tempfile

    def no_file(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "TemporaryFile", no_file)
    with pytest.raises(StylebridgeError) as info:
        check_out_writable(tmp_path / "run.safetensors")
    assert str(info.value) == (f"--out {tmp_path / 'run.safetensors'}: cannot write in "
                               f"{tmp_path} (read-only file system)")
