"""Two processes writing one output at once (``core/locks.py``).

Two ``adapt --out same/`` started together shared one resume journal: each removed the
other's, one crashed (``log.jsonl: No such file or directory``), the reports held one run's
photos; a trainer ``--resume``\\ d while the first run still trained ran beside it.  Now the
second process is refused in one line naming the first, before it reads or changes anything.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from stylebridge.cli.main import main
from stylebridge.core import locks
from stylebridge.errors import StylebridgeError

pytestmark = pytest.mark.skipif(locks.fcntl is None, reason="no fcntl: nothing is locked")

HOLDER = ("import sys, time\n"
          "from stylebridge.core.locks import hold\n"
          "lock = hold(sys.argv[1], sys.argv[2])\n"
          "print('held', flush=True)\n"
          "time.sleep(120)\n")


@pytest.fixture
def held_by_other() -> Iterator[callable]:
    """``hold(path, command)`` in another process, until the test ends (then it is killed)."""
    children: list[subprocess.Popen[str]] = []

    def hold(path: Path, command: str) -> subprocess.Popen[str]:
        child = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), command],
                                 stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        return child

    yield hold
    for child in children:
        child.kill()
        child.wait()


def test_a_lock_held_by_another_process_names_it_and_dies_with_it(
        tmp_path: Path, held_by_other) -> None:
    out = tmp_path / "out"
    child = held_by_other(out, "adapt")
    with pytest.raises(locks.LockHeld) as caught:
        locks.hold(out, "invert")
    assert caught.value.holder == f"adapt, pid {child.pid}"
    assert locks.hold(tmp_path / "other", "invert") is not None  # another output is free
    child.kill()  # `kill -9`: the kernel releases its lock
    child.wait()
    lock = locks.hold(out, "invert")
    assert lock is not None
    lock.release()
    assert not locks.lock_path(out).exists()  # a released lock leaves no file
    assert not out.exists()  # nothing is written into the output for it


def test_one_process_may_hold_an_output_again(tmp_path: Path) -> None:
    first = locks.hold(tmp_path, "adapt")
    second = locks.hold(tmp_path / "." , "generate")  # the same folder, spelt otherwise
    assert first is not None and second is not None
    first.release()
    assert locks.lock_path(tmp_path).exists()  # still held by `second`
    second.release()
    second.release()  # a second release does nothing
    assert not locks.lock_path(tmp_path).exists()


def test_a_named_output_in_a_folder_is_its_own(tmp_path: Path, held_by_other) -> None:
    held_by_other(tmp_path, "eval")
    with pytest.raises(locks.LockHeld):
        locks.hold(tmp_path, "eval")
    lock = locks.hold(tmp_path, "eval", name="m.json")  # eval --json m.json beside it
    assert lock is not None
    lock.release()


def test_generate_into_a_folder_another_run_writes_is_one_line(
        tmp_path: Path, held_by_other, converted_tiny: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "samples"
    out.mkdir()
    (out / "seed0000.png").write_bytes(b"the other run's")
    child = held_by_other(out, "generate")
    assert main(["generate", "-g", str(converted_tiny), "--seeds", "0-1", "--out", str(out),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {out} is being written by another running stylebridge command "
                   f"(generate, pid {child.pid}); wait for it to finish, or write elsewhere"]
    assert sorted(p.name for p in out.iterdir()) == ["seed0000.png"]  # untouched
    assert (out / "seed0000.png").read_bytes() == b"the other run's"


def test_the_trainers_hold_their_out(tmp_path: Path, held_by_other) -> None:
    from stylebridge.pipelines.featureshift.state import check_run_out

    out = tmp_path / "run"
    held_by_other(out, "train featureshift")
    with pytest.raises(StylebridgeError, match=r"being written by another running stylebridge "
                                               r"command \(train featureshift, pid \d+\)"):
        check_run_out(SimpleNamespace(out=out, sample_every=0, tensorboard=False))
    free = tmp_path / "free"
    probe = [sys.executable, "-c", HOLDER.replace("time.sleep(120)", ""), str(free), "x"]
    with check_run_out(SimpleNamespace(out=free, sample_every=0, tensorboard=False)):  # held while the run goes
        busy = subprocess.run(probe, capture_output=True, text=True)
    assert busy.returncode != 0 and "LockHeld" in busy.stderr
    assert subprocess.run(probe, capture_output=True, text=True).returncode == 0  # released


def test_train_domain_into_an_out_another_run_trains_is_one_line(
        tmp_path: Path, held_by_other, converted_tiny: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.pipelines.presets import write_tiny_clips

    weights = write_tiny_clips(tmp_path / "clips")["tiny-vit-p16"]
    out = tmp_path / "d.safetensors"
    child = held_by_other(out, "train")
    argv = ["train", "domain", "-g", str(converted_tiny), "--text", "a sketch", "--clip",
            "tiny-vit-p16", "--clip-config", str(tmp_path / "clips"), "--clip-weights",
            f"tiny-vit-p16={weights}", "--steps", "1", "--batch", "1", "--out", str(out),
            "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"is being written by another running stylebridge command (train, pid {child.pid})" \
        in err
    assert not out.exists() and not list(tmp_path.glob("d.*"))  # nothing written
    child.kill()
    child.wait()
    assert main(argv) == 0 and out.is_file()


def test_a_domain_trainer_holds_its_out_under_its_command_name(
        tmp_path: Path, converted_tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.pipelines.presets import write_tiny_clips
    from stylebridge.pipelines.training import domain

    holds: list[tuple[Path, str]] = []
    real = domain.held

    def recording(out: Path, command: str):
        holds.append((out, command))
        return real(out, command)

    monkeypatch.setattr(domain, "held", recording)
    weights = write_tiny_clips(tmp_path / "clips")["tiny-vit-p16"]
    out = tmp_path / "d.safetensors"
    assert main(["train", "domain", "-g", str(converted_tiny), "--text", "a sketch", "--clip",
                 "tiny-vit-p16", "--clip-weights", f"tiny-vit-p16={weights}", "--steps", "1",
                 "--batch", "1", "--out", str(out), "--device", "cpu"]) == 0
    assert holds == [(out, "train domain")]


def test_a_named_output_is_named_in_the_refusal(tmp_path: Path, held_by_other) -> None:
    from stylebridge.pipelines.resume import hold_out

    child = held_by_other(tmp_path, "eval")
    lock = locks.hold(tmp_path, "eval", name="m.json")  # another file in that folder: free
    child.kill()
    child.wait()
    assert lock is not None
    probe = ("import sys\nfrom pathlib import Path\nfrom stylebridge.pipelines.resume import "
             "hold_out\nhold_out(Path(sys.argv[1]), 'eval', 'm.json')\n")
    busy = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True,
                          text=True)
    assert f"{tmp_path / 'm.json'} is being written by another running stylebridge command " \
           f"(eval, pid " in busy.stderr
    lock.release()
    assert hold_out(tmp_path, "eval", "m.json") is not None


def test_a_batch_command_is_refused_before_any_model_loads(
        tmp_path: Path, held_by_other, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "samples"
    child = held_by_other(out, "generate")
    missing = tmp_path / "no-such-generator.safetensors"  # never opened: the refusal is first
    for command in (["generate", "-g", str(missing), "--seeds", "0"],
                    ["invert", "-e", f"e4e:{missing}", "-g", str(missing), str(tmp_path)],
                    ["adapt", "-e", f"e4e:{missing}", "-g", str(missing), "-m", str(missing),
                     str(tmp_path)]):
        assert main([*command, "--out", str(out), "--device", "cpu"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: {out} is being written by another running stylebridge "
                       f"command (generate, pid {child.pid}); wait for it to finish, or write "
                       "elsewhere"], command


def test_another_thread_of_the_process_is_refused_as_another_process_is(
        tmp_path: Path) -> None:
    """Two threads' runs into one folder shared the hold and removed each other's journal
    (`FileNotFoundError: .stylebridge-run/inputs.json`); the holding thread may hold again."""
    import threading

    first = locks.hold(tmp_path, "generate")
    again = locks.hold(tmp_path, "generate")  # the same thread: a nested hold
    caught: list[BaseException] = []

    def other() -> None:
        try:
            locks.hold(tmp_path, "generate")
        except BaseException as exc:  # what the thread met is the point
            caught.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert first is not None and again is not None
    assert len(caught) == 1 and isinstance(caught[0], locks.LockHeld)
    assert "another thread" in caught[0].holder and "generate" in caught[0].holder
    first.release()
    again.release()


PROBE = ("import sys\n"
         "from stylebridge.core.locks import LockHeld, hold\n"
         "try:\n"
         "    lock = hold(sys.argv[1], 'probe')\n"
         "except LockHeld as exc:\n"
         "    print('held by', exc.holder)\n"
         "else:\n"
         "    print('free')\n")


def test_a_failed_pipeline_call_lets_go_of_its_output(tmp_path: Path,
                                                       converted_tiny: Path) -> None:
    """A notebook keeps the traceback of a stopped call (and with it the run's journal): the
    folder stayed held, every other process refused, until the kernel restarted."""
    from stylebridge.pipelines.generate import GenerateConfig, generate

    def stop(done: int, total: int | None, text: str) -> None:
        if done >= 1:
            raise KeyboardInterrupt

    out = tmp_path / "samples"
    config = GenerateConfig(generator=str(converted_tiny), out=out, seeds="0-3", batch=1,
                            device="cpu")
    with pytest.raises(KeyboardInterrupt) as caught:
        generate(config, progress=stop)
    kept = caught.value.__traceback__  # what IPython keeps (sys.last_traceback)
    probe = subprocess.run([sys.executable, "-c", PROBE, str(out)], capture_output=True,
                           text=True, check=True)
    assert probe.stdout.strip() == "free", probe.stdout
    assert kept is not None and (out / ".stylebridge-run").is_dir()  # the journal stays
    assert generate(GenerateConfig(generator=str(converted_tiny), out=out, seeds="0-3",
                                   batch=1, device="cpu", resume=True)).files  # resumes
