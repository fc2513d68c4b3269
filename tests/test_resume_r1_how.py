"""``--batch``, ``--device`` and ``--compile`` may change on ``--resume``; every resume whose
values differ from those of *any* earlier part of the run that kept work says that the values
agree with an uninterrupted run's to rounding only, not just a resume that differs from the
part right before it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_generator
from test_batch_resume import _files, _interrupted, _journal

from stylebridge.cli.main import main
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.pipelines import generate as generate_module
from stylebridge.pipelines.resume import RowJournal

NOTICE = ("--resume: --batch 3 (was 2): the seeds' values agree with an uninterrupted run's "
          "within floating-point rounding, not bit for bit")


@pytest.fixture
def argv(tmp_path: Path):
    gen = save_stylegan2(tmp_path / "gen.safetensors", tiny_generator(seed=0, size=32,
                                                                       style_dim=32))

    def argv(out: Path, batch: int, *extra: str) -> list[str]:
        return ["generate", "-g", str(gen), "--seeds", "0-11", "--batch", str(batch),
                "--device", "cpu", "--compile", "off", "--out", str(out), *extra]

    return argv


def test_a_second_resume_at_the_same_batch_still_says_an_earlier_part_differed(
        argv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    # one PNG a seed: the 5th is the first of the third batch of 2
    _interrupted(monkeypatch, capsys, generate_module, argv(out, 2), 5)
    assert _journal(out)["done"] == 4
    _, said = _interrupted(monkeypatch, capsys, generate_module, argv(out, 3, "--resume"), 4)
    assert NOTICE in said  # a notice: on stderr
    assert _journal(out)["done"] == 7  # seeds 4-6 at --batch 3
    # seeds 0-3 came from --batch 2, 4-6 from --batch 3: this resume at 3 says so too
    assert main(argv(out, 3, "--resume")) == 0
    assert NOTICE in " ".join(capsys.readouterr().err.split())


def test_a_part_that_kept_nothing_does_not_count(
        argv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(argv(ref, 2)) == 0
    _interrupted(monkeypatch, capsys, generate_module, argv(out, 2), 3)
    # resumed at --batch 3, and interrupted in its first batch: nothing of it is kept
    _, said = _interrupted(monkeypatch, capsys, generate_module, argv(out, 3, "--resume"), 1)
    assert NOTICE in said  # a notice: on stderr
    assert main(argv(out, 2, "--resume")) == 0
    stdout, said = (" ".join(text.split()) for text in capsys.readouterr())
    assert "2 seed(s) done before are kept" in said  # generate's notices: on stderr
    assert "not bit for bit" not in said and "not bit for bit" not in stdout
    assert _files(out) == _files(ref)  # every value is --batch 2's


def test_rows_of_any_earlier_part_computed_another_way_are_said(tmp_path: Path) -> None:
    settings = {"--seed": 0}
    first = RowJournal.open(tmp_path, settings, resume=False, how={"--batch": 4})
    first.record({"key": "a"}, [])
    second = RowJournal.open(tmp_path, settings, resume=True, how={"--batch": 2})
    second.record({"key": "b"}, [])
    third = RowJournal.open(tmp_path, settings, resume=True, how={"--batch": 2})
    assert sorted(third.kept) == ["a", "b"]
    assert third.notices == ["--resume: --batch 2 (was 4): the remaining rows agree with an "
                             "uninterrupted run's within floating-point rounding, not bit for "
                             "bit"]
    fourth = RowJournal.open(tmp_path, settings, resume=True, how={"--batch": 8})
    assert fourth.notices == ["--resume: --batch 8 (was 4, 2): the remaining rows agree with "
                              "an uninterrupted run's within floating-point rounding, not bit "
                              "for bit"]


def test_under_bf16_the_notice_says_bf16_rounding(
        argv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Compiled and eager bf16 pictures were measured up to 15 8-bit levels apart: a bf16
    run resumed another way says bf16's rounding, not "floating-point rounding"."""
    out = tmp_path / "out"
    _interrupted(monkeypatch, capsys, generate_module, argv(out, 2, "--precision", "bf16"), 5)
    _, said = _interrupted(monkeypatch, capsys, generate_module,
                           argv(out, 3, "--precision", "bf16", "--resume"), 4)
    assert ("--resume: --batch 3 (was 2): the seeds' values agree with an uninterrupted run's "
            "within bf16 rounding (a few 8-bit levels, up to about 15 on some pixels), not bit "
            "for bit") in said


def test_a_damaged_written_record_is_said_in_one_line(
        argv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A log line whose `written` is not a mapping stopped `--resume` with `AttributeError:
    'list' object has no attribute 'get'`."""
    import json

    out = tmp_path / "out"
    _interrupted(monkeypatch, capsys, generate_module, argv(out, 2), 5)
    log = out / ".stylebridge-run" / "log.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(isinstance(line["written"], dict) and line["written"] for line in lines)
    lines[0]["written"] = ["x"]
    state = json.loads((out / ".stylebridge-run" / "state.json").read_text())
    text = "".join(json.dumps(line) + "\n" for line in lines)
    log.write_text(text)
    state["log_bytes"] = len(text.encode())
    (out / ".stylebridge-run" / "state.json").write_text(json.dumps(state))
    assert main(argv(out, 2, "--resume")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert (f"--resume: the journal in {out} cannot be read (the files written for "
            f"{lines[0]['done']} are not recorded as a mapping); run without --resume to start "
            "over") in err and "AttributeError" not in err


def test_a_journal_that_cannot_be_written_is_refused_before_a_batch(
        argv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A read-only journal: the resumed run computed one more batch, stopped with
    `log.jsonl: Permission denied` and advised the --resume that failed the same way.  (Root
    writes through permissions: os.access is what a user's process is told.)"""
    import os

    from stylebridge.pipelines import resume as resume_module

    out = tmp_path / "out"
    _interrupted(monkeypatch, capsys, generate_module, argv(out, 2), 5)
    log = out / ".stylebridge-run" / "log.jsonl"
    real = os.access
    monkeypatch.setattr(resume_module.os, "access",
                        lambda p, mode, **kw: False if Path(p) == log else real(p, mode, **kw))
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert main(argv(out, 2, "--resume")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert (f"--resume: the journal in {out} cannot be written ({log}: permission denied); "
            "make it writable, or run without --resume to start over") in err
    assert sorted(p.name for p in out.glob("*.png")) == pngs   # nothing computed
